"""Cost of the walk-forward report at the asset's default settings (120 days of history, 30-day
rolling training windows, 7-day test blocks), and where the time goes.

python benchmarks/bench_walk_forward.py [days] [symbols]

The frame is synthetic (the model's feature columns, a forward return partly driven by the first
feature, labels maturing 5 h after their bar, opens consistent with the forward returns), so the
figures measure the walk-forward machinery and XGBoost, not a market. Each row: one walk-forward,
its folds, wall time, the share spent in direction_xgb.train_direction_model, and the resulting log
loss beside the class priors'. The default training parameters are the production ones.
"""

from __future__ import annotations

import platform
import sys
import time

import numpy as np
import pandas as pd

from pipeline_assets.ml import direction_xgb
from pipeline_assets.ml import walk_forward as wf
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS

HOUR = pd.Timedelta(hours=1)


def synthetic(days: int, symbols: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=days * 24, freq="h", tz="UTC")
    frames, prices = [], []
    for k in range(symbols):
        symbol = f"SYM{k}"
        x = rng.normal(0, 1, (len(ts), len(MODEL_FEATURE_COLUMNS)))
        forward = 0.004 * x[:, 0] + rng.normal(0, 0.01, len(ts))
        direction = np.where(forward < -0.0025, 0, np.where(forward > 0.0025, 2, 1))
        frame = pd.DataFrame(x, columns=list(MODEL_FEATURE_COLUMNS))
        frame.insert(0, "ts", ts)
        frame.insert(0, "symbol", symbol)
        frames.append(frame.assign(direction=direction, forward_return=forward, matured_at=ts + 5 * HOUR))
        opens = np.concatenate([[100.0, 100.0], 100.0 * np.cumprod(1.0 + forward)])
        bars = pd.date_range(ts[0], ts[-1] + 2 * HOUR, freq="h")
        prices.append(pd.DataFrame({"symbol": symbol, "ts": bars, "open": opens}))
    return pd.concat(frames, ignore_index=True), pd.concat(prices, ignore_index=True)


def timed(frame: pd.DataFrame, prices: pd.DataFrame, params: direction_xgb.XgbTrainingParams) -> dict:
    spent = [0.0]
    train = direction_xgb.train_direction_model

    def clocked(train_frame, train_params):
        start = time.perf_counter()
        try:
            return train(train_frame, train_params)
        finally:
            spent[0] += time.perf_counter() - start

    direction_xgb.train_direction_model = clocked
    try:
        start = time.perf_counter()
        report = wf.walk_forward(frame, 30, 7, 300, params, prices=prices)
        wall = time.perf_counter() - start
    finally:
        direction_xgb.train_direction_model = train
    o = report.overall
    return {
        "folds": o["folds"],
        "rows": o["rows"],
        "wall_s": wall,
        "training_share": spent[0] / wall,
        "s_per_fold": wall / o["folds"],
        "log_loss": o["log_loss"],
        "priors_log_loss": o["priors_log_loss"],
        "beats": o["beats_baselines"],
    }


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    symbols = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    frame, prices = synthetic(days, symbols)
    default = direction_xgb.XgbTrainingParams()
    rows = []
    for name, params in (
        ("production params, balanced", default),
        ("production params, unweighted", direction_xgb.XgbTrainingParams(class_weight=None)),
        ("60 trees, lr 0.2", direction_xgb.XgbTrainingParams(n_estimators=60, learning_rate=0.2)),
    ):
        rows.append({"run": name, **timed(frame, prices, params)})
    print(f"{days} days x {symbols} symbols ({len(frame)} rows), {platform.machine()} {platform.processor() or ''}")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
