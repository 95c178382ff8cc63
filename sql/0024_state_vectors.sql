-- Order-book snapshots (synthetic, or the exchange's current book collected going forward) and the
-- state vector's raw rows: one row per closed hour and layout, un-normalised (the compact raw row
-- of pipeline_assets.state_vector.layout as little-endian float64), so a year costs
-- 8,760 x (11 + 40 n) floats, not 8,760 x 168 x 768; windows are assembled and normalised on read.
CREATE TABLE IF NOT EXISTS raw_orderbook (
    symbol       text        NOT NULL,
    venue        text        NOT NULL,
    snapshot_at  timestamptz NOT NULL,
    bid_prices   float8[]    NOT NULL,
    bid_sizes    float8[]    NOT NULL,
    ask_prices   float8[]    NOT NULL,
    ask_sizes    float8[]    NOT NULL,
    source       text        NOT NULL,
    fetched_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, venue, snapshot_at),
    CHECK (cardinality(bid_prices) = cardinality(bid_sizes) AND cardinality(ask_prices) = cardinality(ask_sizes)),
    CHECK (cardinality(bid_prices) BETWEEN 1 AND 50 AND cardinality(ask_prices) BETWEEN 1 AND 50)
);

CREATE TABLE IF NOT EXISTS state_vector_layouts (
    layout_id      text        PRIMARY KEY,
    version        text        NOT NULL,
    symbols        text[]      NOT NULL,
    raw_columns    text[]      NOT NULL,
    columns        text[]      NOT NULL,
    config         jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ml_state_vector_rows (
    layout_id        text        NOT NULL REFERENCES state_vector_layouts (layout_id),
    ts               timestamptz NOT NULL,
    raw_row          bytea       NOT NULL,
    missing_symbols  text[]      NOT NULL DEFAULT '{}',
    book_symbols     text[]      NOT NULL DEFAULT '{}',
    computed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (layout_id, ts)
);
