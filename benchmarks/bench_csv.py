"""CSV source: a 1M-row file with ISO timestamps is parsed once per source object (one per run),
then served by window from the cache.

    python benchmarks/bench_csv.py [--rows 1000000]

Prints parse time and peak memory (tracemalloc) for the first read, and the time of 30 daily
windows afterwards. Reference in the same run: pandas.read_csv of the same file with
dtype=str (what a plain parse costs before any row-level checking).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline_assets.sources.csv_dir import CsvDirectorySource  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ts = pd.date_range("1990-01-01", periods=args.rows, freq="h", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, args.rows)))
    frame = pd.DataFrame(
        {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": rng.uniform(1, 10, args.rows),
        }
    )
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "BTCUSDT.csv"
        frame.to_csv(path, index=False)
        size_mb = path.stat().st_size / 1e6
        started = time.perf_counter()
        pd.read_csv(path, dtype=str)
        reference = time.perf_counter() - started
        source = CsvDirectorySource(directory)
        day = datetime(2010, 6, 1, tzinfo=UTC)
        started = time.perf_counter()
        first = source.ohlcv("BTCUSDT", day, day + timedelta(days=1))
        first_s = time.perf_counter() - started
        tracemalloc.start()  # memory measured on a second, fresh source (tracemalloc slows the parse)
        CsvDirectorySource(directory).ohlcv("BTCUSDT", day, day + timedelta(days=1))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        started = time.perf_counter()
        for i in range(1, 31):
            source.ohlcv("BTCUSDT", day + timedelta(days=i), day + timedelta(days=i + 1))
        windows_s = time.perf_counter() - started
    assert len(first) == 24
    print(f"| measure ({args.rows:,} rows, {size_mb:.0f} MB) | value |")
    print("|---|---:|")
    print(f"| first window: parse + row-level checks, s | {first_s:.2f} |")
    print(f"| peak traced memory of that parse, MB | {peak / 1e6:.0f} |")
    print(f"| next 30 daily windows (cached), s | {windows_s:.2f} |")
    print(f"| reference: pandas.read_csv(dtype=str), s | {reference:.2f} |")
    print(f"| parse / reference | {first_s / reference:.2f} |")


if __name__ == "__main__":
    main()
