-- Coverage of the forward-collected liquidation stream: intervals during which the websocket was
-- connected and its subscription confirmed (a reconnect gap is not covered). An hour is watched
-- only if the union of a symbol's intervals covers all of it; market_aligned's liquidation columns
-- are NULL (missing) for unwatched hours and 0 only for watched hours without events.
CREATE TABLE IF NOT EXISTS liquidation_watch (
    symbol         text        NOT NULL,
    venue          text        NOT NULL,
    market_type    text        NOT NULL,
    watched_from   timestamptz NOT NULL,
    watched_until  timestamptz NOT NULL,
    ended_by       text        NOT NULL,
    source         text        NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, venue, watched_from),
    CHECK (watched_until > watched_from)
);
CREATE INDEX IF NOT EXISTS liquidation_watch_until_idx ON liquidation_watch (symbol, watched_until);
-- Unwatched hours are missing, not 0: the liquidation columns become nullable. Rows already
-- stored keep their values (they were computed from the synthetic source, which covers every hour
-- it generates; re-materialising raw_liquidations records that coverage).
ALTER TABLE market_aligned ALTER COLUMN liq_buy_notional DROP NOT NULL;
ALTER TABLE market_aligned ALTER COLUMN liq_sell_notional DROP NOT NULL;
ALTER TABLE market_aligned ALTER COLUMN liq_count DROP NOT NULL;
