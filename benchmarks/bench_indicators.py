"""Throughput of the OHLCV feature set (numba kernels), after JIT warm-up.

python benchmarks/bench_indicators.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from pipeline_assets.features.ohlcv_features import compute_ohlcv_features


def bars(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {
            "ts": pd.date_range("2000-01-01", periods=n, freq="h", tz="UTC"),
            "open": close,
            "high": close * 1.002,
            "low": close * 0.998,
            "close": close,
            "volume": rng.lognormal(3, 0.5, n),
        }
    )


def main() -> None:
    compute_ohlcv_features(bars(500))  # compile / load the numba cache
    print("| bars | best of 5 (s) | bars/s |")
    print("|---:|---:|---:|")
    for n in (10_000, 100_000, 1_000_000):
        frame = bars(n)
        best = min(_timed(frame) for _ in range(5))
        print(f"| {n:,} | {best:.4f} | {n / best:,.0f} |")


def _timed(frame: pd.DataFrame) -> float:
    started = time.perf_counter()
    compute_ohlcv_features(frame)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
