SELECT create_hypertable('ml_patterns', 'ts', chunk_time_interval => INTERVAL '90 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
