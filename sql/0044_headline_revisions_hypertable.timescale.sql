SELECT create_hypertable('raw_sentiment_history', 'published_at', chunk_time_interval => INTERVAL '90 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
