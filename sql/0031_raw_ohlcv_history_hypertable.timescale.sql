SELECT create_hypertable('raw_ohlcv_history', 'ts', chunk_time_interval => INTERVAL '90 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
