-- Several feature-set versions of the OHLCV and sentiment families coexist: feature_set_id joins
-- the key of their tables, as it already is for the later families (0028, 0035, 0041). Rows
-- stored before keep the feature_set_id they were written with (the column has been NOT NULL and
-- filled by every writer since 0001: today's ids), so models trained on them stay servable.
-- The key keeps ts, as TimescaleDB requires of a hypertable's unique indexes.
ALTER TABLE ml_features_ohlcv
    DROP CONSTRAINT ml_features_ohlcv_pkey,
    ADD PRIMARY KEY (symbol, ts, feature_set_id);
ALTER TABLE ml_features_sentiment
    DROP CONSTRAINT ml_features_sentiment_pkey,
    ADD PRIMARY KEY (symbol, ts, feature_set_id);
