"""Per-partition ingestion watermarks: which source window an ingestion partition covers."""

from __future__ import annotations

from datetime import datetime

import psycopg


def record_watermark(
    conn: psycopg.Connection,
    asset_name: str,
    partition_key: str,
    window_start: datetime,
    covered_until: datetime,
    row_count: int,
) -> None:
    """Record, in the caller's transaction, that ``partition_key`` holds the source's data for
    [window_start, covered_until)."""
    conn.execute(
        """
        INSERT INTO partition_watermarks (asset_name, partition_key, window_start, covered_until, row_count)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (asset_name, partition_key) DO UPDATE
        SET window_start = EXCLUDED.window_start, covered_until = EXCLUDED.covered_until,
            row_count = EXCLUDED.row_count, updated_at = now()
        """,
        (asset_name, partition_key, window_start, covered_until, row_count),
    )


def covered_until(conn: psycopg.Connection, asset_name: str, partition_key: str) -> datetime | None:
    row = conn.execute(
        "SELECT covered_until FROM partition_watermarks WHERE asset_name = %s AND partition_key = %s",
        (asset_name, partition_key),
    ).fetchone()
    return row[0] if row else None
