-- The extended OHLCV indicator set (features/ohlcv_ext.py), keyed by feature-set id.
CREATE TABLE IF NOT EXISTS ml_features_ohlcv_ext (
    symbol                 text             NOT NULL,
    ts                     timestamptz      NOT NULL,
    feature_set_id         text             NOT NULL,
    sma_ratio_10           double precision,
    sma_ratio_20           double precision,
    sma_ratio_50           double precision,
    ema_ratio_9            double precision,
    ema_ratio_21           double precision,
    ema_ratio_50           double precision,
    stoch_k_14             double precision,
    stoch_d_3              double precision,
    plus_di_14             double precision,
    minus_di_14            double precision,
    adx_14                 double precision,
    mfi_14                 double precision,
    obv_slope_24           double precision,
    vwap_dev_24            double precision,
    volume_ratio_20        double precision,
    log_volume_change      double precision,
    computed_at            timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts, feature_set_id)
);
