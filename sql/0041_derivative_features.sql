-- The derivatives feature family (features/derivatives.py), keyed by feature-set id.
CREATE TABLE IF NOT EXISTS ml_features_derivatives (
    symbol                 text             NOT NULL,
    ts                     timestamptz      NOT NULL,
    feature_set_id         text             NOT NULL,
    funding_rate           double precision,
    funding_z_30d          double precision,
    oi_change_24h          double precision,
    liq_imbalance_24h      double precision,
    log_long_short_ratio   double precision,
    funding_staleness_h    double precision,
    oi_staleness_h         double precision,
    ls_staleness_h         double precision,
    computed_at            timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts, feature_set_id)
);
