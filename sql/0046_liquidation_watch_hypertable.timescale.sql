SELECT create_hypertable('liquidation_watch', 'watched_from', chunk_time_interval => INTERVAL '90 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
