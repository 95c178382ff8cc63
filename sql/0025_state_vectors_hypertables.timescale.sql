-- Snapshots and state-vector rows are time series like the bars.
SELECT create_hypertable('raw_orderbook', 'snapshot_at', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE raw_orderbook SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol, venue',
                               timescaledb.compress_orderby = 'snapshot_at');
SELECT add_compression_policy('raw_orderbook', INTERVAL '30 days', if_not_exists => TRUE);
SELECT create_hypertable('ml_state_vector_rows', 'ts', chunk_time_interval => INTERVAL '90 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
