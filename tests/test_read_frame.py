"""read_frame against a real PostgreSQL: the COPY BINARY path returns the promised dtypes and values,
exactly what the row path returns, and leaves to the row path what it does not decode."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import _read_frame_copy, _read_frame_rows, read_frame, upsert_frame
from pipeline_assets.store.warehouse import read_ohlcv

ROWS = """
INSERT INTO t VALUES
  (1, 'A', '2024-01-01T00:00:00.123456Z', 1.5, 0.1, 2.25, 1, 10, 7, 'plain', 'v', 'ab', 'n1', true, '2024-01-01'),
  (2, 'B,C', '2024-01-01T01:00:00.000001+02:00', 'NaN', 'NaN', 'Infinity', NULL, 9223372036854775807, -32768,
   'with "quotes", comma
and newline', NULL, NULL, NULL, NULL, NULL),
  (3, 'A', '1999-12-31T23:59:59.999999Z', '-Infinity', '-Infinity', NULL, -2147483648, NULL, NULL, '', '', '', '',
   false, NULL),
  (4, 'ÉTH ✓', NULL, NULL, NULL, 1e300, 4, -9223372036854775808, 32767, NULL, 'varchar', 'x', 'name', true, NULL),
  (5, 'A', '0001-01-01T00:00:00Z', 5e-324, 3.4e38, -0.000001, 0, 0, 0, 'é', 'ü', 'ñ', 'ø', NULL, NULL)
"""

ALL_TYPES = "SELECT id, symbol, ts, f8, f4, num, i4, i8, i2, note, vc, bc, nm FROM t ORDER BY id"


@pytest.fixture(scope="module")
def table(database_url):
    with connect(database_url) as conn, conn.transaction():
        conn.execute("DROP TABLE IF EXISTS t")
        conn.execute(
            "CREATE TABLE t (id int, symbol text, ts timestamptz, f8 float8, f4 real, num numeric, i4 int, i8 bigint, "
            "i2 smallint, note text, vc varchar(10), bc char(4), nm name, flag boolean, day date)"
        )
        conn.execute(ROWS)
    yield database_url
    with connect(database_url) as conn, conn.transaction():
        conn.execute("DROP TABLE t")


def both(url, query, params=None):
    """The COPY path's frame (asserting it was taken) and the row path's frame."""
    with connect(url) as conn:
        fast = _read_frame_copy(conn, query, params)
        rows = _read_frame_rows(conn, query, params)
    assert fast is not None, "the COPY path declined a query it should read"
    return fast, rows


def test_every_supported_type_with_nulls_round_trips_to_the_promised_dtypes_and_values(table):
    fast, rows = both(table, ALL_TYPES)
    pd.testing.assert_frame_equal(fast, rows, check_dtype=True)
    dtypes = {c: str(t) for c, t in fast.dtypes.items()}
    assert dtypes == {
        "id": "int64",
        "symbol": "object",
        "ts": "datetime64[us, UTC]",
        "f8": "float64",
        "f4": "float64",
        "num": "float64",
        "i4": "Int64",
        "i8": "Int64",
        "i2": "Int64",
        "note": "object",
        "vc": "object",
        "bc": "object",
        "nm": "object",
    }
    ts = fast["ts"].tolist()
    assert ts[0] == pd.Timestamp("2024-01-01T00:00:00.123456Z")
    assert ts[1] == pd.Timestamp("2023-12-31T23:00:00.000001Z")  # +02:00 read as the UTC instant
    assert ts[2] == pd.Timestamp("1999-12-31T23:59:59.999999Z")  # just before PostgreSQL's binary epoch
    assert ts[3] is pd.NaT and ts[4] == pd.Timestamp("0001-01-01T00:00:00Z")
    f8, f4, num = fast["f8"].tolist(), fast["f4"].tolist(), fast["num"].tolist()
    assert f8[0] == 1.5 and math.isnan(f8[1]) and f8[2] == -math.inf and math.isnan(f8[3]) and f8[4] == 5e-324
    assert f4[0] == 0.1 and math.isnan(f4[1]) and f4[2] == -math.inf and math.isnan(f4[3]) and f4[4] == 3.4e38
    assert num[0] == 2.25 and num[1] == math.inf and math.isnan(num[2]) and num[3] == 1e300 and num[4] == -1e-6
    assert fast["i8"].tolist() == [10, 2**63 - 1, pd.NA, -(2**63), 0]
    assert fast["i4"].tolist() == [1, pd.NA, -(2**31), 4, 0]
    assert fast["i2"].tolist() == [7, -32768, pd.NA, 32767, 0]
    assert fast["symbol"].tolist() == ["A", "B,C", "A", "ÉTH ✓", "A"]
    assert fast["note"].tolist() == ["plain", 'with "quotes", comma\nand newline', "", None, "é"]
    assert fast["bc"].tolist() == ["ab  ", None, "    ", "x   ", "ñ   "]  # char(n) keeps its padding
    assert fast["nm"].tolist() == ["n1", None, "", "name", "ø"]


@pytest.mark.parametrize(
    "query, params",
    [
        ("SELECT symbol, ts, i8 FROM t WHERE symbol = ANY(%s) AND ts >= %s ORDER BY id", (["A", "B,C"], "1999-01-01Z")),
        ("SELECT id, note FROM t WHERE symbol = %(s)s AND id < %(n)s ORDER BY id DESC", {"s": "A", "n": 5}),
        ("SELECT %s::float8 AS x, %s AS label, 100 %% 7 AS m", (2.5, "it's")),
        ("WITH w AS (SELECT * FROM t) SELECT count(*) AS c, max(ts) AS m, min(f8) AS low FROM w;", None),
        (sql.SQL("SELECT {} FROM {} ORDER BY 1").format(sql.Identifier("i4"), sql.Identifier("t")), None),
        ('SELECT id AS "odd ""name""", 1 AS "?column?", 2 AS share, 3 AS updated_at FROM t ORDER BY id', None),
    ],
)
def test_parameters_composed_queries_and_odd_names_read_like_the_row_path(table, query, params):
    fast, rows = both(table, query, params)
    pd.testing.assert_frame_equal(fast, rows, check_dtype=True)
    assert len(fast) > 0


def test_parameters_select_the_rows_asked_for(table):
    with connect(table) as conn:
        frame = read_frame(
            conn, "SELECT id, symbol FROM t WHERE symbol = %s AND ts < %s ORDER BY id", ("A", "2024-01-01Z")
        )
    assert frame["id"].tolist() == [3, 5]


def test_an_empty_result_has_the_promised_dtypes(table):
    query = "SELECT ts, f8, num, i8, note FROM t WHERE symbol = %(s)s"
    fast, rows = both(table, query, {"s": "no such"})
    assert fast.empty and list(fast.columns) == ["ts", "f8", "num", "i8", "note"]
    assert [str(t) for t in fast.dtypes] == ["datetime64[us, UTC]", "float64", "float64", "int64", "object"]
    pd.testing.assert_frame_equal(fast, rows, check_dtype=True)


def test_rows_of_varying_length_many_text_columns_and_more_than_one_gather_block(database_url):
    # ~6 MB of text in rows of different lengths: offsets walk row by row, gathered in 4 MB blocks
    query = """
        SELECT g AS n, CASE WHEN g % 7 = 0 THEN NULL ELSE repeat(chr(65 + g % 26), g % 1500) END AS a,
               (g * 0.5)::numeric AS half, CASE WHEN g % 5 = 0 THEN NULL ELSE 'é' || g END AS b,
               timestamptz '2020-01-01' + g * interval '1 second' AS ts,
               CASE WHEN g % 3 = 0 THEN NULL ELSE 'S' || g % 4 END AS few  -- few distinct values, and NULLs
        FROM generate_series(1, 8000) g ORDER BY g DESC
    """
    fast, rows = both(database_url, query)
    pd.testing.assert_frame_equal(fast, rows, check_dtype=True)
    assert fast["n"].tolist() == list(range(8000, 0, -1))  # the query's order
    assert fast["a"].iloc[0] == "S" * (8000 % 1500) and fast["a"].iloc[6] is None  # 8000 % 26 = 18; 7994 = 7 * 1142
    assert fast["few"].tolist()[:4] == ["S0", "S3", None, "S1"]  # 8000, 7999, 7998, 7997
    assert fast["half"].iloc[0] == 4000.0 and fast["b"].iloc[0] is None and fast["b"].iloc[1] == "é7999"


def test_a_session_outside_utc_reads_the_same_instants(table):
    with psycopg.connect(table, options="-c timezone=Asia/Kathmandu -c DateStyle=SQL,DMY") as conn:
        fast = read_frame(conn, "SELECT id, ts FROM t ORDER BY id")
    assert fast["ts"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00.123456Z")
    assert str(fast["ts"].dtype) == "datetime64[us, UTC]"


def test_other_types_take_the_row_path_as_objects(table):
    query = "SELECT id, flag, day, ARRAY[id] AS ids, jsonb_build_object('k', id) AS doc FROM t ORDER BY id"
    with connect(table) as conn:
        assert _read_frame_copy(conn, query, None) is None
        frame = read_frame(conn, query)
    assert frame["id"].dtype == "int64" and frame["flag"].dtype == object
    assert frame["flag"].tolist() == [True, None, False, True, None]
    assert (
        str(frame["day"].iloc[0]) == "2024-01-01" and frame["ids"].iloc[1] == [2] and frame["doc"].iloc[2] == {"k": 3}
    )


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id FROM t WHERE id = 1 FOR UPDATE",
        "SELECT id FROM t WHERE id = 1 FOR KEY  SHARE",
        "WITH gone AS (DELETE FROM t WHERE id = 5 RETURNING id) SELECT id FROM gone",
        "SELECT 1 AS a; SELECT 2 AS a",
        "  -- a comment first\nSELECT 1 AS a",
    ],
)
def test_statements_that_are_not_plain_reads_take_the_row_path(table, query):
    with connect(table) as conn:
        assert _read_frame_copy(conn, query, None) is None
        frame = read_frame(conn, query)
        conn.rollback()  # the DELETE stays undone
    assert len(frame) == 1 and frame.iloc[0, 0] in (1, 2, 5)


@pytest.mark.parametrize("value", ["infinity", "-infinity"])
def test_infinite_timestamps_raise_as_in_the_row_path_instead_of_a_wrong_value(table, value):
    with connect(table) as conn, pytest.raises(psycopg.DataError, match="timestamp too"):
        read_frame(conn, f"SELECT ts FROM t UNION ALL SELECT '{value}'::timestamptz")


def test_errors_in_the_query_name_the_problem(table):
    with connect(table) as conn, pytest.raises(psycopg.errors.UndefinedColumn, match="no_such_column"):
        read_frame(conn, "SELECT no_such_column FROM t")


def test_numbers_are_rounded_once_and_int8_stays_exact(database_url):
    with connect(database_url) as conn:
        frame = read_frame(
            conn,
            "SELECT 0.1::numeric + 0.2 AS s, 123456789.123456789::numeric AS d, 9007199254740993::int8 AS big, "
            "('1' || repeat('0', 400))::numeric AS huge",
        )
    assert frame["s"].iloc[0] == 0.3  # numeric adds exactly; one rounding, to the nearest float
    assert frame["d"].iloc[0] == 123456789.12345679
    assert frame["big"].dtype == np.int64 and frame["big"].iloc[0] == 2**53 + 1  # beyond float precision
    assert frame["huge"].iloc[0] == math.inf  # as float(Decimal) gives; PostgreSQL's float8 cast would fail


def test_warehouse_reads_through_read_frame_return_what_was_written(warehouse_url):
    ts = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")
    rng = np.random.default_rng(7)
    written = pd.concat(
        [
            pd.DataFrame({"symbol": symbol, "ts": ts, **{c: rng.random(48) for c in ("open", "high", "low", "close")}})
            for symbol in ("BTCUSDT", "DOGEUSDT")  # symbols of different lengths: rows of different lengths
        ],
        ignore_index=True,
    ).assign(volume=lambda f: f["close"] * 1e6, source="test", available_at=lambda f: f["ts"] + pd.Timedelta(hours=1))
    with connect(warehouse_url) as conn, conn.transaction():
        upsert_frame(conn, "raw_ohlcv", written, ["symbol", "ts"])
    with connect(warehouse_url) as conn:
        read = read_ohlcv(
            conn, ["DOGEUSDT", "BTCUSDT"], datetime(2024, 1, 1, 6, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
        )
    expected = written[(written["ts"] >= "2024-01-01T06:00Z") & (written["ts"] < "2024-01-02T00:00Z")]
    expected = expected[["symbol", "ts", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
    expected["symbol"] = expected["symbol"].astype(object)
    pd.testing.assert_frame_equal(read, expected.astype({"ts": "datetime64[us, UTC]"}), check_exact=True)
