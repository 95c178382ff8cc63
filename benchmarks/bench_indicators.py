"""The OHLCV family against the same indicators computed with TA-Lib, side by side in one process.

python benchmarks/bench_indicators.py        (TA-Lib is the bench extra: pip install -e '.[bench]')

Times (best of 5, after JIT warm-up) on 1M hourly bars: the family's array entry point (one fused
numba pass), its DataFrame entry point (validation + frame), and TA-Lib for the same 11 columns
(indicators TA-Lib lacks, log returns and the range, with plain numpy on its side). Prints the
ratio ours / TA-Lib and the largest absolute difference per column after a 300-bar warm-up, then
the online case: one symbol's 264-bar window through the array entry point (p50, p99).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from pipeline_assets.features.ohlcv_ext import EXT_COLUMNS, ohlcv_ext_array
from pipeline_assets.features.ohlcv_features import FEATURE_COLUMNS, compute_ohlcv_features, ohlcv_family_array


def bars(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.003, (2, n)))
    return pd.DataFrame(
        {
            "ts": pd.date_range("2000-01-01", periods=n, freq="h", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread[0]),
            "low": np.minimum(open_, close) * (1 - spread[1]),
            "close": close,
            "volume": rng.lognormal(3, 0.5, n),
        }
    )


def talib_family(talib, o, h, low, c, v) -> np.ndarray:
    out = np.full((len(c), len(FEATURE_COLUMNS)), np.nan)
    for j, p in enumerate((1, 4, 24)):
        out[p:, j] = np.log(c[p:] / c[:-p])
    out[:, 3] = talib.RSI(c, 14)
    out[:, 4] = talib.EMA(c, 12) / talib.EMA(c, 26) - 1.0
    out[:, 5] = talib.MACD(c, 12, 26, 9)[2] / c
    upper, _, lower = talib.BBANDS(c, 20, 2.0, 2.0)
    width = upper - lower
    out[:, 6] = np.where(width > 0, (c - lower) / np.where(width > 0, width, 1.0), 0.5)
    out[:, 7] = talib.ATR(h, low, c, 14) / c
    r1 = out[:, 0].copy()
    r1[0] = 0.0
    out[:, 8] = talib.STDDEV(r1, 24, 1.0) * np.sqrt(24 / 23)
    std = talib.STDDEV(v, 24, 1.0) * np.sqrt(24 / 23)
    out[:, 9] = np.where(std > 0, (v - talib.SMA(v, 24)) / np.where(std > 0, std, 1.0), 0.0)
    out[:, 10] = (h - low) / c
    return out


def _rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    csum = np.cumsum(np.concatenate([[0.0], x]))
    out[n - 1 :] = csum[n:] - csum[:-n]
    return out


def talib_ext(talib, o, h, low, c, v) -> np.ndarray:
    """The extended set with TA-Lib where it has the indicator, numpy cumulative sums elsewhere."""
    out = np.full((len(c), len(EXT_COLUMNS)), np.nan)
    for j, n in enumerate((10, 20, 50)):
        out[:, j] = c / talib.SMA(c, n) - 1.0
    for j, n in enumerate((9, 21, 50)):
        out[:, 3 + j] = c / talib.EMA(c, n) - 1.0
    out[:, 6], out[:, 7] = talib.STOCHF(h, low, c, 14, 3, 0)
    out[:, 8] = talib.PLUS_DI(h, low, c, 14)
    out[:, 9] = talib.MINUS_DI(h, low, c, 14)
    out[:, 10] = talib.ADX(h, low, c, 14)
    out[:, 11] = talib.MFI(h, low, c, v, 14)
    signed = np.concatenate([[0.0], np.sign(np.diff(c)) * v[1:]])
    out[:, 12] = _rolling_sum(signed, 24) / _rolling_sum(v, 24)
    out[:24, 12] = np.nan
    typical = (h + low + c) / 3.0
    out[:, 13] = c / (_rolling_sum(typical * v, 24) / _rolling_sum(v, 24)) - 1.0
    out[:, 14] = v / talib.SMA(v, 20)
    out[1:, 15] = np.log(v[1:] / v[:-1])
    return out


def best(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    try:
        import talib
    except ImportError as exc:
        raise SystemExit("TA-Lib is the benchmark extra: .venv/bin/pip install -e '.[bench]'") from exc
    frame = bars(1_000_000)
    o, h, low, c, v = (frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    out = np.empty((len(c), len(FEATURE_COLUMNS)))
    ours_array = best(lambda: ohlcv_family_array(o, h, low, c, v, out=out))
    ours_frame = best(lambda: compute_ohlcv_features(frame))
    theirs = best(lambda: talib_family(talib, o, h, low, c, v))
    print("## OHLCV family (11 columns), 1,000,000 hourly bars, best of 5\n")
    print("| implementation | seconds | ratio vs TA-Lib |")
    print("|---|---:|---:|")
    print(f"| ours, array entry (one fused numba pass) | {ours_array:.4f} | {ours_array / theirs:.2f} |")
    print(f"| ours, DataFrame entry (validation + frame) | {ours_frame:.4f} | {ours_frame / theirs:.2f} |")
    print(f"| TA-Lib (+ numpy where TA-Lib has no indicator) | {theirs:.4f} | 1.00 |")
    ext_out = np.empty((len(c), len(EXT_COLUMNS)))
    ours_ext = best(lambda: ohlcv_ext_array(o, h, low, c, v, out=ext_out))
    theirs_ext = best(lambda: talib_ext(talib, o, h, low, c, v))
    both, theirs_both = ours_array + ours_ext, theirs + theirs_ext
    print(f"| extended set (16 columns), ours | {ours_ext:.4f} | {ours_ext / theirs_ext:.2f} |")
    print(f"| extended set, TA-Lib (+ numpy) | {theirs_ext:.4f} | 1.00 |")
    print(f"| whole family (27 columns), ours array entries | {both:.4f} | {both / theirs_both:.2f} |")
    print(f"| whole family, TA-Lib (+ numpy) | {theirs_both:.4f} | 1.00 |")
    mine_ext = ohlcv_ext_array(o, h, low, c, v)
    reference_ext = talib_ext(talib, o, h, low, c, v)
    mine = ohlcv_family_array(o, h, low, c, v)
    reference = talib_family(talib, o, h, low, c, v)
    print("\n| column | largest absolute difference after 300 bars |")
    print("|---|---:|")
    for j, name in enumerate(FEATURE_COLUMNS):
        print(f"| {name} | {np.nanmax(np.abs(mine[300:, j] - reference[300:, j])):.2e} |")
    for j, name in enumerate(EXT_COLUMNS):
        print(f"| {name} | {np.nanmax(np.abs(mine_ext[300:, j] - reference_ext[300:, j])):.2e} |")
    window = frame.iloc[:264]
    wo, wh, wl, wc, wv = (window[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    buffer = np.empty((264, len(FEATURE_COLUMNS)))
    ext_buffer = np.empty((264, len(EXT_COLUMNS)))
    samples = []
    for _ in range(5000):
        started = time.perf_counter()
        ohlcv_family_array(wo, wh, wl, wc, wv, out=buffer)
        ohlcv_ext_array(wo, wh, wl, wc, wv, out=ext_buffer)
        samples.append(time.perf_counter() - started)
    us = np.array(samples[100:]) * 1e6
    p50, p99 = np.percentile(us, 50), np.percentile(us, 99)
    print(f"\none symbol's 264-bar window, both array entries (27 columns): p50 {p50:.1f} us, p99 {p99:.1f} us")


if __name__ == "__main__":
    main()
