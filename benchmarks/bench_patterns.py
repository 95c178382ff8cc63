"""Chart-pattern detection: time of ``pattern_features`` on one year of hourly bars (8,760) for 10
symbols, after JIT warm-up, and detections per 1,000 bars on geometric Gaussian random walks
(where no pattern has predictive meaning: the rate of "false" patterns at default tolerances).

python benchmarks/bench_patterns.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from pipeline_assets.features.patterns import PATTERNS, detect_patterns, pattern_features

HOURS_PER_YEAR = 8760
SYMBOLS = 10


def walk(n: int, seed: int, sigma: float = 0.01) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, sigma, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.4 * sigma, (2, n)))
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread[0]),
            "low": np.minimum(open_, close) * (1 - spread[1]),
            "close": close,
            "volume": rng.lognormal(3, 0.5, n),
        }
    )


def main() -> None:
    symbols = [walk(HOURS_PER_YEAR, seed) for seed in range(SYMBOLS)]
    pattern_features(symbols[0].iloc[:500])  # compile / load the numba cache

    print(f"pattern_features, {SYMBOLS} symbols x {HOURS_PER_YEAR:,} hourly bars (best of 5)")
    print("| step | total (s) | per symbol (ms) | bars/s |")
    print("|---|---:|---:|---:|")
    for label, fn in (("detect_patterns", detect_patterns), ("pattern_features", pattern_features)):
        best = min(_timed(fn, symbols) for _ in range(5))
        bars = SYMBOLS * HOURS_PER_YEAR
        print(f"| {label} | {best:.3f} | {1000 * best / SYMBOLS:.1f} | {bars / best:,.0f} |")

    print()
    print("detections per 1,000 bars on random walks (20 x 2,000 bars each; sigma per hour)")
    sigmas = (0.005, 0.01, 0.02)
    print("| pattern | " + " | ".join(f"sigma {s:.1%}" for s in sigmas) + " | active bars, sigma 1% |")
    print("|---|" + "---:|" * (len(sigmas) + 1))
    rates = {s: dict.fromkeys(PATTERNS, 0.0) for s in sigmas}
    active = dict.fromkeys(PATTERNS, 0.0)
    for sigma in sigmas:
        for seed in range(20):
            bars = walk(2000, 1000 + seed, sigma)
            found = detect_patterns(bars)
            for name, count in found["pattern"].value_counts().items():
                rates[sigma][name] += 1000 * count / (20 * 2000)
            if sigma == 0.01:
                wide = pattern_features(bars)
                for name in PATTERNS:
                    active[name] += (wide[f"{name}_score"] > 0).mean() / 20
    for name in PATTERNS:
        cells = " | ".join(f"{rates[s][name]:.2f}" for s in sigmas)
        print(f"| {name} | {cells} | {active[name]:.1%} |")


def _timed(fn, symbols: list[pd.DataFrame]) -> float:
    started = time.perf_counter()
    for bars in symbols:
        fn(bars)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
