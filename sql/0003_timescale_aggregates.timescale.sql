-- migrate:no-transaction
-- Continuous aggregates cannot be created inside a transaction block, so the runner
-- executes this file statement by statement in autocommit mode.
-- 4h and 1d bars for dashboards, maintained by TimescaleDB.
CREATE MATERIALIZED VIEW IF NOT EXISTS ohlcv_4h WITH (timescaledb.continuous) AS
SELECT symbol, time_bucket(INTERVAL '4 hours', ts) AS ts,
       first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
       sum(volume) AS volume
FROM raw_ohlcv GROUP BY symbol, time_bucket(INTERVAL '4 hours', ts) WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS ohlcv_1d WITH (timescaledb.continuous) AS
SELECT symbol, time_bucket(INTERVAL '1 day', ts) AS ts,
       first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
       sum(volume) AS volume
FROM raw_ohlcv GROUP BY symbol, time_bucket(INTERVAL '1 day', ts) WITH NO DATA;

SELECT add_continuous_aggregate_policy('ohlcv_4h', start_offset => INTERVAL '3 days',
       end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('ohlcv_1d', start_offset => INTERVAL '7 days',
       end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);
