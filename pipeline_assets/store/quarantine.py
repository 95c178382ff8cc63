"""Rows refused by a contract land here with the reason, per table and partition."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pandas as pd
import psycopg


def _json_value(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return _json_value(value.item())
    return value


def replace_quarantine(conn: psycopg.Connection, table_name: str, partition_key: str, rejected: pd.DataFrame) -> int:
    """Replace the partition's quarantine rows with ``rejected`` (which needs a ``reason`` column).

    Replacing (not appending) keeps a re-materialised partition from piling up copies.
    """
    if not rejected.empty and "reason" not in rejected.columns:
        raise ValueError("rejected rows need a 'reason' column")
    conn.execute("DELETE FROM quarantine WHERE table_name = %s AND partition_key = %s", (table_name, partition_key))
    if rejected.empty:
        return 0
    rows = []
    for record in rejected.to_dict(orient="records"):
        reason = record.pop("reason")
        symbol = record.get("symbol")
        ts = record.get("ts")
        ts_value = ts.to_pydatetime() if isinstance(ts, pd.Timestamp) and not pd.isna(ts) else None
        payload = {k: _json_value(v) for k, v in record.items()}
        rows.append((table_name, partition_key, symbol, ts_value, reason, json.dumps(payload)))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quarantine (table_name, partition_key, symbol, ts, reason, payload) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
            rows,
        )
    return len(rows)
