-- Derivatives feeds (contracts/derivatives.py): event time ts and availability time available_at,
-- venue (exchange:market type, or synthetic) in every key.
CREATE TABLE IF NOT EXISTS raw_funding_rates (
    symbol          text             NOT NULL,
    venue           text             NOT NULL,
    ts              timestamptz      NOT NULL,
    available_at    timestamptz      NOT NULL,
    source          text             NOT NULL,
    funding_rate    double precision NOT NULL,
    interval_hours  integer          NOT NULL,
    ingested_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, venue, ts)
);
CREATE TABLE IF NOT EXISTS raw_open_interest (
    symbol               text             NOT NULL,
    venue                text             NOT NULL,
    ts                   timestamptz      NOT NULL,
    available_at         timestamptz      NOT NULL,
    source               text             NOT NULL,
    open_interest        double precision NOT NULL,
    open_interest_value  double precision,
    ingested_at          timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, venue, ts)
);
CREATE TABLE IF NOT EXISTS raw_liquidations (
    symbol        text             NOT NULL,
    venue         text             NOT NULL,
    ts            timestamptz      NOT NULL,
    available_at  timestamptz      NOT NULL,
    source        text             NOT NULL,
    event_id      text             NOT NULL,
    side          text             NOT NULL CHECK (side IN ('buy', 'sell')),
    size          double precision NOT NULL CHECK (size > 0),
    price         double precision NOT NULL CHECK (price > 0),
    ingested_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, venue, ts, event_id)
);
CREATE TABLE IF NOT EXISTS raw_long_short_ratio (
    symbol            text             NOT NULL,
    venue             text             NOT NULL,
    ts                timestamptz      NOT NULL,
    available_at      timestamptz      NOT NULL,
    source            text             NOT NULL,
    long_short_ratio  double precision NOT NULL CHECK (long_short_ratio > 0),
    long_account      double precision,
    short_account     double precision,
    ingested_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, venue, ts)
);
