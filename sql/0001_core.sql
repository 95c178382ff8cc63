-- Core warehouse tables. Timestamps are bar-open UTC (timestamptz); prices are float8.
-- Data contracts are enforced in code (pipeline_assets.contracts) and by blocking asset
-- checks, not by CHECK constraints, so that a violation surfaces as a failed check with
-- the offending rows rather than a rejected transaction.

CREATE TABLE IF NOT EXISTS raw_ohlcv (
    symbol       text             NOT NULL,
    ts           timestamptz      NOT NULL,
    open         double precision NOT NULL,
    high         double precision NOT NULL,
    low          double precision NOT NULL,
    close        double precision NOT NULL,
    volume       double precision NOT NULL,
    source       text             NOT NULL,
    ingested_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts)
);

CREATE TABLE IF NOT EXISTS raw_sentiment (
    symbol        text             NOT NULL,
    published_at  timestamptz      NOT NULL,
    headline_id   text             NOT NULL,
    source        text             NOT NULL,
    headline      text             NOT NULL,
    compound      double precision NOT NULL,
    positive      double precision NOT NULL,
    neutral       double precision NOT NULL,
    negative      double precision NOT NULL,
    ingested_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, published_at, headline_id)
);

-- Rows refused by a contract, with the reason; never silently dropped.
CREATE TABLE IF NOT EXISTS quarantine (
    quarantine_id  bigserial   PRIMARY KEY,
    table_name     text        NOT NULL,
    partition_key  text        NOT NULL,
    symbol         text,
    ts             timestamptz,
    reason         text        NOT NULL,
    payload        jsonb       NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quarantine_table_partition_idx ON quarantine (table_name, partition_key);

CREATE TABLE IF NOT EXISTS ml_features_ohlcv (
    symbol             text             NOT NULL,
    ts                 timestamptz      NOT NULL,
    feature_set_id     text             NOT NULL,
    log_return_1h      double precision,
    log_return_4h      double precision,
    log_return_24h     double precision,
    rsi_14             double precision,
    ema_ratio_12_26    double precision,
    macd_hist_pct      double precision,
    bb_pctb_20         double precision,
    atr_14_pct         double precision,
    realized_vol_24h   double precision,
    volume_zscore_24h  double precision,
    range_pct          double precision,
    computed_at        timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts)
);

CREATE TABLE IF NOT EXISTS ml_features_sentiment (
    symbol              text             NOT NULL,
    ts                  timestamptz      NOT NULL,
    feature_set_id      text             NOT NULL,
    sentiment_mean_6h   double precision NOT NULL,
    sentiment_mean_24h  double precision NOT NULL,
    sentiment_min_6h    double precision NOT NULL,
    sentiment_max_6h    double precision NOT NULL,
    headline_count_6h   integer          NOT NULL,
    headline_count_24h  integer          NOT NULL,
    computed_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts)
);

-- direction: 0 = SELL, 1 = HOLD, 2 = BUY. matured_at: when the label became knowable.
CREATE TABLE IF NOT EXISTS ml_labels (
    symbol             text             NOT NULL,
    ts                 timestamptz      NOT NULL,
    label_set_id       text             NOT NULL,
    horizon_hours      integer          NOT NULL,
    forward_return     double precision NOT NULL,
    direction          smallint         NOT NULL CHECK (direction IN (0, 1, 2)),
    matured_at         timestamptz      NOT NULL,
    labelled_at        timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts)
);
CREATE INDEX IF NOT EXISTS ml_labels_matured_at_idx ON ml_labels (matured_at);

-- Models are rows: artifact bytes verified by sha256 on load.
CREATE TABLE IF NOT EXISTS ml_models_metadata (
    model_id               bigserial   PRIMARY KEY,
    model_name             text        NOT NULL,
    version                integer     NOT NULL,
    format                 text        NOT NULL,
    artifact               bytea       NOT NULL,
    artifact_sha256        text        NOT NULL,
    feature_set_id         text        NOT NULL,
    label_set_id           text        NOT NULL,
    model_version_hash     text        NOT NULL,
    params                 jsonb       NOT NULL,
    metrics                jsonb       NOT NULL,
    train_start            timestamptz,
    train_end              timestamptz,
    labels_matured_until   timestamptz NOT NULL,
    status                 text        NOT NULL CHECK (status IN ('candidate', 'champion', 'retired')),
    created_at             timestamptz NOT NULL DEFAULT now(),
    promoted_at            timestamptz,
    UNIQUE (model_name, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS ml_models_one_champion_idx
    ON ml_models_metadata (model_name) WHERE status = 'champion';

-- Which labelled rows an online model has already learned from (exactly-once learning).
CREATE TABLE IF NOT EXISTS online_model_learned_rows (
    model_name  text        NOT NULL,
    symbol      text        NOT NULL,
    ts          timestamptz NOT NULL,
    model_id    bigint      NOT NULL REFERENCES ml_models_metadata (model_id),
    PRIMARY KEY (model_name, symbol, ts)
);

CREATE TABLE IF NOT EXISTS ml_predictions (
    symbol               text             NOT NULL,
    ts                   timestamptz      NOT NULL,
    model_name           text             NOT NULL,
    model_id             bigint           NOT NULL REFERENCES ml_models_metadata (model_id),
    prob_sell            double precision NOT NULL,
    prob_hold            double precision NOT NULL,
    prob_buy             double precision NOT NULL,
    predicted_direction  smallint         NOT NULL CHECK (predicted_direction IN (0, 1, 2)),
    predicted_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts, model_name)
);

CREATE TABLE IF NOT EXISTS trading_signals (
    symbol          text             NOT NULL,
    ts              timestamptz      NOT NULL,
    model_id        bigint           NOT NULL REFERENCES ml_models_metadata (model_id),
    signal          text             NOT NULL CHECK (signal IN ('SELL', 'HOLD', 'BUY')),
    position        smallint         NOT NULL CHECK (position IN (-1, 0, 1)),
    edge            double precision NOT NULL,
    signal_rule_id  text             NOT NULL,
    created_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts)
);

CREATE TABLE IF NOT EXISTS dashboard_data (
    symbol            text             NOT NULL,
    ts                timestamptz      NOT NULL,
    close             double precision NOT NULL,
    signal            text             NOT NULL,
    position          smallint         NOT NULL,
    prob_buy          double precision NOT NULL,
    prob_sell         double precision NOT NULL,
    forward_return    double precision,
    strategy_return   double precision,
    model_id          bigint           NOT NULL,
    updated_at        timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts)
);
