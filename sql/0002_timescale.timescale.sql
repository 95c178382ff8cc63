-- Applied only when the timescaledb extension is available (detected by the migration
-- runner); on plain PostgreSQL it is recorded as skipped and the tables above work as is.
CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('raw_ohlcv', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('raw_sentiment', 'published_at', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('ml_features_ohlcv', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('ml_features_sentiment', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);

ALTER TABLE raw_ohlcv SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                           timescaledb.compress_orderby = 'ts');
SELECT add_compression_policy('raw_ohlcv', INTERVAL '30 days', if_not_exists => TRUE);
