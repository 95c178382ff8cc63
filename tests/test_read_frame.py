"""read_frame's COPY path returns exactly what the row path returns, for every type it takes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import _read_frame_rows, read_frame

QUERIES = [
    ("SELECT symbol, ts, open, close FROM t ORDER BY ts", None),
    (
        "SELECT symbol, ts, n, x FROM t WHERE symbol = ANY(%s) AND ts >= %s ORDER BY ts",
        (["A", "B,C"], "2024-01-01T01:00Z"),
    ),
    ("SELECT symbol, ts FROM t WHERE symbol = %(s)s", {"s": "no such"}),
    ("WITH w AS (SELECT * FROM t) SELECT count(*) AS c, max(ts) AS m, min(x) AS low FROM w", None),
    ("SELECT note, flag FROM t ORDER BY ts", None),
]


@pytest.fixture
def table(warehouse_url):
    with connect(warehouse_url) as conn, conn.transaction():
        conn.execute(
            "CREATE TABLE IF NOT EXISTS t (symbol text, ts timestamptz, open float8, close numeric, n int, x bigint, "
            "note text, flag boolean)"
        )
        conn.execute("TRUNCATE t")
        conn.execute(
            """
            INSERT INTO t VALUES
            ('A', '2024-01-01T00:00:00.123456Z', 1.5, 2.25, 1, 10, 'plain', true),
            ('B,C', '2024-01-01T01:00:00+02:00', 'NaN', 'Infinity', NULL, 11, 'with "quotes", comma
and newline', NULL),
            ('A', '2024-01-01T02:00:00Z', '-Infinity', NULL, 3, NULL, '', false),
            ('A', NULL, NULL, 1e300, 4, 13, NULL, true)
            """
        )
    yield warehouse_url
    with connect(warehouse_url) as conn, conn.transaction():
        conn.execute("DROP TABLE t")


@pytest.mark.parametrize("query, params", QUERIES)
def test_copy_path_equals_the_row_path(table, query, params):
    with connect(table) as conn:
        fast = read_frame(conn, query, params)
        rows = _read_frame_rows(conn, query, params)
    pd.testing.assert_frame_equal(fast, rows, check_dtype=True)


def test_types_and_values_are_the_promised_ones(table):
    with connect(table) as conn:
        frame = read_frame(conn, "SELECT symbol, ts, open, close, n, x, note FROM t ORDER BY n NULLS FIRST")
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["ts"].iloc[1] == pd.Timestamp("2024-01-01T00:00:00.123456Z")
    assert frame["n"].dtype == "Int64" and frame["x"].dtype == "Int64"
    assert np.isnan(frame["open"].iloc[0]) and np.isinf(frame["close"].iloc[0])
    assert frame["symbol"].iloc[0] == "B,C" and frame["note"].iloc[0].endswith("comma\nand newline")
    assert frame["note"].iloc[2] == "" and frame["note"].iloc[3] is None
