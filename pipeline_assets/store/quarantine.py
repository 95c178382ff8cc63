"""Rows refused by a contract land here with the reason, per table and (day, symbol) key.

The payload keeps every value as text JSON-safe (Infinity, NaN and unparsable cells stay as they
were written; jsonb itself has no Infinity), plus the source's original line when it has one.
Replacement is per key, under a per-table advisory lock (two concurrent runs never double a key's
rows), and only keys whose rows changed are rewritten.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime

import pandas as pd
import psycopg


def _json_value(value: object) -> object:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return _json_value(value.item())
    return value


def _rows(table_name: str, partition_key: str, rejected: pd.DataFrame) -> list[tuple]:
    rows = []
    for record in rejected.to_dict(orient="records"):
        reason = record.pop("reason")
        symbol = record.get("symbol")
        ts = record.get("ts")
        ts_value = ts.to_pydatetime() if isinstance(ts, pd.Timestamp) and not pd.isna(ts) else None
        payload = {k: _json_value(v) for k, v in record.items()}
        rows.append((table_name, partition_key, symbol, ts_value, reason, json.dumps(payload, sort_keys=True)))
    return rows


def replace_quarantine(conn: psycopg.Connection, table_name: str, partition_key: str, rejected: pd.DataFrame) -> int:
    """Replace one key's quarantine rows with ``rejected`` (which needs a ``reason`` column)."""
    return replace_quarantine_many(conn, table_name, {partition_key: rejected})[partition_key]


def replace_quarantine_many(
    conn: psycopg.Connection, table_name: str, rejected_by_key: Mapping[str, pd.DataFrame]
) -> dict[str, int]:
    """Replace the quarantine rows of every key in ``rejected_by_key`` (an empty frame clears a key),
    in the caller's transaction. Returns the number of rows each key now holds."""
    for key, frame in rejected_by_key.items():
        if not frame.empty and "reason" not in frame.columns:
            raise ValueError(f"rejected rows for {table_name} {key} need a 'reason' column")
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"quarantine:{table_name}",))
    keys = list(rejected_by_key)
    existing: dict[str, list] = {key: [] for key in keys}
    for key, symbol, ts, reason, payload in conn.execute(
        "SELECT partition_key, symbol, ts, reason, payload::text FROM quarantine "
        "WHERE table_name = %s AND partition_key = ANY(%s)",
        (table_name, keys),
    ).fetchall():
        existing[key].append((symbol, ts, reason, json.dumps(json.loads(payload), sort_keys=True)))
    counts, changed_keys, inserts = {}, [], []
    for key, frame in rejected_by_key.items():
        new_rows = _rows(table_name, key, frame) if not frame.empty else []
        counts[key] = len(new_rows)
        old = sorted(existing[key], key=repr)
        new = sorted(((r[2], r[3], r[4], r[5]) for r in new_rows), key=repr)
        if old != new:
            changed_keys.append(key)
            inserts.extend(new_rows)
    if changed_keys:
        conn.execute(
            "DELETE FROM quarantine WHERE table_name = %s AND partition_key = ANY(%s)", (table_name, changed_keys)
        )
    if inserts:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO quarantine (table_name, partition_key, symbol, ts, reason, payload) "
                "VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
                inserts,
            )
    return counts
