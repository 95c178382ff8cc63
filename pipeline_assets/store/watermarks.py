"""Per (day, symbol) ingestion watermarks: which source window an ingestion key covers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg


def record_watermarks(
    conn: psycopg.Connection, asset_name: str, rows: Iterable[tuple[str, datetime, datetime, int]]
) -> int:
    """Record, in the caller's transaction, that each key ``(key, window_start, covered_until,
    row_count)`` holds the source's data for [window_start, covered_until). One statement for
    any number of keys (a year x 10 symbols is 3,650 keys)."""
    rows = list(rows)
    if not rows:
        return 0
    keys, starts, covered, counts = (list(column) for column in zip(*rows, strict=True))
    conn.execute(
        """
        INSERT INTO partition_watermarks (asset_name, partition_key, window_start, covered_until, row_count)
        SELECT %s, k, s, c, n FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[], %s::int[])
            AS t(k, s, c, n)
        ON CONFLICT (asset_name, partition_key) DO UPDATE
        SET window_start = EXCLUDED.window_start, covered_until = EXCLUDED.covered_until,
            row_count = EXCLUDED.row_count, updated_at = now()
        WHERE (partition_watermarks.window_start, partition_watermarks.covered_until, partition_watermarks.row_count)
              IS DISTINCT FROM (EXCLUDED.window_start, EXCLUDED.covered_until, EXCLUDED.row_count)
        """,
        (asset_name, keys, starts, covered, counts),
    )
    return len(rows)


def record_watermark(
    conn: psycopg.Connection,
    asset_name: str,
    partition_key: str,
    window_start: datetime,
    covered_until: datetime,
    row_count: int,
) -> None:
    record_watermarks(conn, asset_name, [(partition_key, window_start, covered_until, row_count)])


def covered_until(conn: psycopg.Connection, asset_name: str, partition_key: str) -> datetime | None:
    return covered_until_many(conn, asset_name, [partition_key]).get(partition_key)


def covered_until_many(conn: psycopg.Connection, asset_name: str, partition_keys: Sequence[str]) -> dict[str, datetime]:
    """covered_until per key, for the keys that were ever ingested."""
    rows = conn.execute(
        "SELECT partition_key, covered_until FROM partition_watermarks "
        "WHERE asset_name = %s AND partition_key = ANY(%s)",
        (asset_name, list(partition_keys)),
    ).fetchall()
    return dict(rows)
