"""Walk-forward evaluation: rolling retrains over the stored history, every model metric beside its
baselines, calibration, and a strategy simulation that trades only after a prediction exists.

Folds: test blocks of ``step_days`` one after another; the model of a block is trained on the
``train_days`` before it, on rows whose labels matured before the block starts (nothing of the
block or after can reach it), with the member's own purged train/validation/test split inside.
Each test row is predicted by its fold's model only: point-in-time over the whole history.

Metrics per fold and overall: accuracy, balanced accuracy, log loss, Brier score, information
coefficient (Spearman of P(buy) - P(sell) against the forward return) with ICIR across folds, a
10-bin reliability table and ECE; each beside class priors of the fold's training window,
persistence of the last matured label and the training window's majority class, with the
difference and a block-bootstrap interval (ml/baselines.py).

Strategy: the signal of bar t exists when bar t closes (t + 1h), so it trades at the next bar's
open and holds one hour (open t+1 -> open t+2); fees and slippage are charged on every change of
position. Equity, annualised Sharpe (hourly), maximum drawdown and turnover, beside buy-and-hold
and flat.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from pipeline_assets.ml import direction_xgb
from pipeline_assets.ml.baselines import metrics_with_baselines
from pipeline_assets.ml.labels import BUY, HORIZON_HOURS, SELL
from pipeline_assets.ml.signals import signals_from_probabilities

HOURS_PER_YEAR = 24 * 365


@dataclass(frozen=True)
class WalkForwardParams:
    train_days: int = 30
    step_days: int = 7
    min_train_rows: int = 300
    fee_bps: float = 5.0
    slippage_bps: float = 2.0
    xgb: direction_xgb.XgbTrainingParams = field(default_factory=direction_xgb.XgbTrainingParams)


@dataclass
class WalkForwardReport:
    folds: pd.DataFrame
    overall: dict
    calibration: pd.DataFrame
    equity: pd.DataFrame
    predictions: pd.DataFrame

    def to_markdown(self) -> str:
        return self.folds.to_markdown(index=False, floatfmt=".4f")


def _brier(y: np.ndarray, proba: np.ndarray) -> float:
    onehot = np.eye(3)[y]
    return float(((proba - onehot) ** 2).sum(axis=1).mean())


def calibration_table(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Reliability of the predicted class's probability: per bin the mean confidence, the hit
    rate and the row count; ECE = the row-weighted mean |confidence - hit rate|."""
    confidence = proba.max(axis=1)
    hit = (proba.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                    "rows": int(mask.sum()),
                    "confidence": float(confidence[mask].mean()),
                    "hit_rate": float(hit[mask].mean()),
                }
            )
    table = pd.DataFrame(rows, columns=["bin", "rows", "confidence", "hit_rate"])
    ece = float((table["rows"] * (table["confidence"] - table["hit_rate"]).abs()).sum() / max(1, len(y)))
    return table, ece


def simulate(
    predictions: pd.DataFrame, opens: pd.DataFrame, fee_bps: float, slippage_bps: float
) -> tuple[pd.DataFrame, dict]:
    """``predictions``: symbol, ts, position (-1/0/1). ``opens``: symbol, ts, open (hourly). The
    position of bar t earns open(t+2)/open(t+1) - 1; changes of position pay fees + slippage.
    Returns the equal-weight equity curve across symbols and its statistics, with buy-and-hold
    and flat on the same hours."""
    cost = (fee_bps + slippage_bps) / 1e4
    frames = []
    for symbol, rows in predictions.sort_values("ts").groupby("symbol"):
        price = opens[opens["symbol"] == symbol].set_index("ts")["open"]
        entry = price.reindex(rows["ts"] + pd.Timedelta(hours=1)).to_numpy()
        exit_ = price.reindex(rows["ts"] + pd.Timedelta(hours=2)).to_numpy()
        hourly = exit_ / entry - 1.0
        position = rows["position"].to_numpy(dtype=np.float64)
        turnover = np.abs(np.diff(np.concatenate([[0.0], position])))
        strategy = position * hourly - cost * turnover
        frames.append(
            pd.DataFrame(
                {"ts": rows["ts"].to_numpy(), "strategy": strategy, "buy_and_hold": hourly, "turnover": turnover}
            )
        )
    if not frames:
        return pd.DataFrame(columns=["ts", "strategy", "buy_and_hold", "flat"]), {}
    per_hour = pd.concat(frames).groupby("ts").mean(numeric_only=True).dropna()
    per_hour["flat"] = 0.0
    equity = (1.0 + per_hour[["strategy", "buy_and_hold", "flat"]]).cumprod()
    stats = {}
    for name in ("strategy", "buy_and_hold", "flat"):
        r = per_hour[name].to_numpy()
        curve = equity[name].to_numpy()
        drawdown = 1.0 - curve / np.maximum.accumulate(curve) if len(curve) else np.array([0.0])
        sd = r.std(ddof=1) if len(r) > 1 else 0.0
        stats[name] = {
            "total_return": float(curve[-1] - 1.0) if len(curve) else 0.0,
            "sharpe": float(r.mean() / sd * np.sqrt(HOURS_PER_YEAR)) if sd > 0 else 0.0,
            "max_drawdown": float(drawdown.max()),
        }
    stats["strategy"]["turnover_per_hour"] = float(per_hour["turnover"].mean())
    return equity.reset_index(), stats


def walk_forward(
    frame: pd.DataFrame, opens: pd.DataFrame, params: WalkForwardParams | None = None
) -> WalkForwardReport:
    """``frame``: complete labelled model inputs (symbol, ts, features, direction, forward_return,
    matured_at) over the history; ``opens``: hourly opens (symbol, ts, open) for the simulation."""
    params = params or WalkForwardParams()
    frame = frame.sort_values(["ts", "symbol"], ignore_index=True)
    first, last = frame["ts"].min().normalize(), frame["ts"].max()
    test_start = first + pd.Timedelta(days=params.train_days)
    folds, predicted = [], []
    while test_start <= last:
        test_end = test_start + pd.Timedelta(days=params.step_days)
        train = frame[
            (frame["ts"] >= test_start - pd.Timedelta(days=params.train_days)) & (frame["matured_at"] < test_start)
        ]
        test = frame[(frame["ts"] >= test_start) & (frame["ts"] < test_end)]
        if len(test) and len(train) >= params.min_train_rows:
            trained = direction_xgb.train_direction_model(train, replace(params.xgb, min_rows=params.min_train_rows))
            proba = direction_xgb.predict_proba(trained.model, test)
            y = test["direction"].to_numpy(dtype=np.int64)
            # persistence reads the label of ts - horizon, which had matured when row ts was predicted
            report = metrics_with_baselines(test, proba, train, frame, HORIZON_HOURS)
            score = proba[:, BUY] - proba[:, SELL]
            ic = spearmanr(score, test["forward_return"].to_numpy()).statistic if len(test) > 2 else np.nan
            folds.append(
                {
                    "test_start": test_start.date().isoformat(),
                    "train_rows": len(train),
                    "labels_matured_before": test_start.isoformat(),
                    "test_rows": len(test),
                    "accuracy": report["metrics"]["model"]["accuracy"],
                    "balanced_accuracy": float(
                        np.mean([(proba.argmax(axis=1)[y == c] == c).mean() for c in np.unique(y)])
                    ),
                    "log_loss": report["metrics"]["model"]["log_loss"],
                    "priors_log_loss": report["metrics"]["class_priors"]["log_loss"],
                    "persistence_log_loss": report["metrics"]["persistence"]["log_loss"],
                    "majority_accuracy": report["metrics"]["majority_class"]["accuracy"],
                    "brier": _brier(y, proba),
                    "ic": float(ic),
                }
            )
            predicted.append(
                test[["symbol", "ts", "direction", "forward_return"]].assign(
                    prob_sell=proba[:, 0],
                    prob_hold=proba[:, 1],
                    prob_buy=proba[:, 2],
                    fold=test_start.date().isoformat(),
                )
            )
        test_start = test_end
    if not folds:
        raise ValueError(
            f"walk-forward: no fold has {params.min_train_rows} training rows with {params.train_days} training days "
            f"(history {first.isoformat()} .. {last.isoformat()})"
        )
    table = pd.DataFrame(folds)
    rows = pd.concat(predicted, ignore_index=True)
    proba = rows[["prob_sell", "prob_hold", "prob_buy"]].to_numpy()
    y = rows["direction"].to_numpy(dtype=np.int64)
    calibration, ece = calibration_table(y, proba)
    signals = signals_from_probabilities(rows["prob_sell"].to_numpy(), rows["prob_buy"].to_numpy())
    equity, strategy = simulate(
        rows.assign(position=signals["position"].to_numpy()), opens, params.fee_bps, params.slippage_bps
    )
    # overall model vs baselines on every walk-forward row, with block-bootstrap intervals
    overall_report = metrics_with_baselines(rows, proba, frame, frame, HORIZON_HOURS)
    weights = table["test_rows"].to_numpy(dtype=np.float64)
    ics = table["ic"].to_numpy(dtype=np.float64)
    overall = {
        "folds": len(table),
        "rows": len(rows),
        "log_loss": float(np.average(table["log_loss"], weights=weights)),
        "priors_log_loss": float(np.average(table["priors_log_loss"], weights=weights)),
        "persistence_log_loss": float(np.average(table["persistence_log_loss"], weights=weights)),
        "accuracy": float(np.average(table["accuracy"], weights=weights)),
        "balanced_accuracy": float(np.average(table["balanced_accuracy"], weights=weights)),
        "brier": float(np.average(table["brier"], weights=weights)),
        "ic_mean": float(np.nanmean(ics)),
        "icir": float(np.nanmean(ics) / np.nanstd(ics, ddof=1))
        if np.sum(~np.isnan(ics)) > 1 and np.nanstd(ics, ddof=1) > 0
        else float("nan"),
        "ece": ece,
        "differences": overall_report["differences"],
        "verdict": overall_report["verdict"],
        "beats_baselines": overall_report["beats_baselines"],
        "strategy": strategy,
        "class_weight": params.xgb.class_weight,
    }
    return WalkForwardReport(table, overall, calibration, equity, rows)


def choose_class_weight(frame: pd.DataFrame, opens: pd.DataFrame, params: WalkForwardParams | None = None) -> dict:
    """Walk-forward with balanced and with unweighted classes; the lower overall log loss wins."""
    params = params or WalkForwardParams()
    results = {}
    for weight in ("balanced", None):
        report = walk_forward(frame, opens, replace(params, xgb=replace(params.xgb, class_weight=weight)))
        results[str(weight)] = report.overall["log_loss"]
    chosen = min(results, key=results.get)
    return {"log_loss": results, "chosen": None if chosen == "None" else chosen}
