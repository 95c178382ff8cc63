"""Bulk write throughput of the store: COPY into staging + INSERT ... ON CONFLICT.

    PIPELINE_DATABASE_URL=... python benchmarks/bench_store.py

Creates a scratch database on the server, prints a markdown table, drops the database.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
from psycopg import sql

from pipeline_assets.local_db import with_database
from pipeline_assets.store.db import connect, database_url_from_env
from pipeline_assets.store.frames import upsert_frame
from pipeline_assets.store.migrate import migrate


def bars(n: int, symbol: str) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.005, n)))
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC"),
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": 1.0,
            "source": "bench",
        }
    )


def main() -> None:
    server = database_url_from_env()
    name = f"pipeline_bench_{uuid.uuid4().hex[:8]}"
    with connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server, name)
    try:
        migrate(url)
        print("| rows | first write s | rows/s | re-write (unchanged) s | rows/s |")
        print("|---:|---:|---:|---:|---:|")
        for n in (10_000, 100_000, 500_000):
            frame = bars(n, f"B{n}")
            timings = []
            for _ in range(2):
                started = time.perf_counter()
                with connect(url) as conn, conn.transaction():
                    upsert_frame(conn, "raw_ohlcv", frame, ["symbol", "ts"])
                timings.append(time.perf_counter() - started)
            print(f"| {n} | {timings[0]:.2f} | {n / timings[0]:,.0f} | {timings[1]:.2f} | {n / timings[1]:,.0f} |")
    finally:
        with connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
