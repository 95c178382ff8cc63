-- How far each ingestion partition has been read from its source: a partition of today is
-- covered up to the last closed hour. Downstream assets use it to tell "no data yet" from
-- "never ingested", and to avoid computing rows for hours the source has not covered.
CREATE TABLE IF NOT EXISTS partition_watermarks (
    asset_name     text        NOT NULL,
    partition_key  text        NOT NULL,
    window_start   timestamptz NOT NULL,
    covered_until  timestamptz NOT NULL,
    row_count      integer     NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset_name, partition_key)
);
