-- Forward-return predictions (ml/return_regressor.py): one row per (symbol, bar, horizon, model).
-- predicted_return is the predicted log(close(ts + h) / close(ts)); the realised value becomes
-- knowable at matures_at = ts + (h + 1) hours. The model is chosen point-in-time (labels all
-- matured before the predicted day); the leakage check joins model_id to ml_models_metadata.
CREATE TABLE IF NOT EXISTS ml_return_predictions (
    symbol            text             NOT NULL,
    ts                timestamptz      NOT NULL,
    horizon_hours     smallint         NOT NULL CHECK (horizon_hours > 0),
    model_name        text             NOT NULL,
    model_id          bigint           NOT NULL REFERENCES ml_models_metadata (model_id),
    -- NaN sorts above +Infinity in PostgreSQL, so this also refuses NaN
    predicted_return  double precision NOT NULL CHECK (predicted_return > '-Infinity' AND predicted_return < 'Infinity'),
    matures_at        timestamptz      NOT NULL CHECK (matures_at = ts + make_interval(hours => horizon_hours + 1)),
    predicted_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts, horizon_hours, model_name)
);
CREATE INDEX IF NOT EXISTS ml_return_predictions_model_id ON ml_return_predictions (model_id);
