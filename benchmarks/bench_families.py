"""Seconds per feature family for 10 symbols x 1 year of hourly bars (compute only, as the
assets compute them: each day from its own lookback).

python benchmarks/bench_families.py
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pipeline_assets.assets.patterns import detections_day_by_day
from pipeline_assets.features.aligned import align
from pipeline_assets.features.families import FAMILIES
from pipeline_assets.sources.derivatives import SyntheticDerivatives
from pipeline_assets.sources.synthetic import SyntheticMarket

SYMBOLS = [
    "BTCUSDT",
    "ETHUSDT",
    "BNBUSDT",
    "SOLUSDT",
    "XRPUSDT",
    "ADAUSDT",
    "DOGEUSDT",
    "AVAXUSDT",
    "DOTUSDT",
    "LINKUSDT",
]
START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    market = SyntheticMarket()
    history = pd.Timestamp(START) - pd.Timedelta(days=31)
    bars = pd.concat([market.ohlcv(s, history, END).assign(symbol=s) for s in SYMBOLS], ignore_index=True)
    days = [d.date().isoformat() for d in pd.date_range(START, END, freq="D", inclusive="left")]
    derivatives = SyntheticDerivatives(market)
    hours = pd.date_range(history, END, freq="h", inclusive="left")
    grids = []
    for s in SYMBOLS:
        own = bars[bars["symbol"] == s]
        feeds = {
            f: getattr(derivatives, f)(s, history - pd.Timedelta(hours=11), END)
            for f in ("funding", "open_interest", "long_short_ratio")
        }
        grids.append(align(s, hours, own, feeds, derivatives.liquidations(s, history, END), np.ones(len(hours), bool)))
    grid = pd.concat(grids, ignore_index=True)
    print(f"machine: {os.cpu_count()} cores; {datetime.now(UTC).date().isoformat()}; 10 symbols x 365 days hourly\n")
    print("| family | seconds | rows |")
    print("|---|---:|---:|")
    for name, family in FAMILIES.items():
        if family.compute_days is None:
            continue
        data = grid if family.inputs[0] == "market_aligned" else bars
        started = time.perf_counter()
        rows = family.compute_days(data, days, SYMBOLS)
        print(f"| {name} | {time.perf_counter() - started:.2f} | {len(rows):,} |")
    started = time.perf_counter()
    count = sum(len(detections_day_by_day(bars[bars["symbol"] == s].drop(columns=["symbol"]), days)) for s in SYMBOLS)
    print(f"| chart patterns (detections) | {time.perf_counter() - started:.2f} | {count:,} |")


if __name__ == "__main__":
    main()
