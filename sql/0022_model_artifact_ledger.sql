-- Append-only record of every model artifact's SHA-256, outside the row that holds the bytes:
-- replacing both the artifact and its ml_models_metadata.artifact_sha256 no longer goes unnoticed,
-- because loading checks this ledger first (and nothing is deserialised before that check).
CREATE TABLE IF NOT EXISTS model_artifact_ledger (
    model_id         bigint      PRIMARY KEY,
    model_name       text        NOT NULL,
    version          integer     NOT NULL,
    artifact_sha256  text        NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION model_artifact_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'model_artifact_ledger is append-only (% refused on model_id %)', TG_OP, OLD.model_id;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS model_artifact_ledger_no_changes ON model_artifact_ledger;
CREATE TRIGGER model_artifact_ledger_no_changes BEFORE UPDATE OR DELETE ON model_artifact_ledger
    FOR EACH ROW EXECUTE FUNCTION model_artifact_ledger_append_only();

-- Models registered before this migration: their current hash is what is trusted from now on.
INSERT INTO model_artifact_ledger (model_id, model_name, version, artifact_sha256)
SELECT model_id, model_name, version, artifact_sha256 FROM ml_models_metadata
ON CONFLICT (model_id) DO NOTHING;

-- Why a model left service (a corrupt artifact retired by hand or automatically).
ALTER TABLE ml_models_metadata ADD COLUMN IF NOT EXISTS retired_reason text;
