SELECT create_hypertable('ml_features_mtf', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE ml_features_mtf SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol, feature_set_id',
                                 timescaledb.compress_orderby = 'ts');
SELECT add_compression_policy('ml_features_mtf', INTERVAL '30 days', if_not_exists => TRUE);
SELECT create_hypertable('ml_features_cross_asset', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE ml_features_cross_asset SET (timescaledb.compress,
                                         timescaledb.compress_segmentby = 'symbol, feature_set_id',
                                         timescaledb.compress_orderby = 'ts');
SELECT add_compression_policy('ml_features_cross_asset', INTERVAL '30 days', if_not_exists => TRUE);
