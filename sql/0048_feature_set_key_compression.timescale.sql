-- Compressed ml_features_ohlcv chunks are segmented by feature set too (as the other feature
-- families' since 0029), so a version's rows compress and decompress apart from another's. Chunks
-- compressed before keep their settings (TimescaleDB records them per chunk); new ones use these.
ALTER TABLE ml_features_ohlcv SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol, feature_set_id',
                                   timescaledb.compress_orderby = 'ts');
