"""The exchange source through the assets, replayed at the HTTP layer (no network): bars into
raw_ohlcv, the live book collected going forward into raw_orderbook, a symbol the exchange does
not list reported rather than failing the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance
from dagster_helpers import count, metadata_of, run_assets
from test_exchange_source import SPOT_DEPTH, SPOT_KLINES, hourly_rows, replay_source

from pipeline_assets.assets import _common
from pipeline_assets.assets import state_vectors as state_vector_assets
from pipeline_assets.resources import MarketDataResource
from pipeline_assets.store.db import connect
from pipeline_assets.store.warehouse import truncate_all

DAY = "2024-02-01"
NOW = datetime(2024, 2, 1, 16, 12, tzinfo=UTC)


def _book(mid: float) -> dict:
    return {
        "lastUpdateId": 1,
        "bids": [[f"{mid - 0.5 - k:.2f}", f"{1 + k}.000"] for k in range(10)],
        "asks": [[f"{mid + 0.5 + k:.2f}", f"{2 + k}.000"] for k in range(10)],
    }


@pytest.fixture
def exchange(monkeypatch, warehouse_url):
    with connect(warehouse_url) as conn, conn.transaction():
        truncate_all(conn)
    source, server, _ = replay_source("spot", now=NOW)
    start = datetime(2024, 1, 31, tzinfo=UTC)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        server.candles[(SPOT_KLINES, symbol)] = hourly_rows(start, 48)  # includes bars not closed at NOW
        server.books[(SPOT_DEPTH, symbol)] = _book(100.0)
    monkeypatch.setattr(MarketDataResource, "exchange", lambda self: source)
    monkeypatch.setattr(_common, "utc_now", lambda: NOW)
    monkeypatch.setattr(state_vector_assets, "utc_now", lambda: NOW)
    return {"url": warehouse_url, "source": source, "server": server}


def test_bars_and_live_books_from_the_exchange(exchange, monkeypatch):
    url = exchange["url"]
    market = MarketDataResource(ohlcv_source="exchange")
    instance = DagsterInstance.ephemeral()
    result = run_assets(["raw_ohlcv", "raw_orderbook"], url, partition_key=DAY, instance=instance, market=market)
    # 16 closed hours (00:00..15:00) for the two listed symbols; the forming 16:00 bar is not stored
    assert count(url, "SELECT count(*) FROM raw_ohlcv") == 2 * 16
    assert count(url, "SELECT max(ts) FROM raw_ohlcv WHERE symbol = 'BTCUSDT'") == datetime(2024, 2, 1, 15, tzinfo=UTC)
    assert count(url, "SELECT count(DISTINCT source) FROM raw_ohlcv") == 1
    assert count(url, "SELECT min(source) FROM raw_ohlcv") == "exchange:binance:spot"
    meta = metadata_of(result, "raw_orderbook")
    assert meta["rows_in_run"] == 2
    assert set(meta["symbols_without_book"]) == {"BNBUSDT", "SOLUSDT"}
    assert count(url, "SELECT min(venue) FROM raw_orderbook") == "binance:spot"
    assert count(url, "SELECT bid_prices[1] FROM raw_orderbook WHERE symbol = 'ETHUSDT'") == pytest.approx(99.5)
    # an hour later the next snapshot is added; the first one is kept (a live book is seen once)
    later = NOW + timedelta(hours=1)
    monkeypatch.setattr(exchange["source"], "_now", lambda: later)
    monkeypatch.setattr(_common, "utc_now", lambda: later)
    monkeypatch.setattr(state_vector_assets, "utc_now", lambda: later)
    run_assets(["raw_orderbook"], url, partition_key=DAY, instance=instance, market=market)
    assert count(url, "SELECT count(*) FROM raw_orderbook") == 4
    # a past day: exchanges publish no book history, nothing is invented
    past = run_assets(["raw_orderbook"], url, partition_key="2024-01-30", instance=instance, market=market)
    assert metadata_of(past, "raw_orderbook")["rows_in_run"] == 0
    assert "no order-book history" in metadata_of(past, "raw_orderbook")["note"]
    assert count(url, "SELECT count(*) FROM raw_orderbook") == 4


def test_the_backfill_command_on_a_replayed_exchange(fresh_database, tmp_path):
    """As a user would, with the exchange replayed from the recorded Binance responses: the real
    recorded BTC/USDT 1h candles land in raw_ohlcv through ccxt's own parsing; a symbol the
    recording does not list is reported, not invented; nothing touches the network."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    replay = Path(__file__).parent / "fixtures" / "exchange_replay_binance.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "DAGSTER_"))}
    env.update(
        {
            "PIPELINE_DATABASE_URL": fresh_database,
            "DAGSTER_HOME": str(tmp_path / "home"),
            "PIPELINE_EXCHANGE_REPLAY": str(replay),
            "PIPELINE_EXCHANGE": "binance",
            "PIPELINE_MARKET_TYPE": "spot",
            "PIPELINE_PARTITION_START": "2024-01-01",
        }
    )
    args = ["--start", "2024-01-30", "--end", "2024-01-30", "--source", "exchange", "--symbols", "BTCUSDT,ETHUSDT"]
    result = subprocess.run(
        [sys.executable, "-m", "pipeline_assets", "backfill", *args, "--select", "raw_ohlcv,raw_orderbook"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    with connect(fresh_database) as conn:
        rows = conn.execute("SELECT symbol, ts, open, close, volume, source FROM raw_ohlcv ORDER BY ts").fetchall()
    # the recording holds BTC/USDT candles from 16:00 (fetchOHLCV since 2024-01-30T15:23, limit 3)
    assert [r[1].isoformat() for r in rows] == [
        "2024-01-30T16:00:00+00:00",
        "2024-01-30T17:00:00+00:00",
        "2024-01-30T18:00:00+00:00",
    ]
    assert rows[0][2:5] == (43519.34, 43488.71, 20.55495) and rows[0][5] == "exchange:binance:spot"
    assert {r[0] for r in rows} == {"BTCUSDT"}  # ETHUSDT: the recording has no candles for it
