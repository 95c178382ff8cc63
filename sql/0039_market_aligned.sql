-- One aligned hourly grid: per symbol and closed hour, the bar and every derivatives feed as known
-- at the bar's close (as-of join on availability time), each with its staleness; values older than
-- the feed's maximum staleness are NULL (missing), never carried forward; hours without a bar are
-- rows with bar_missing = true.
CREATE TABLE IF NOT EXISTS market_aligned (
    symbol                 text             NOT NULL,
    ts                     timestamptz      NOT NULL,
    bar_missing            boolean          NOT NULL,
    open                   double precision,
    high                   double precision,
    low                    double precision,
    close                  double precision,
    volume                 double precision,
    funding_rate           double precision,
    funding_staleness_h    double precision,
    open_interest          double precision,
    oi_staleness_h         double precision,
    long_short_ratio       double precision,
    ls_staleness_h         double precision,
    liq_buy_notional       double precision NOT NULL,
    liq_sell_notional      double precision NOT NULL,
    liq_count              integer          NOT NULL,
    computed_at            timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts)
);
