-- Event time and availability time, and revisions kept as history.
-- raw_ohlcv.ts is the bar's open (the hour the values refer to); available_at is when the values
-- became known: the bar's close for a first version read from history, the ingestion time of a
-- restatement. A restated bar moves its previous version to raw_ohlcv_history with
-- superseded_at = when the restatement arrived, so point-in-time reads see what was known then.
ALTER TABLE raw_ohlcv ADD COLUMN IF NOT EXISTS available_at timestamptz;
UPDATE raw_ohlcv SET available_at = ts + interval '1 hour' WHERE available_at IS NULL;

CREATE TABLE IF NOT EXISTS raw_ohlcv_history (
    symbol         text             NOT NULL,
    ts             timestamptz      NOT NULL,
    open           double precision NOT NULL,
    high           double precision NOT NULL,
    low            double precision NOT NULL,
    close          double precision NOT NULL,
    volume         double precision NOT NULL,
    source         text             NOT NULL,
    available_at   timestamptz      NOT NULL,
    superseded_at  timestamptz      NOT NULL,
    PRIMARY KEY (symbol, ts, superseded_at),
    CHECK (superseded_at >= available_at)
);

-- Headlines: published_at is the event time; available_at when the pipeline could know it.
ALTER TABLE raw_sentiment ADD COLUMN IF NOT EXISTS available_at timestamptz;
UPDATE raw_sentiment SET available_at = published_at WHERE available_at IS NULL;
