"""Liquidations collected forward from the exchange's websocket, replayed offline through ccxt
pro's own client, message handler and parser (no network): the hand-built session
(fixtures/exchange_handbuilt/binance_fapi_forceOrder_ws.json, shaped like the forceOrder
example in ccxt's source comments) has a malformed frame, an event without trade time, an event
against the contract, a disconnect, and a re-delivery after the reconnect. Then the warehouse:
raw_liquidations and market_aligned from what was collected, with watched / unwatched hours."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_helpers import count, metadata_of, run_assets

from pipeline_assets.features.watch_coverage import UNWATCHED_REASON, merge_intervals, watched_hours
from pipeline_assets.sources.liquidation_stream import LiquidationCollector, make_stream_exchange
from pipeline_assets.sources.ws_replay import load_ws_replay
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import read_frame
from pipeline_assets.store.liquidations import write_collected
from pipeline_assets.store.migrate import migrate, sql_dir

FIXTURES = Path(__file__).parent / "fixtures"
SESSION = FIXTURES / "exchange_handbuilt" / "binance_fapi_forceOrder_ws.json"
REST_REPLAY = FIXTURES / "exchange_replay_binance.json"
DAY = "2024-03-01"


def T(clock: str) -> pd.Timestamp:
    return pd.Timestamp(f"{DAY} {clock}", tz="UTC")


def _intervals(*pairs) -> pd.DataFrame:
    return pd.DataFrame({"watched_from": [T(a) for a, _ in pairs], "watched_until": [T(b) for _, b in pairs]})


# ---- coverage -------------------------------------------------------------------------------


def test_intervals_are_merged_never_summed():
    merged = merge_intervals(
        _intervals(("00:00", "00:40"), ("00:20", "00:50"), ("01:00", "01:30"), ("01:30", "02:00"), ("03:00", "02:00"))
    )
    # overlapping -> one; touching -> one; inverted -> nothing
    assert list(zip(merged["watched_from"], merged["watched_until"], strict=True)) == [
        (T("00:00"), T("00:50")),
        (T("01:00"), T("02:00")),
    ]
    hours = pd.date_range(T("00:00"), periods=4, freq="h")
    # 00:00 has 40 + 30 minutes of intervals, but their union is 50 minutes: not watched
    assert watched_hours(_intervals(("00:00", "00:40"), ("00:20", "00:50")), hours).tolist() == [False] * 4
    # two intervals touching at 01:30 cover the hour 01:00 together
    assert watched_hours(_intervals(("01:00", "01:30"), ("01:30", "02:00")), hours).tolist() == [
        False, True, False, False,
    ]  # fmt: skip
    # a one-second reconnect gap leaves the hour unwatched
    gap = _intervals(("00:00", "02:00:00"), ("02:00:01", "04:00"))
    assert watched_hours(gap, hours).tolist() == [True, True, False, True]
    assert watched_hours(_intervals(), hours).tolist() == [False] * 4
    # an interval ending exactly at the hour's end covers it; one starting a millisecond late does not
    assert watched_hours(_intervals(("00:00", "01:00")), hours[:1]).tolist() == [True]
    assert watched_hours(_intervals(("00:00:00.001", "03:00")), hours).tolist() == [False, True, True, False]


# ---- the replayed session -------------------------------------------------------------------


def _collect(monkeypatch, sink, session: Path = SESSION):
    monkeypatch.setenv("PIPELINE_EXCHANGE_REPLAY", str(REST_REPLAY))  # the market list, through ccxt REST
    exchange = make_stream_exchange("binance")
    replay = load_ws_replay(session)
    exchange.session = replay
    collector = LiquidationCollector(
        exchange, ["BTCUSDT", "ETHUSDT"], sink, now=replay.clock, flush_seconds=600, reconnect_delay_s=0
    )
    report = asyncio.run(asyncio.wait_for(collector.run(stop=replay.exhausted), 60))
    return report, replay


def test_a_replayed_session_through_ccxt_pro(monkeypatch):
    assert json.loads(SESSION.read_text())["handbuilt"] is True
    batches = []
    report, replay = _collect(monkeypatch, batches.append)
    # ccxt subscribed on each connection (the reconnect re-subscribed) to the symbols' streams
    subscribes = [(i, m["params"]) for i, m in replay.sent if m.get("method") == "SUBSCRIBE"]
    assert subscribes == [
        (0, ["btcusdt@forceOrder", "ethusdt@forceOrder"]),
        (1, ["btcusdt@forceOrder", "ethusdt@forceOrder"]),
    ]
    assert all(url.startswith("wss://fstream.binance.com/") for url in replay.urls)
    events = pd.concat([b.events for b in batches], ignore_index=True)
    rejected = pd.concat([b.rejected for b in batches], ignore_index=True)
    # six events once each; the 20:15 one re-delivered after the reconnect is not doubled
    assert report.duplicates == 1 and report.events == 6 and len(events) == 6
    assert events["event_id"].is_unique
    eth_late = events[(events["symbol"] == "ETHUSDT") & (events["ts"] == T("20:14:59.500"))]
    assert len(eth_late) == 1 and eth_late["available_at"].iloc[0] == T("20:15:00")  # the first receipt
    # ccxt's example frame, parsed by ccxt: side from S, size from l (x contract size 1), price from ap
    example = events[events["ts"] == pd.Timestamp(1709325723059, unit="ms", tz="UTC")]
    assert example[["symbol", "side", "size", "price"]].iloc[0].tolist() == ["BTCUSDT", "buy", 1.437, 34959.70]
    assert (events["available_at"] >= events["ts"]).all() and (events["venue"] == "binance:swap").all()
    assert (events["available_at"] - events["ts"]).max() <= pd.Timedelta(seconds=1)
    # the malformed frame, the event without trade time, the event with zero size: refused with reasons
    reasons = sorted(rejected["reason"])
    assert len(reasons) == 3 and report.rejected == 3
    assert reasons[0] == "BTCUSDT liquidation without T (trade time)"
    assert reasons[1].startswith("frame is not a JSON object: 'forceOrder BTCUSDT truncated'")
    assert reasons[2] == "size or price not positive"
    assert rejected.loc[rejected["reason"] == "size or price not positive", "ts"].iloc[0] == T("19:39:59.900")
    # coverage: confirmed 17:58:01; the drop at 20:20 ends it at the last frame heard (20:15); the
    # reconnect is covered from its confirmation; the stop at 23:10 less ccxt's keep-alive window
    # (180 s x 2 missed pongs) since nothing was heard after 22:30
    assert report.intervals == [
        (T("17:58:01").isoformat(), T("20:15:00").isoformat()),
        (T("20:25:01").isoformat(), T("23:04:00").isoformat()),
    ]
    final = batches[-1].coverage
    assert set(final["symbol"]) == {"BTCUSDT", "ETHUSDT"} and (final["ended_by"] == "stopped").all()


def test_a_subscription_the_exchange_refuses_is_an_error_naming_the_symbols(monkeypatch, tmp_path):
    from pipeline_assets.sources.liquidation_stream import LiquidationStreamError

    session = {
        "handbuilt": True,
        "ended_at": "2024-03-01T01:00:00Z",
        "connections": [
            {
                "opened_at": "2024-03-01T00:00:00Z",
                "frames": [
                    {"at": "2024-03-01T00:00:01Z", "data": {"error": {"code": 2, "msg": "Invalid request"}, "id": 1}}
                ],
            }
        ],
    }  # fmt: skip
    path = tmp_path / "refused.json"
    path.write_text(json.dumps(session))
    with pytest.raises(
        LiquidationStreamError,
        match=r"binance:swap liquidations BTCUSDT,ETHUSDT at 2024-03-01T00:00:01.*refused.*Invalid request",
    ):
        _collect(monkeypatch, lambda batch: None, path)


# ---- through the warehouse ------------------------------------------------------------------


def _sink(url):
    def sink(batch):
        with connect(url) as conn, conn.transaction():
            write_collected(conn, batch.events, batch.rejected, batch.coverage)

    return sink


def _aligned(url) -> pd.DataFrame:
    with connect(url) as conn:
        return read_frame(
            conn,
            "SELECT symbol, ts, liq_buy_notional, liq_sell_notional, liq_count FROM market_aligned ORDER BY symbol, ts",
        ).set_index(["symbol", "ts"])


def test_collected_liquidations_become_raw_rows_and_aligned_hours(warehouse_url, monkeypatch):
    from pipeline_assets.resources import MarketDataResource

    _collect(monkeypatch, _sink(warehouse_url))
    # the same session collected again (a second collector, the same re-deliveries): nothing doubles
    _collect(monkeypatch, _sink(warehouse_url))
    assert count(warehouse_url, "SELECT count(*) FROM raw_liquidations") == 6
    assert count(warehouse_url, "SELECT count(*) FROM raw_liquidations WHERE available_at < ts") == 0
    assert count(warehouse_url, "SELECT count(*) FROM quarantine WHERE table_name = 'raw_liquidations'") == 3
    assert count(
        warehouse_url, "SELECT count(*) FROM quarantine WHERE reason = 'size or price not positive' "
        "AND partition_key = '2024-03-01|BTCUSDT' AND ts = '2024-03-01 19:39:59.9+00'"
    ) == 1  # fmt: skip
    assert count(warehouse_url, "SELECT count(*) FROM liquidation_watch") == 4  # 2 intervals x 2 symbols

    instance = DagsterInstance.ephemeral()
    market = MarketDataResource(ohlcv_source="exchange")
    result = run_assets(["raw_liquidations"], warehouse_url, partition_key=DAY, instance=instance, market=market)
    meta = metadata_of(result, "raw_liquidations")
    assert meta["rows"] == 6 and meta["rows_in_run"] == 6 and meta["venue"] == "binance:swap"
    # watched: 18, 19, 21, 22 (the drop at 20:15 and the stop at 23:04 leave 20 and 23 unwatched)
    assert meta["watched_hours"] == {"BTCUSDT": 4, "ETHUSDT": 4, "BNBUSDT": 0, "SOLUSDT": 0}
    btc = meta["unwatched_hours"]["BTCUSDT"]
    assert btc["hours"] == 20 and btc["reason"] == UNWATCHED_REASON
    assert [(r["first"], r["last"]) for r in btc["runs"]] == [
        (T("00:00").isoformat(), T("17:00").isoformat()),
        (T("20:00").isoformat(), T("20:00").isoformat()),
        (T("23:00").isoformat(), T("23:00").isoformat()),
    ]
    assert meta["unwatched_hours"]["SOLUSDT"]["hours"] == 24
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"contract": True}
    # nothing was rewritten or erased by the asset
    assert count(warehouse_url, "SELECT count(*) FROM raw_liquidations") == 6
    assert count(warehouse_url, "SELECT count(*) FROM quarantine WHERE table_name = 'raw_liquidations'") == 3

    result = run_assets(["market_aligned"], warehouse_url, partition_key=DAY, instance=instance)
    grid = _aligned(warehouse_url)
    btc, eth = grid.loc["BTCUSDT"], grid.loc["ETHUSDT"]
    # watched hours with events: the summed notional of the hour's events known by its close
    assert btc.loc[T("18:00")].tolist() == [0.0, 0.5 * 34500.0, 1]
    assert eth.loc[T("18:00")].tolist() == [2.0 * 1800.5, 0.0, 1]
    assert btc.loc[T("19:00")].tolist() == [0.1 * 34600.0, 0.0, 1]  # the zero-size event is not counted
    assert btc.loc[T("22:00")].tolist() == [0.0, 0.3 * 34800.0, 1]
    # watched hours without events are 0
    assert btc.loc[T("21:00")].tolist() == [0.0, 0.0, 0] and eth.loc[T("22:00")].tolist() == [0.0, 0.0, 0]
    # unwatched hours are missing, even with events inside (hour 20 has two, the stream was down part of it)
    for frame in (btc, eth):
        for hour in [*range(0, 18), 20, 23]:
            assert frame.loc[T(f"{hour:02d}:00")].isna().all(), hour
    assert grid.loc["SOLUSDT"].isna().all().all()
    aligned_meta = metadata_of(result, "market_aligned")
    assert aligned_meta["liquidation_unwatched_by_symbol"]["BTCUSDT"] == {"hours": 20, "reason": UNWATCHED_REASON}
    assert aligned_meta["liquidation_hours_unwatched"] == 2 * 20 + 2 * 24  # this day, all symbols
    assert aligned_meta["missing_or_stale_values"]  # the other feeds are reported as before
    # downstream: the 24-hour imbalance is missing (with the reason) wherever its window holds an unwatched hour
    result = run_assets(["ml_features_derivatives"], warehouse_url, partition_key=DAY, instance=instance)
    nan = metadata_of(result, "ml_features_derivatives")["nan_by_column"]["liq_imbalance_24h"]
    assert nan["rows"] == 4 * 24 and "not watched by the liquidation stream" in nan["reason"]
    assert count(warehouse_url, "SELECT count(*) FROM ml_features_derivatives WHERE liq_imbalance_24h IS NULL") == 96


def test_the_liquidations_command_on_a_replayed_websocket(database_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "DAGSTER_"))}
    env.update(
        {
            "PIPELINE_DATABASE_URL": database_url,
            "PIPELINE_EXCHANGE_REPLAY": str(REST_REPLAY),
            "PIPELINE_EXCHANGE_WS_REPLAY": str(SESSION),
            "PIPELINE_EXCHANGE": "binance",
            # this checkout's code, whichever pipeline_assets the environment has installed
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")) if p
            ),
        }
    )
    with connect(database_url) as conn, conn.transaction():
        conn.execute("TRUNCATE raw_liquidations, liquidation_watch, quarantine")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline_assets", "liquidations", "--symbols", "BTCUSDT,ETHUSDT"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "6 events (6 stored, 0 already stored, 1 re-deliveries dropped), 3 refused" in result.stdout
    assert "watched 2024-03-01T17:58:01+00:00 .. 2024-03-01T20:15:00+00:00" in result.stdout
    assert "1 disconnect(s)" in result.stdout
    assert count(database_url, "SELECT count(*) FROM raw_liquidations WHERE source LIKE '%websocket'") == 6
    assert count(database_url, "SELECT count(*) FROM liquidation_watch WHERE ended_by = 'stopped'") == 2
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline_assets", "liquidations", "--symbols", "XRPUSDT"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "XRPUSDT" in bad.stderr  # the replayed market list has no XRP perpetual


# ---- downstream and the schema --------------------------------------------------------------


def test_derivative_features_keep_unwatched_liquidations_missing():
    from pipeline_assets.features.derivatives import compute_derivative_features

    hours = pd.date_range(T("00:00"), periods=72, freq="h")
    grid = pd.DataFrame(
        {
            "ts": hours, "funding_rate": 0.0001, "open_interest": 10.0, "long_short_ratio": 1.0,
            "funding_staleness_h": 1.0, "oi_staleness_h": 1.0, "ls_staleness_h": 1.0,
            "liq_buy_notional": 0.0, "liq_sell_notional": 0.0,
        }
    )  # fmt: skip
    grid.loc[30, ["liq_buy_notional", "liq_sell_notional"]] = np.nan  # hour 30 was not watched
    grid.loc[60, "liq_sell_notional"] = 50.0
    out = compute_derivative_features(grid)["liq_imbalance_24h"]
    assert out.iloc[23] == 0.0 and out.iloc[29] == 0.0  # 24 watched hours without a liquidation
    assert out.iloc[30:54].isna().all()  # every window holding the unwatched hour is missing, not 0
    assert out.iloc[54] == 0.0 and out.iloc[60] == -1.0


def test_the_migration_upgrades_a_populated_warehouse(fresh_database, tmp_path):
    old = tmp_path / "old_sql"
    old.mkdir()
    for path in sorted(Path(sql_dir()).glob("*.sql")):
        if path.name[:4] < "0045":
            shutil.copy(path, old / path.name)
    migrate(fresh_database, old)
    with connect(fresh_database) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO market_aligned (symbol, ts, bar_missing, liq_buy_notional, liq_sell_notional, liq_count) "
            "VALUES ('BTCUSDT', '2024-03-01', false, 1.5, 0, 1)"
        )
        conn.execute(
            "INSERT INTO raw_liquidations (symbol, venue, ts, available_at, source, event_id, side, size, price) "
            "VALUES ('BTCUSDT', 'synthetic', '2024-03-01 00:10', '2024-03-01 00:10', 'synthetic', 'e1', 'buy', 1, 1.5)"
        )
    report = migrate(fresh_database)
    assert "0045_liquidation_watch.sql" in report.applied
    assert count(fresh_database, "SELECT liq_buy_notional FROM market_aligned") == 1.5
    assert count(fresh_database, "SELECT count(*) FROM raw_liquidations") == 1
    with connect(fresh_database) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO market_aligned (symbol, ts, bar_missing, liq_buy_notional, liq_sell_notional, liq_count) "
            "VALUES ('BTCUSDT', '2024-03-01 01:00', false, NULL, NULL, NULL)"
        )
        with pytest.raises(Exception, match="check"):
            conn.execute(
                "INSERT INTO liquidation_watch (symbol, venue, market_type, watched_from, watched_until, ended_by, "
                "source) VALUES ('BTCUSDT', 'binance:swap', 'swap', '2024-03-01 02:00', '2024-03-01 01:00', 'x', 'x')"
            )
