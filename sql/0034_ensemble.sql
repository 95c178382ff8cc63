-- Ensemble rows in ml_predictions say which members they combined, with which weights, and
-- whether a fallback was used; member breaker states persist between runs.
ALTER TABLE ml_predictions ADD COLUMN IF NOT EXISTS members_used text;
ALTER TABLE ml_predictions ADD COLUMN IF NOT EXISTS weights_id text;
ALTER TABLE ml_predictions ADD COLUMN IF NOT EXISTS fallback_used text
    CHECK (fallback_used IS NULL OR fallback_used IN ('none', 'previous_champion', 'class_priors'));

CREATE TABLE IF NOT EXISTS member_breakers (
    member      text        PRIMARY KEY,
    state       jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
