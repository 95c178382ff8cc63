-- Every champion/challenger decision with its figures (ml/promotion.py).
CREATE TABLE IF NOT EXISTS model_promotion_decisions (
    decision_id         bigserial        PRIMARY KEY,
    model_name          text             NOT NULL,
    candidate_id        bigint           NOT NULL REFERENCES ml_models_metadata (model_id) ON DELETE CASCADE,
    champion_id         bigint           REFERENCES ml_models_metadata (model_id) ON DELETE SET NULL,
    promoted            boolean          NOT NULL,
    reason              text             NOT NULL,
    compared_rows       integer          NOT NULL,
    level               double precision NOT NULL,
    candidate_log_loss  double precision,
    champion_log_loss   double precision,
    difference          double precision,
    ci_low              double precision,
    ci_high             double precision,
    decided_at          timestamptz      NOT NULL DEFAULT now()
);
