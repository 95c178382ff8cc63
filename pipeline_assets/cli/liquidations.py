"""Collect liquidations forward from the exchange's websocket into the warehouse.

    python -m pipeline_assets liquidations --symbols BTCUSDT,ETHUSDT [--duration SECONDS]
        [--exchange binance] [--flush-seconds 60] [--database-url URL]

Exchanges publish no REST history of liquidations: this command is how raw_liquidations gets
rows from an exchange. It subscribes to the forced-order stream of the symbols' USDT-margined
perpetuals (ccxt pro), stores every event once (raw_liquidations: event time and time received),
refused frames in quarantine with the reason, and the intervals during which the stream was
connected and confirmed (liquidation_watch); it reconnects after a drop (the gap is not
covered). It runs for --duration seconds, or until interrupted (Ctrl-C / SIGTERM), flushing
every --flush-seconds and at the end. The raw_liquidations asset then reports per day the hours
watched and those not watched (their liquidation values are missing downstream).

Environment: PIPELINE_EXCHANGE (default binance), PIPELINE_SYMBOLS (default symbols),
PIPELINE_DATABASE_URL (else the embedded warehouse); offline: PIPELINE_EXCHANGE_REPLAY (the REST
market list, sources/replay.py) and PIPELINE_EXCHANGE_WS_REPLAY (a recorded websocket session,
sources/ws_replay.py; the run then follows the session's clock and ends with it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

import psycopg

from pipeline_assets.store.migrate import MigrationError


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline_assets liquidations", description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", help="comma separated, e.g. BTCUSDT,ETHUSDT (default: PIPELINE_SYMBOLS)")
    parser.add_argument("--duration", type=float, help="seconds to collect (default: until interrupted)")
    parser.add_argument("--exchange", help="ccxt exchange id (default: PIPELINE_EXCHANGE, else binance)")
    parser.add_argument("--flush-seconds", type=float, default=60.0, help="seconds between writes (default 60)")
    parser.add_argument("--database-url", help="warehouse (default: PIPELINE_DATABASE_URL, else the embedded one)")
    args = parser.parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        parser.error(f"--duration must be > 0 seconds, got {args.duration}")
    if args.flush_seconds <= 0:
        parser.error(f"--flush-seconds must be > 0, got {args.flush_seconds}")
    return args


def _symbols(option: str | None) -> list[str]:
    if option:
        symbols = [s.strip().upper() for s in option.split(",") if s.strip()]
        if not symbols:
            raise ValueError(f"--symbols {option!r} names no symbol")
        return symbols
    from pipeline_assets.partitions import configured_symbols

    return list(configured_symbols())


async def collect(
    database_url: str, symbols: Sequence[str], exchange_id: str, duration: float | None, flush_seconds: float
):
    from pipeline_assets.sources.liquidation_stream import LiquidationCollector, make_stream_exchange
    from pipeline_assets.sources.ws_replay import WebSocketReplay
    from pipeline_assets.store.db import connect
    from pipeline_assets.store.liquidations import write_collected

    totals = {"inserted": 0, "already_stored": 0, "quarantined": 0}

    def sink(batch) -> None:
        with connect(database_url) as conn, conn.transaction():
            stats = write_collected(conn, batch.events, batch.rejected, batch.coverage)
        totals["inserted"] += stats.inserted
        totals["already_stored"] += stats.already_stored
        totals["quarantined"] += stats.quarantined

    exchange = make_stream_exchange(exchange_id)
    stop = asyncio.Event()
    now = None
    if isinstance(exchange.session, WebSocketReplay):
        now, stop = exchange.session.clock, exchange.session.exhausted
    collector = LiquidationCollector(
        exchange, symbols, sink, exchange_id=exchange_id, now=now, flush_seconds=flush_seconds
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    report = await collector.run(duration_s=duration, stop=stop)
    return report, totals


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    server = None
    try:
        symbols = _symbols(args.symbols)
        exchange_id = (args.exchange or os.environ.get("PIPELINE_EXCHANGE") or "binance").strip().lower()
        database_url = args.database_url or os.environ.get("PIPELINE_DATABASE_URL")
        if not database_url:
            from pipeline_assets.local_db import database_url as embedded_url

            database_url, server = embedded_url()
        from pipeline_assets.store.migrate import migrate

        migrate(database_url)
        report, totals = asyncio.run(collect(database_url, symbols, exchange_id, args.duration, args.flush_seconds))
    except (ValueError, MigrationError, psycopg.OperationalError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # LiquidationStreamError and ccxt's refusals, one line each
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"liquidations {','.join(symbols)} on {exchange_id}:swap: {report.events} events "
        f"({totals['inserted']} stored, {totals['already_stored']} already stored, {report.duplicates} re-deliveries "
        f"dropped), {report.rejected} refused ({totals['quarantined']} new in quarantine), "
        f"{report.connections} connection(s), {len(report.disconnects)} disconnect(s)"
    )
    for start, end in report.intervals:
        print(f"watched {start} .. {end}")
    for line in report.disconnects:
        print(f"disconnect {line}")
    if server is not None:
        print(f"warehouse: {database_url}")
    return 0
