-- The remaining time-series tables become hypertables too (every table keyed by a time column),
-- so chunk exclusion serves range reads and retention/compression can follow. Applied only with
-- TimescaleDB usable; skipped on plain PostgreSQL and retried when the extension arrives.
SELECT create_hypertable('ml_labels', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('ml_predictions', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('trading_signals', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('dashboard_data', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('online_model_learned_rows', 'ts', chunk_time_interval => INTERVAL '90 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('model_performance', 'day', chunk_time_interval => INTERVAL '365 days',
                         if_not_exists => TRUE, migrate_data => TRUE);

-- Features compress like the bars they come from (segment by symbol, newest chunks stay row-wise).
ALTER TABLE ml_features_ohlcv SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                                   timescaledb.compress_orderby = 'ts');
SELECT add_compression_policy('ml_features_ohlcv', INTERVAL '30 days', if_not_exists => TRUE);
ALTER TABLE raw_sentiment SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol',
                               timescaledb.compress_orderby = 'published_at, headline_id');
SELECT add_compression_policy('raw_sentiment', INTERVAL '30 days', if_not_exists => TRUE);
