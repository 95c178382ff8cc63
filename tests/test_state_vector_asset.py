"""ml_state_vectors on real PostgreSQL: stored raw rows, vectors read back equal in-memory builds,
range runs equal one-day runs, books from raw_orderbook, the blocking check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_helpers import count, metadata_of, run_assets

from pipeline_assets.assets.state_vectors import STATE_LOOKBACK_DAYS, state_vector_config
from pipeline_assets.features.ohlcv_features import FEATURE_COLUMNS
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.state_vector import StateVectorBuilder
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import read_frame
from pipeline_assets.store.state_vectors import MissingStateRows, read_orderbook, read_vectors
from pipeline_assets.store.warehouse import OHLCV_FEATURE_COLUMNS_SQL, read_ohlcv, truncate_all

FIRST = datetime(2024, 1, 1, tzinfo=UTC)
RAW_DAYS = 44
RAW = [(FIRST + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(RAW_DAYS)]
VECTOR_DAYS = RAW[-10:]


@pytest.fixture(scope="module")
def stored(database_url):
    with connect(database_url) as conn, conn.transaction():
        truncate_all(conn)
    instance = DagsterInstance.ephemeral()
    run_assets(["raw_ohlcv", "raw_orderbook"], database_url, instance=instance, partition_range=(RAW[0], RAW[-1]))
    result = run_assets(
        ["ml_state_vectors"], database_url, instance=instance, partition_range=(VECTOR_DAYS[0], VECTOR_DAYS[-1])
    )
    return {"url": database_url, "instance": instance, "result": result}


def _bars_and_books(url: str, end: datetime):
    with connect(url) as conn:
        bars = read_ohlcv(conn, list(SYMBOLS), FIRST, end)
        books = read_orderbook(conn, list(SYMBOLS), FIRST, end + timedelta(hours=1))
    data = {
        s: g.drop(columns=["symbol"]).rename(columns={"ts": "timestamp"}).reset_index(drop=True)
        for s, g in bars.groupby("symbol")
    }
    return data, books


def test_one_raw_row_per_hour_and_no_window_is_stored(stored):
    url = stored["url"]
    assert count(url, "SELECT count(*) FROM ml_state_vector_rows") == 10 * 24
    width = StateVectorBuilder(state_vector_config()).layout_spec.raw_width
    assert count(url, "SELECT min(length(raw_row)) FROM ml_state_vector_rows") == width * 8
    assert (
        count(url, "SELECT count(*) FROM ml_state_vector_rows WHERE cardinality(book_symbols) = %s", (len(SYMBOLS),))
        == 240
    )
    assert count(url, "SELECT count(*) FROM state_vector_layouts") == 1
    meta = metadata_of(stored["result"], "ml_state_vectors", VECTOR_DAYS[-1])
    assert meta["vectors_checked"] == 240 - 167  # hours with a full 168-hour window of stored rows
    assert meta["hours_without_full_window"] == 167
    checks = stored["result"].get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert STATE_LOOKBACK_DAYS >= 31


def test_vectors_read_from_the_warehouse_equal_in_memory_builds(stored):
    url = stored["url"]
    builder = StateVectorBuilder(state_vector_config())
    day = datetime.fromisoformat(VECTOR_DAYS[-1]).replace(tzinfo=UTC)
    with connect(url) as conn:
        hours, vectors = read_vectors(conn, builder, day, day + timedelta(days=1))
    assert vectors.shape == (24, 168, 768) and vectors.dtype == np.float32
    data, books = _bars_and_books(url, day + timedelta(days=1))
    for index in (0, 11, 23):
        # the vector of hour h is the state just after bar h closed, with the book snapshot taken
        # then (2 s after the close for the synthetic source)
        decision = pd.Timestamp((int(hours[index]) + 1) * 3600 + 5, unit="s", tz="UTC")
        known = {s: [b for b in snaps if b["timestamp"] <= decision] for s, snaps in books.items()}
        memory = builder.build(data, known, None, timestamp=decision)
        differ = np.argwhere(vectors[index] != memory)
        assert not len(differ), (
            index,
            [(int(r), builder.layout()[c], float(vectors[index][r, c]), float(memory[r, c])) for r, c in differ[:5]],
            len(differ),
        )
    names = builder.layout()
    assert (vectors[:, :, names.index("BTCUSDT.book.present")] == 1.0).all()
    with (
        connect(url) as conn,
        pytest.raises(MissingStateRows, match="2024-02-05T00:00:00.* needs the stored row of 2024-01-29T01:00"),
    ):
        read_vectors(conn, builder, day - timedelta(days=8), day)


def test_a_one_day_run_stores_the_same_rows_as_the_range_run(stored):
    url = stored["url"]
    with connect(url) as conn:
        before = conn.execute(
            "SELECT ts, raw_row FROM ml_state_vector_rows WHERE ts >= %s ORDER BY ts", (VECTOR_DAYS[4],)
        ).fetchall()
    run_assets(["ml_state_vectors"], url, instance=stored["instance"], partition_key=VECTOR_DAYS[4])
    with connect(url) as conn:
        after = conn.execute(
            "SELECT ts, raw_row FROM ml_state_vector_rows WHERE ts >= %s ORDER BY ts", (VECTOR_DAYS[4],)
        ).fetchall()
    assert [bytes(r[1]) for r in before] == [bytes(r[1]) for r in after]
    assert len(after) == 6 * 24


def test_stored_indicator_columns_equal_the_feature_table(stored):
    url = stored["url"]
    run_assets(
        ["ml_features_ohlcv"], url, instance=stored["instance"], partition_range=(VECTOR_DAYS[0], VECTOR_DAYS[-1])
    )
    builder = StateVectorBuilder(state_vector_config())
    spec = builder.layout_spec
    with connect(url) as conn:
        stored_rows = conn.execute("SELECT ts, raw_row FROM ml_state_vector_rows ORDER BY ts").fetchall()
        features = read_frame(
            conn,
            f"SELECT ts, {OHLCV_FEATURE_COLUMNS_SQL} FROM ml_features_ohlcv WHERE symbol = 'ETHUSDT' ORDER BY ts",
        )
    rows = np.frombuffer(b"".join(bytes(r[1]) for r in stored_rows), dtype="<f8").reshape(
        len(stored_rows), spec.raw_width
    )
    columns = [spec.raw_columns.index(f"ETHUSDT.ind.{c}") for c in FEATURE_COLUMNS]
    by_ts = features.set_index("ts").loc[[pd.Timestamp(r[0]) for r in stored_rows], list(FEATURE_COLUMNS)]
    assert np.array_equal(rows[:, columns], by_ts.to_numpy())


def test_order_book_arrays_are_stored_bit_for_bit_and_bad_levels_are_refused(warehouse_url):
    from pipeline_assets.store.state_vectors import write_orderbook

    at = datetime(2030, 1, 1, tzinfo=UTC)
    awkward = [0.1 + 0.2, 1e-300, 123456.789012345678, 5e-324]
    book = pd.DataFrame(
        {
            "symbol": ["BTCUSDT"],
            "venue": ["test"],
            "snapshot_at": [at],
            "bid_prices": [np.array(awkward)],
            "bid_sizes": [np.array([1.0, 2.0, 3.0, 4.0])],
            "ask_prices": [np.array([7.0])],
            "ask_sizes": [np.array([0.5])],
        }
    )
    with connect(warehouse_url) as conn, conn.transaction():
        assert write_orderbook(conn, book, at, at + timedelta(hours=1), source="test") == 1
        (prices,) = conn.execute("SELECT bid_prices FROM raw_orderbook WHERE venue = 'test'").fetchone()
        assert prices == awkward  # the exact float64 values, not rounded text
        read = read_orderbook(conn, ["BTCUSDT"], at, at + timedelta(hours=1))["BTCUSDT"][0]
        assert read["bids"][0] == (awkward[0], 1.0) and read["asks"] == [(7.0, 0.5)]
    for bad, message in (
        (book.assign(ask_sizes=[np.array([np.nan])]), "not finite"),
        (book.assign(venue=["a\tb"]), "venue 'a\\\\tb' holds a tab"),
    ):
        with pytest.raises(ValueError, match=message), connect(warehouse_url) as conn, conn.transaction():
            write_orderbook(conn, bad, at, at + timedelta(hours=1), source="test")
    assert count(warehouse_url, "SELECT count(*) FROM raw_orderbook WHERE venue = 'test'") == 1  # kept, not replaced
