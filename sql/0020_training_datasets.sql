-- Training datasets written as Parquet + meta.json under the artifact location; a model row
-- names the dataset it was trained on (params.training_dataset_id), so it can be retrained bit
-- for bit from the same file.
CREATE TABLE IF NOT EXISTS training_datasets (
    dataset_id      bigserial   PRIMARY KEY,
    uri             text        NOT NULL UNIQUE,
    sha256          text        NOT NULL,
    feature_set_id  text        NOT NULL,
    label_set_id    text        NOT NULL,
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    matured_by      timestamptz NOT NULL,
    row_count       integer     NOT NULL,
    meta            jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
