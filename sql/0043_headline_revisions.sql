-- A headline whose source id stays while its text changes (a correction) keeps its previous
-- version here, with when it was superseded; point-in-time reads see what was known then.
CREATE TABLE IF NOT EXISTS raw_sentiment_history (
    symbol         text             NOT NULL,
    published_at   timestamptz      NOT NULL,
    headline_id    text             NOT NULL,
    source         text             NOT NULL,
    headline       text             NOT NULL,
    compound       double precision NOT NULL,
    positive       double precision NOT NULL,
    neutral        double precision NOT NULL,
    negative       double precision NOT NULL,
    available_at   timestamptz      NOT NULL,
    superseded_at  timestamptz      NOT NULL,
    PRIMARY KEY (symbol, published_at, headline_id, superseded_at)
);
