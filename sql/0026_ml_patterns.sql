-- Chart-pattern detections (features/patterns.py): one row per (symbol, bar, pattern) at which a
-- pattern became known from pivots confirmed by that bar.
CREATE TABLE IF NOT EXISTS ml_patterns (
    symbol                     text             NOT NULL,
    ts                         timestamptz      NOT NULL,
    pattern                    text             NOT NULL,
    score                      double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    direction                  smallint         NOT NULL CHECK (direction IN (-1, 1)),
    target_price               double precision NOT NULL,
    expected_completion_hours  double precision NOT NULL CHECK (expected_completion_hours > 0),
    start_ts                   timestamptz      NOT NULL,
    pattern_set_id             text             NOT NULL,
    computed_at                timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts, pattern)
);
