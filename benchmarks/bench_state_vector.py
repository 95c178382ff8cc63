"""State-vector build times, cache, backfill throughput, memory, and warehouse reads.

python benchmarks/bench_state_vector.py    (set PIPELINE_BENCH_DATABASE_URL to a scratch database
                                          to also time reading vectors back; it is migrated)

Prints tables; every figure is measured in this run on this machine.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from pipeline_assets.state_vector import WIDTH, StateVectorBuilder, StateVectorConfig

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")


def frames(n: int, seed: int = 0, end: str = "2025-01-01") -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    out = {}
    for i, symbol in enumerate(SYMBOLS):
        close = 100.0 * (i + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        out[symbol] = pd.DataFrame(
            {
                "open": open_,
                "high": np.maximum(open_, close) * 1.002,
                "low": np.minimum(open_, close) * 0.998,
                "close": close,
                "volume": rng.lognormal(3, 0.5, n),
                "timestamp": pd.date_range(end=pd.Timestamp(end, tz="UTC"), periods=n, freq="h"),
            }
        )
    return out


BOOKS = {
    s: {
        "bids": [[99.95 - 0.1 * k, 1.0 + k] for k in range(10)],
        "asks": [[100.05 + 0.1 * k, 1.5 + k] for k in range(10)],
    }
    for s in SYMBOLS
}
PORTFOLIO = {"positions": {"BTCUSDT": 0.5, "ETHUSDT": 2.0}, "cash": 5000.0, "total_value": 100000.0}


def timed(fn, n: int) -> np.ndarray:
    fn()
    out = np.empty(n)
    for i in range(n):
        started = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - started
    return out * 1e6


def row(name: str, us: np.ndarray) -> None:
    print(f"| {name} | {np.percentile(us, 50):.1f} | {np.percentile(us, 99):.1f} |")


def builds() -> None:
    print("## Single builds (4 symbols, window 168 h), microseconds\n")
    print("| case | p50 (us) | p99 (us) |")
    print("|---|---:|---:|")
    for rows, label in ((168, "168 input rows"), (168 + 768, "168 + 768 rows (full 30-day warm-up)")):
        _builds_for(frames(rows), label)
    print()


def _builds_for(data: dict, label: str) -> None:
    uncached = StateVectorBuilder(StateVectorConfig(use_cache=False, log_build_time=False))
    row(f"uncached, book + portfolio, {label}", timed(lambda: uncached.build(data, BOOKS, PORTFOLIO), 2000))
    row(f"uncached, bars only, {label}", timed(lambda: uncached.build(data), 2000))
    out = np.empty((168, WIDTH), dtype=np.float32)
    row(
        f"uncached into out=, book + portfolio, {label}",
        timed(lambda: uncached.build(data, BOOKS, PORTFOLIO, out=out), 2000),
    )
    cached = StateVectorBuilder(StateVectorConfig(log_build_time=False))
    row(f"cache hit, book + portfolio, {label}", timed(lambda: cached.build(data, BOOKS, PORTFOLIO), 5000))
    row(f"cache hit, bars only, {label}", timed(lambda: cached.build(data), 5000))


def memory() -> None:
    data = frames(168 + 768)
    builder = StateVectorBuilder(StateVectorConfig(use_cache=False, log_build_time=False))
    out = np.empty((168, WIDTH), dtype=np.float32)
    builder.build(data, BOOKS, PORTFOLIO, out=out)
    print("## Memory per build (tracemalloc peak, after warm-up)\n")
    print("| case | peak bytes |")
    print("|---|---:|")
    for label, fn in (
        ("build() returning a new array", lambda: builder.build(data, BOOKS, PORTFOLIO)),
        ("build(out=...)", lambda: builder.build(data, BOOKS, PORTFOLIO, out=out)),
    ):
        tracemalloc.start()
        fn()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"| {label} | {peak:,} |")
    print(f"\n(the returned array itself is {168 * WIDTH * 4:,} bytes)\n")


def backfill() -> None:
    hours = 8760
    data = frames(hours + 168 + 768, seed=1)
    builder = StateVectorBuilder(StateVectorConfig(use_cache=False, log_build_time=False))
    last = int(data["BTCUSDT"]["timestamp"].iloc[-1].value // 3_600_000_000_000)
    first = last - hours + 1
    started = time.perf_counter()
    rows, _ = builder.raw_rows(data, first - 167, last)
    rows_s = time.perf_counter() - started
    started = time.perf_counter()
    checksum = 0.0
    for chunk in range(167, rows.shape[0], 24):
        ends = np.arange(chunk, min(chunk + 24, rows.shape[0]))
        vectors = builder.normalise_windows(rows, ends)
        checksum += float(vectors[:, -1, 0].sum())
    windows_s = time.perf_counter() - started
    sample = 200
    per_build = timed(
        lambda: builder.build(data, timestamp=pd.Timestamp((last + 1) * 3600, unit="s", tz="UTC")), sample
    )
    print("## A year of hourly vectors (8,760), 4 symbols\n")
    print("| path | seconds | vectors/s |")
    print("|---|---:|---:|")
    print(f"| raw rows once (8,927 rows) | {rows_s:.3f} | |")
    print(f"| + windows normalised in batches of 24 | {windows_s:.3f} | |")
    total = rows_s + windows_s
    print(f"| total (reusing rows across hours) | {total:.3f} | {hours / total:,.0f} |")
    naive = np.median(per_build) / 1e6 * hours
    print(f"| reference: one full build per hour (median x 8,760) | {naive:.1f} | {hours / naive:,.0f} |")
    print(f"\nratio reuse / per-hour builds: {total / naive:.2f}\n")


def warehouse() -> None:
    url = os.environ.get("PIPELINE_BENCH_DATABASE_URL")
    if not url:
        print("## Warehouse reads: skipped (set PIPELINE_BENCH_DATABASE_URL)\n")
        return
    from pipeline_assets.store.db import connect
    from pipeline_assets.store.migrate import migrate
    from pipeline_assets.store.state_vectors import read_vectors, register_layout, write_rows

    migrate(url)
    builder = StateVectorBuilder(StateVectorConfig(use_cache=False, log_build_time=False))
    data = frames(24 * 60 + 768, seed=2)
    last = int(data["BTCUSDT"]["timestamp"].iloc[-1].value // 3_600_000_000_000)
    first = last - 24 * 60 + 1
    rows, _ = builder.raw_rows(data, first, last)
    hours = np.arange(first, last + 1)
    with connect(url) as conn, conn.transaction():
        register_layout(conn, builder)
        write_rows(conn, builder.layout_id, hours, rows, [[]] * len(hours), [[]] * len(hours))
    days = [datetime.fromtimestamp((first + 24 * k) * 3600, tz=UTC) for k in range(8, 60)]
    with connect(url) as conn:
        read_vectors(conn, builder, days[0], days[0] + timedelta(days=1))
        started = time.perf_counter()
        n = 0
        for day in days:
            _, vectors = read_vectors(conn, builder, day, day + timedelta(days=1))
            n += len(vectors)
        elapsed = time.perf_counter() - started
        conn.execute("DELETE FROM ml_state_vector_rows WHERE layout_id = %s", (builder.layout_id,))
        conn.commit()
    print("## Reading vectors back from the warehouse (a day per query)\n")
    print("| days | vectors | seconds | ms per vector (query + assembly) |")
    print("|---:|---:|---:|---:|")
    print(f"| {len(days)} | {n:,} | {elapsed:.3f} | {1000 * elapsed / n:.3f} |\n")


def main() -> None:
    print(f"machine: {os.cpu_count()} cores; {datetime.now(UTC).date().isoformat()}\n")
    builds()
    memory()
    backfill()
    warehouse()


if __name__ == "__main__":
    main()
