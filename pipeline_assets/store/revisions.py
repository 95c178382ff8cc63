"""Availability times and revision history for raw bars.

``stamp_and_archive`` runs inside the writing transaction, before the upsert: for every incoming
bar it sets ``available_at`` (kept from the stored row when the values are unchanged; the
transaction's time when they changed; the given default for a new bar) and copies the stored
version of every changed bar to ``raw_ohlcv_history`` with ``superseded_at`` = that time.
``read_ohlcv_as_of`` returns, per (symbol, ts), the version known at a given time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import psycopg

from pipeline_assets.store.frames import read_frame

VALUES = ("open", "high", "low", "close", "volume", "source")


def stamp_and_archive(
    conn: psycopg.Connection, rows: pd.DataFrame, default_available: pd.Series
) -> tuple[pd.DataFrame, int]:
    """(rows with available_at, number of restated bars archived)."""
    if rows.empty:
        return rows.assign(available_at=pd.Series(dtype="datetime64[us, UTC]")), 0
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _incoming_bars (symbol text, ts timestamptz, open float8, high float8, "
        "low float8, close float8, volume float8, source text) ON COMMIT DROP"
    )
    conn.execute("TRUNCATE _incoming_bars")
    with conn.cursor() as cur, cur.copy(f"COPY _incoming_bars (symbol, ts, {', '.join(VALUES)}) FROM STDIN") as copy:
        for row in rows[["symbol", "ts", *VALUES]].itertuples(index=False):
            copy.write_row(
                (
                    row.symbol,
                    row.ts.to_pydatetime(),
                    float(row.open),
                    float(row.high),
                    float(row.low),
                    float(row.close),
                    float(row.volume),
                    row.source,
                )
            )
    (now,) = conn.execute("SELECT now()").fetchone()
    archived = conn.execute(
        f"""
        INSERT INTO raw_ohlcv_history (symbol, ts, {", ".join(VALUES)}, available_at, superseded_at)
        SELECT r.symbol, r.ts, {", ".join("r." + v for v in VALUES)},
               COALESCE(r.available_at, r.ts + interval '1 hour'), %s
        FROM raw_ohlcv r JOIN _incoming_bars i ON i.symbol = r.symbol AND i.ts = r.ts
        WHERE ({", ".join("r." + v for v in VALUES)}) IS DISTINCT FROM ({", ".join("i." + v for v in VALUES)})
        ON CONFLICT DO NOTHING
        RETURNING symbol, ts
        """,
        (now,),
    ).fetchall()
    stored = read_frame(
        conn,
        "SELECT r.symbol, r.ts, r.available_at FROM raw_ohlcv r "
        "JOIN _incoming_bars i ON i.symbol = r.symbol AND i.ts = r.ts",
    )
    out = rows.copy()
    out["available_at"] = pd.to_datetime(default_available.to_numpy(), utc=True)
    if len(stored):
        known = out.merge(stored, on=["symbol", "ts"], how="left", suffixes=("", "_stored"))["available_at_stored"]
        has = known.notna().to_numpy()
        out.loc[has, "available_at"] = known[has].to_numpy()
    if archived:
        changed = pd.MultiIndex.from_tuples([(s, pd.Timestamp(t)) for s, t in archived])
        mask = pd.MultiIndex.from_arrays([out["symbol"], out["ts"]]).isin(changed)
        out.loc[mask, "available_at"] = pd.Timestamp(now)
    return out, len(archived)


def read_ohlcv_as_of(
    conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime, as_of: datetime
) -> pd.DataFrame:
    """Bars with ts in [start, end) as they were known at ``as_of``: per (symbol, ts) the version
    whose availability interval [available_at, superseded_at) contains as_of; bars not yet known
    then are absent."""
    return read_frame(
        conn,
        """
        SELECT symbol, ts, open, high, low, close, volume, available_at FROM raw_ohlcv
        WHERE symbol = ANY(%(s)s) AND ts >= %(a)s AND ts < %(b)s AND available_at <= %(t)s
        UNION ALL
        SELECT symbol, ts, open, high, low, close, volume, available_at FROM raw_ohlcv_history
        WHERE symbol = ANY(%(s)s) AND ts >= %(a)s AND ts < %(b)s AND available_at <= %(t)s AND superseded_at > %(t)s
        ORDER BY symbol, ts
        """,
        {"s": list(symbols), "a": start, "b": end, "t": as_of},
    )
