-- Feature-set registry and the multi-timeframe and cross-asset families. The new families key
-- their rows by feature_set_id too, so several versions of a family can coexist (a model names
-- the version it was trained on). ml_features_ohlcv and ml_features_sentiment keep (symbol, ts):
-- one version at a time, checked on read (ml/dataset.check_feature_sets).
CREATE TABLE IF NOT EXISTS feature_sets (
    feature_set_id  text        PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('family', 'model')),
    name            text        NOT NULL,
    families        jsonb       NOT NULL,
    columns         text[]      NOT NULL,
    params          jsonb       NOT NULL,
    git_commit      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ml_features_mtf (
    symbol                   text             NOT NULL,
    ts                       timestamptz      NOT NULL,
    feature_set_id           text             NOT NULL,
    tf4h_log_return          double precision,
    tf4h_rsi_14              double precision,
    tf4h_ema_ratio_12_26     double precision,
    tf4h_atr_14_pct          double precision,
    tf1d_log_return          double precision,
    tf1d_rsi_14              double precision,
    tf1d_ema_ratio_12_26     double precision,
    tf1d_atr_14_pct          double precision,
    computed_at              timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts, feature_set_id)
);

CREATE TABLE IF NOT EXISTS ml_features_cross_asset (
    symbol               text             NOT NULL,
    ts                   timestamptz      NOT NULL,
    feature_set_id       text             NOT NULL,
    corr_ref_24h         double precision,
    beta_ref_24h         double precision,
    rel_strength_24h     double precision,
    rank_return_24h      double precision,
    dispersion_24h       double precision,
    reference_pairs_24h  integer          NOT NULL,
    computed_at          timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts, feature_set_id)
);
