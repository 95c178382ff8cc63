SELECT create_hypertable('ml_features_ohlcv_ext', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE ml_features_ohlcv_ext SET (timescaledb.compress,
                                       timescaledb.compress_segmentby = 'symbol, feature_set_id',
                                       timescaledb.compress_orderby = 'ts');
SELECT add_compression_policy('ml_features_ohlcv_ext', INTERVAL '30 days', if_not_exists => TRUE);
