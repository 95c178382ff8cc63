-- Realised quality of each day's predictions once their labels have matured.
CREATE TABLE IF NOT EXISTS model_performance (
    day                   date             NOT NULL,
    model_name            text             NOT NULL,
    model_id              bigint           NOT NULL REFERENCES ml_models_metadata (model_id),
    matured_rows          integer          NOT NULL,
    accuracy              double precision NOT NULL,
    log_loss              double precision NOT NULL,
    majority_accuracy     double precision NOT NULL,
    reference_log_loss    double precision NOT NULL,
    evaluated_at          timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (day, model_name, model_id)
);
