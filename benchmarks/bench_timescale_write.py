"""Writing a year of hourly bars for 10 symbols into raw_ohlcv on TimescaleDB: the project's write
path (store.frames.upsert_frame) against a plain binary COPY into the same hypertable.

    python benchmarks/bench_timescale_write.py [--repeats 3]

Starts its own embedded PostgreSQL with TimescaleDB preloaded (built by `make install`) in a
temporary directory, migrates a fresh database, prints a markdown table with rows/s and the ratio
against plain COPY measured in the same run, and deletes the server. First writes go into an empty
table; rewrites write the same keys again with every close changed (so every row is updated).
The reference for both ratios is plain COPY into the empty table (a COPY cannot rewrite keys).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from psycopg import sql

from pipeline_assets.local_db import start_embedded
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import upsert_frame
from pipeline_assets.store.migrate import migrate
from pipeline_assets.timescale_build import build

SYMBOLS = [f"SYM{i:02d}USDT" for i in range(10)]
HOURS = 365 * 24
COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume", "source"]
TYPES = ["text", "timestamptz", "float8", "float8", "float8", "float8", "float8", "text"]


def year_of_bars() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frames = []
    for symbol in SYMBOLS:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.005, HOURS)))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ts": pd.date_range("2023-01-01", periods=HOURS, freq="h", tz="UTC"),
                    "open": close,
                    "high": close * 1.001,
                    "low": close * 0.999,
                    "close": close,
                    "volume": rng.uniform(1, 10, HOURS),
                    "source": "bench",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def empty(url: str) -> None:
    with connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE raw_ohlcv")


def plain_copy(url: str, frame: pd.DataFrame) -> float:
    rows = list(zip(*(frame[c].dt.to_pydatetime() if c == "ts" else frame[c].tolist() for c in COLUMNS), strict=True))
    started = time.perf_counter()
    with connect(url) as conn, conn.transaction(), conn.cursor() as cur:
        stmt = sql.SQL("COPY raw_ohlcv ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        with cur.copy(stmt) as copy:
            copy.set_types(TYPES)
            for row in rows:
                copy.write_row(row)
    return time.perf_counter() - started


def project_write(url: str, frame: pd.DataFrame) -> float:
    started = time.perf_counter()
    with connect(url) as conn, conn.transaction():
        upsert_frame(conn, "raw_ohlcv", frame, ["symbol", "ts"])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    build()
    frame = year_of_bars()
    changed = frame.assign(close=frame["close"] * 1.001)
    n = len(frame)
    with tempfile.TemporaryDirectory(prefix="bench_tsdb_") as tmp:
        server = start_embedded(Path(tmp) / "pgdata", cleanup_mode="delete", timescale=True)
        try:
            url = server.get_uri()
            report = migrate(url)
            assert report.timescaledb, "TimescaleDB is not usable on the benchmark server"
            timings: dict[str, list[float]] = {"copy": [], "first": [], "rewrite": []}
            for _ in range(args.repeats):
                empty(url)
                timings["copy"].append(plain_copy(url, frame))
                empty(url)
                timings["first"].append(project_write(url, frame))
                timings["rewrite"].append(project_write(url, changed))
            with connect(url) as conn:
                (stored,) = conn.execute("SELECT count(*) FROM raw_ohlcv WHERE source = 'bench'").fetchone()
            assert stored == n, (stored, n)
        finally:
            server.cleanup()
    reference = n / statistics.median(timings["copy"])
    print(
        f"{n:,} rows ({len(SYMBOLS)} symbols x {HOURS} hourly bars) into raw_ohlcv on TimescaleDB, "
        f"median of {args.repeats}"
    )
    print("| write | median s | rows/s | ratio vs plain COPY |")
    print("|---|---:|---:|---:|")
    for label, key in (
        ("plain binary COPY (reference)", "copy"),
        ("upsert_frame, first write", "first"),
        ("upsert_frame, rewrite (all changed)", "rewrite"),
    ):
        seconds = statistics.median(timings[key])
        print(f"| {label} | {seconds:.2f} | {n / seconds:,.0f} | {n / seconds / reference:.2f} |")


if __name__ == "__main__":
    main()
