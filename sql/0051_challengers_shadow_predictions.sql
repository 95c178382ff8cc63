-- Champion/challenger on realised rows. A registered model that is not promoted becomes a
-- 'challenger': it predicts the same rows as its champion into ml_shadow_predictions (never read by
-- the ensemble or signals), and challenger_review promotes or retires it on the rows whose labels
-- have matured. Every review decision goes to model_promotion_decisions with its basis and action.
ALTER TABLE ml_models_metadata DROP CONSTRAINT IF EXISTS ml_models_metadata_status_check;
ALTER TABLE ml_models_metadata ADD CONSTRAINT ml_models_metadata_status_check
    CHECK (status IN ('candidate', 'challenger', 'champion', 'retired'));
-- Models registered before this migration and never promoted were left as candidates that never
-- predicted; they are challengers from now on (challenger_review retires them by age if need be).
UPDATE ml_models_metadata SET status = 'challenger'
WHERE status = 'candidate' AND promoted_at IS NULL AND retired_reason IS NULL
  AND model_name IN ('direction_xgboost', 'direction_linear');
CREATE INDEX IF NOT EXISTS ml_models_metadata_challengers_idx
    ON ml_models_metadata (model_name) WHERE status = 'challenger';

-- Keyed by model_id as well as model_name: several challengers of one kind predict the same hour.
CREATE TABLE IF NOT EXISTS ml_shadow_predictions (
    symbol               text             NOT NULL,
    ts                   timestamptz      NOT NULL,
    model_name           text             NOT NULL,
    model_id             bigint           NOT NULL REFERENCES ml_models_metadata (model_id) ON DELETE CASCADE,
    prob_sell            double precision NOT NULL,
    prob_hold            double precision NOT NULL,
    prob_buy             double precision NOT NULL,
    predicted_direction  smallint         NOT NULL CHECK (predicted_direction IN (0, 1, 2)),
    predicted_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts, model_name, model_id)
);
CREATE INDEX IF NOT EXISTS ml_shadow_predictions_model_idx ON ml_shadow_predictions (model_id, ts);

-- held_out: the candidate's test rows at training time; realised_shadow: the challenger's shadow
-- rows with matured labels against the champion's own rows for the same hours.
ALTER TABLE model_promotion_decisions ADD COLUMN IF NOT EXISTS basis text NOT NULL DEFAULT 'held_out';
ALTER TABLE model_promotion_decisions DROP CONSTRAINT IF EXISTS model_promotion_decisions_basis_check;
ALTER TABLE model_promotion_decisions ADD CONSTRAINT model_promotion_decisions_basis_check
    CHECK (basis IN ('held_out', 'realised_shadow'));
-- What the decision did to the candidate: promoted, made a challenger, kept as challenger, retired.
ALTER TABLE model_promotion_decisions ADD COLUMN IF NOT EXISTS action text;
UPDATE model_promotion_decisions SET action = CASE WHEN promoted THEN 'promoted' ELSE 'challenger' END
WHERE action IS NULL;
ALTER TABLE model_promotion_decisions ALTER COLUMN action SET NOT NULL;
ALTER TABLE model_promotion_decisions DROP CONSTRAINT IF EXISTS model_promotion_decisions_action_check;
ALTER TABLE model_promotion_decisions ADD CONSTRAINT model_promotion_decisions_action_check
    CHECK (action IN ('promoted', 'challenger', 'kept', 'retired'));
