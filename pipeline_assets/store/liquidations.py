"""Liquidation events collected forward from a websocket and the coverage of that collection
(``liquidation_watch``): written in one transaction per flush, read back by the assets.

Events are stored first-seen: a key already stored (the same event re-delivered, e.g. after a
reconnect or by a second collector) is left as it is, so its availability time never moves
later. Refused rows are appended to quarantine (a collector's later flush never erases an
earlier one's refusals); identical refusals are kept once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import psycopg

from pipeline_assets.contracts.derivatives import LIQUIDATIONS_CONTRACT
from pipeline_assets.store.frames import read_frame, upsert_frame
from pipeline_assets.store.quarantine import _json_value

TABLE = LIQUIDATIONS_CONTRACT.table
WATCH_TABLE = "liquidation_watch"
WATCH_KEY = ["symbol", "venue", "watched_from"]


@dataclass(frozen=True)
class WriteStats:
    inserted: int
    already_stored: int
    quarantined: int
    intervals: int


def insert_first_seen(conn: psycopg.Connection, events: pd.DataFrame) -> tuple[int, int]:
    """Insert the events whose key is not stored yet; returns (inserted, already stored)."""
    if events.empty:
        return 0, 0
    key = list(LIQUIDATIONS_CONTRACT.key)
    stored = read_frame(
        conn,
        f"SELECT {', '.join(key)} FROM {TABLE} WHERE symbol = ANY(%s) AND ts >= %s AND ts <= %s",
        (sorted(events["symbol"].unique()), events["ts"].min(), events["ts"].max()),
    )
    if len(stored):
        known = pd.MultiIndex.from_frame(stored[key])
        fresh = events[~pd.MultiIndex.from_frame(events[key]).isin(known)]
    else:
        fresh = events
    columns = [c.name for c in LIQUIDATIONS_CONTRACT.columns]
    upsert_frame(conn, TABLE, fresh[columns], key)
    return len(fresh), len(events) - len(fresh)


def append_quarantine(conn: psycopg.Connection, table_name: str, rejected: pd.DataFrame) -> int:
    """Append refused rows (columns: symbol, ts, reason, payload, ...), keyed per (day, symbol)
    like the assets' quarantine (``YYYY-MM-DD|SYMBOL``; the day of ts, else of available_at);
    a row identical to one already quarantined is not added twice. Returns rows added."""
    if rejected.empty:
        return 0
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"quarantine:{table_name}",))
    added = 0
    for record in rejected.to_dict(orient="records"):
        reason = record.pop("reason")
        symbol = record.get("symbol") if isinstance(record.get("symbol"), str) else None
        ts = record.get("ts")
        ts_value = ts.to_pydatetime() if isinstance(ts, pd.Timestamp) and not pd.isna(ts) else None
        when = ts_value or pd.Timestamp(record["available_at"]).to_pydatetime()
        key = f"{when:%Y-%m-%d}|{symbol or 'unknown'}"
        payload = json.dumps({k: _json_value(v) for k, v in record.items()}, sort_keys=True)
        inserted = conn.execute(
            "INSERT INTO quarantine (table_name, partition_key, symbol, ts, reason, payload) "
            "SELECT %s, %s, %s, %s, %s, %s::jsonb WHERE NOT EXISTS (SELECT 1 FROM quarantine WHERE table_name = %s "
            "AND partition_key = %s AND reason = %s AND payload = %s::jsonb)",
            (table_name, key, symbol, ts_value, reason, payload, table_name, key, reason, payload),
        ).rowcount
        added += inserted
    return added


def write_coverage(conn: psycopg.Connection, coverage: pd.DataFrame) -> int:
    """Upsert watch intervals keyed (symbol, venue, watched_from): a running interval re-flushed
    with a later end is extended, never duplicated."""
    if coverage.empty:
        return 0
    frame = coverage.copy()
    for column in ("watched_from", "watched_until"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    stats = upsert_frame(conn, WATCH_TABLE, frame, WATCH_KEY)
    return stats.inserted + stats.updated


def write_collected(conn: psycopg.Connection, events: pd.DataFrame, rejected: pd.DataFrame, coverage) -> WriteStats:
    """One collector flush, in the caller's transaction."""
    inserted, already = insert_first_seen(conn, events)
    quarantined = append_quarantine(conn, TABLE, rejected)
    intervals = write_coverage(conn, coverage)
    return WriteStats(inserted, already, quarantined, intervals)


def read_coverage(conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
    """Watch intervals of ``symbols`` overlapping [start, end)."""
    return read_frame(
        conn,
        f"SELECT symbol, venue, watched_from, watched_until FROM {WATCH_TABLE} "
        "WHERE symbol = ANY(%s) AND watched_until > %s AND watched_from < %s ORDER BY symbol, watched_from",
        (list(symbols), start, end),
    )


def read_events(
    conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime, venue: str | None = None
) -> pd.DataFrame:
    columns = ", ".join(c.name for c in LIQUIDATIONS_CONTRACT.columns)
    where = "symbol = ANY(%s) AND ts >= %s AND ts < %s" + (" AND venue = %s" if venue else "")
    params = (list(symbols), start, end, *((venue,) if venue else ()))
    return read_frame(conn, f"SELECT {columns} FROM {TABLE} WHERE {where} ORDER BY symbol, ts", params)
