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
HEADLINE_VALUES = ("source", "headline", "compound", "positive", "neutral", "negative")


def stamp_and_archive(
    conn: psycopg.Connection, rows: pd.DataFrame, default_available: pd.Series
) -> tuple[pd.DataFrame, int]:
    """Bars: (rows with available_at, number of restated bars archived to raw_ohlcv_history)."""
    return _stamp_and_archive(conn, "raw_ohlcv", "raw_ohlcv_history", rows, ("symbol", "ts"), VALUES, default_available)


def stamp_and_archive_headlines(
    conn: psycopg.Connection, rows: pd.DataFrame, default_available: pd.Series
) -> tuple[pd.DataFrame, int]:
    """Headlines with a source id whose text or scores changed keep their previous version in
    raw_sentiment_history: (rows with available_at, number of revisions archived)."""
    key = ("symbol", "published_at", "headline_id")
    return _stamp_and_archive(
        conn, "raw_sentiment", "raw_sentiment_history", rows, key, HEADLINE_VALUES, default_available
    )


def _stamp_and_archive(conn, table, history, rows, key, values, default_available):
    """For every incoming row: available_at = the stored one when the values are unchanged, the
    transaction's time when they changed (and the stored version moves to ``history`` with
    superseded_at = that time), ``default_available`` for a new row."""
    if rows.empty:
        return rows.assign(available_at=pd.Series(dtype="datetime64[us, UTC]")), 0
    staging = f"_incoming_{table}"
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DROP AS "
        f"SELECT {', '.join((*key, *values))} FROM {table} WITH NO DATA"
    )
    conn.execute(f"TRUNCATE {staging}")
    with conn.cursor() as cur, cur.copy(f"COPY {staging} ({', '.join((*key, *values))}) FROM STDIN") as copy:
        for record in rows[[*key, *values]].itertuples(index=False):
            copy.write_row(
                tuple(
                    v.to_pydatetime() if isinstance(v, pd.Timestamp) else (float(v) if isinstance(v, float) else v)
                    for v in record
                )
            )
    (now,) = conn.execute("SELECT now()").fetchone()
    join = " AND ".join(f"i.{k} = r.{k}" for k in key)
    time_key = key[1]
    archived = conn.execute(
        f"""
        INSERT INTO {history} ({", ".join(key)}, {", ".join(values)}, available_at, superseded_at)
        SELECT {", ".join("r." + k for k in key)}, {", ".join("r." + v for v in values)},
               COALESCE(r.available_at, r.{time_key}), %s
        FROM {table} r JOIN {staging} i ON {join}
        WHERE ({", ".join("r." + v for v in values)}) IS DISTINCT FROM ({", ".join("i." + v for v in values)})
        ON CONFLICT DO NOTHING
        RETURNING {", ".join(key)}
        """,
        (now,),
    ).fetchall()
    stored = read_frame(
        conn, f"SELECT {', '.join('r.' + k for k in key)}, r.available_at FROM {table} r JOIN {staging} i ON {join}"
    )
    out = rows.copy()
    out["available_at"] = pd.to_datetime(default_available.to_numpy(), utc=True)
    if len(stored):
        known = out.merge(stored, on=list(key), how="left", suffixes=("", "_stored"))["available_at_stored"]
        has = known.notna().to_numpy()
        out.loc[has, "available_at"] = known[has].to_numpy()
    if archived:
        changed = pd.MultiIndex.from_tuples(
            [tuple(pd.Timestamp(v) if i == 1 else v for i, v in enumerate(row)) for row in archived]
        )
        mask = pd.MultiIndex.from_arrays([out[k] for k in key]).isin(changed)
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


def read_headlines_as_of(
    conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime, as_of: datetime
) -> pd.DataFrame:
    """Headlines published in [start, end) as they read at ``as_of`` (revisions known then)."""
    return read_frame(
        conn,
        """
        SELECT symbol, published_at, headline_id, source, headline, compound, available_at FROM raw_sentiment
        WHERE symbol = ANY(%(s)s) AND published_at >= %(a)s AND published_at < %(b)s AND available_at <= %(t)s
        UNION ALL
        SELECT symbol, published_at, headline_id, source, headline, compound, available_at FROM raw_sentiment_history
        WHERE symbol = ANY(%(s)s) AND published_at >= %(a)s AND published_at < %(b)s AND available_at <= %(t)s
          AND superseded_at > %(t)s
        ORDER BY symbol, published_at
        """,
        {"s": list(symbols), "a": start, "b": end, "t": as_of},
    )
