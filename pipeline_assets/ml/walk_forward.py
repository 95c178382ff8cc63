"""Walk-forward evaluation of the direction model: rolling (or expanding) retrains over the
history, every metric beside its baselines, calibration, and a strategy simulation that trades
only after a prediction exists.

Folds. Test blocks of ``step_days`` follow one another from ``train_days`` after the first day of
the history. The model of a block is trained on the ``train_days`` before it (rolling) or on
everything before it (expanding), keeping only rows whose label had matured (``matured_at``) by
the start of the block: no training label matures after the block starts, so no test row is
predicted by a model that knew its future (the purged rows are counted per fold). Inside the
window the member's own purged train / validation / test split applies (direction_xgb), exactly
as in production. Each test row is predicted by its fold's model only, point in time. Folds whose
window is too small, or whose training fails, are listed with the reason and their test rows
counted as not evaluated; rows of the first ``train_days`` are the warm-up.

Metrics per fold and overall: accuracy, balanced accuracy, log loss, Brier score, information
coefficient (Spearman of P(buy) - P(sell) against the forward return; ICIR = mean / standard
deviation of the fold ICs), a reliability table of the predicted class's probability and its ECE.
Beside each: class priors of the fold's training window, persistence (the newest label of the
same symbol matured by the prediction time ts + 1h, mapped to probabilities by the training
window's transition frequencies; rows without one fall back to the priors, counted) and the
training window's majority class, with model-minus-baseline differences and 95% moving-block
bootstrap intervals (ml/baselines.py) whose blocks span several label horizons. Overall figures
pool the rows of every fold, each row scored against its own fold's baselines.

Strategy. The signal of bar t (ml/signals.py) exists when bar t closes (t + 1h); it trades at the
first price after that, the open of bar t + 1, and holds until the next signal trades, at the
open of bar t + 2. Never at bar t's close. Each change of position pays fee + slippage on the
traded notional. Hours without a signal are flat; a position whose entry or exit open is missing
is not taken (counted, with examples). Symbols get equal capital, rebalanced hourly. Beside it:
buy-and-hold (open to open, forward-filled across missing opens, paying one entry) and flat.
Equity curves, annualised Sharpe (hourly returns, 8760 h a year), maximum drawdown and turnover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from pipeline_assets.ml import direction_xgb
from pipeline_assets.ml.baselines import N_CLASSES, block_bootstrap_ci, class_priors
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS
from pipeline_assets.ml.labels import BUY, HOLD, SELL
from pipeline_assets.ml.signals import signals_from_probabilities

HOURS_PER_YEAR = 24 * 365
CALIBRATION_BINS = 10
WINDOWS = ("rolling", "expanding")
CLASS_WEIGHTS = ("balanced", None)
FROM_PARAMS = "from params"  # class_weight default: keep params.class_weight
REQUIRED_COLUMNS = ("symbol", "ts", "direction", "forward_return", "matured_at")
PROBABILITY_COLUMNS = ("prob_sell", "prob_hold", "prob_buy")
BOOTSTRAP_RESAMPLES = 400
ONE_HOUR = pd.Timedelta(hours=1)
EPS = 1e-12
EXAMPLES = 5


class WalkForwardError(ValueError):
    pass


@dataclass(frozen=True)
class WalkForwardParams:
    """The settings of one walk-forward, bundled (the form assets/models.py passes)."""

    train_days: float = 30
    step_days: float = 7
    min_train_rows: int = 300
    fee_bps: float = 5.0
    slippage_bps: float = 2.0
    window: str = "rolling"
    xgb: direction_xgb.XgbTrainingParams = field(default_factory=direction_xgb.XgbTrainingParams)


@dataclass
class WalkForwardReport:
    folds: pd.DataFrame  # one row per evaluated fold: boundaries, metrics, baselines, differences
    overall: dict  # pooled metrics, baselines, differences with intervals, verdict, strategy stats
    calibration: pd.DataFrame  # reliability table over every walk-forward row
    equity: pd.DataFrame  # ts (when the hour's return is realised), strategy, buy_and_hold, flat
    predictions: pd.DataFrame  # every test row with its fold, probabilities and position
    skipped: pd.DataFrame = field(default_factory=pd.DataFrame)  # folds not evaluated, with reasons

    def to_markdown(self) -> str:
        o = self.overall
        lines = [
            f"**Walk-forward verdict:** the model {o['verdict']}.",
            "",
            f"{o['window']} window of {o['train_days']:g} days, test blocks of {o['step_days']:g} days, "
            f"class weight {o['class_weight']}; {o['folds']} folds evaluated over {o['rows']} rows "
            f"({o['first_test_start']} .. {o['last_test_end']}); {o['folds_skipped']} folds skipped "
            f"({o['rows_not_evaluated']} rows not evaluated); {o['rows_before_first_test']} warm-up rows.",
            "",
            "**Model beside its baselines (all folds, each against its own training window)**",
            "",
            _baseline_table(o).to_markdown(index=False, floatfmt=".4f"),
            "",
            "**Model minus baseline, 95% block-bootstrap interval**",
            "",
            pd.DataFrame(
                [
                    {"difference": name, "value": d["value"], "ci95_low": d["ci95"][0], "ci95_high": d["ci95"][1]}
                    for name, d in o["differences"].items()
                ]
            ).to_markdown(index=False, floatfmt=".4f"),
            "",
            f"IC pooled {o['ic']:.4f}, mean of folds {o['ic_mean']:.4f}, ICIR {o['icir']:.3f}; "
            f"ECE {o['ece']:.4f}; persistence fell back to priors on {o['persistence_rows_without_matured_label']} "
            "rows.",
            "",
            "**Folds**",
            "",
            self.folds_markdown(),
        ]
        if len(self.skipped):
            lines += ["", "**Skipped folds**", "", _printable(self.skipped).to_markdown(index=False)]
        lines += [
            "",
            f"**Calibration of the predicted class (ECE {o['ece']:.4f})**",
            "",
            self.calibration.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
        if o["strategy"]:
            sim = o["simulation"]
            lines += [
                f"**Strategy at the next open, {sim['fee_bps']:g} bps fee + {sim['slippage_bps']:g} bps slippage** "
                f"({sim['positions_not_taken_missing_price']} positions not taken for a missing open)",
                "",
                pd.DataFrame(o["strategy"]).T.reset_index(names="curve").to_markdown(index=False, floatfmt=".4f"),
            ]
        else:
            lines.append(f"**Strategy:** {o['simulation']['status']}.")
        return "\n".join(lines)

    def folds_markdown(self) -> str:
        return _printable(self.folds).to_markdown(index=False, floatfmt=".4f")


# ---------------------------------------------------------------------------------------------
# metrics


def calibration_table(y: np.ndarray, proba: np.ndarray, bins: int = CALIBRATION_BINS) -> tuple[pd.DataFrame, float]:
    """Reliability of the predicted class's probability in ``bins`` equal bins [k/bins, (k+1)/bins)
    (the last one closed): rows, mean confidence, hit rate and their gap per bin (empty bins
    shown with NaN). ECE = sum over bins of rows * |confidence - hit rate| / all rows."""
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    confidence = proba.max(axis=1)
    hit = (proba.argmax(axis=1) == y).astype(np.float64)
    which = np.clip(np.floor(confidence * bins).astype(np.int64), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        conf = float(confidence[mask].mean()) if n else float("nan")
        rate = float(hit[mask].mean()) if n else float("nan")
        rows.append(
            {
                "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                "rows": n,
                "confidence": conf,
                "hit_rate": rate,
                "gap": conf - rate,
            }
        )
    table = pd.DataFrame(rows)
    filled = table[table["rows"] > 0]
    ece = float((filled["rows"] * filled["gap"].abs()).sum() / len(y)) if len(y) else float("nan")
    return table, ece


def _per_row(y: np.ndarray, proba: np.ndarray) -> dict[str, np.ndarray]:
    onehot = np.eye(N_CLASSES)[y]
    return {
        "log_loss": -np.log(np.clip(proba[np.arange(len(y)), y], EPS, 1.0)),
        "brier": ((proba - onehot) ** 2).sum(axis=1),
        "accuracy": (proba.argmax(axis=1) == y).astype(np.float64),
    }


def _balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in ``y``."""
    present = np.unique(y)
    return float(np.mean([(predicted[y == c] == c).mean() for c in present])) if len(present) else float("nan")


def _spearman(score: np.ndarray, forward_return: np.ndarray) -> float:
    if len(score) < 3 or np.ptp(score) == 0 or np.ptp(forward_return) == 0:
        return float("nan")
    return float(spearmanr(score, forward_return).statistic)


def _scores(y: np.ndarray, proba: np.ndarray, forward_return: np.ndarray) -> dict:
    per_row = _per_row(y, proba)
    return {
        "accuracy": float(per_row["accuracy"].mean()),
        "balanced_accuracy": _balanced_accuracy(y, proba.argmax(axis=1)),
        "log_loss": float(per_row["log_loss"].mean()),
        "brier": float(per_row["brier"].mean()),
        "ic": _spearman(proba[:, BUY] - proba[:, SELL], forward_return),
    }


def last_matured_labels(rows: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """For each row (symbol, ts): the label (direction) of the newest bar of the same symbol in
    ``history`` whose label had matured by the row's prediction time ts + 1h; -1 when none had.
    Labels may mature out of bar order (a late feed): the newest bar wins, not the latest arrival."""
    left = pd.DataFrame(
        {
            "symbol": rows["symbol"].to_numpy(dtype=object),  # one key dtype whatever the reader gave
            "known_at": (rows["ts"] + ONE_HOUR).reset_index(drop=True),
            "order": np.arange(len(rows)),
        }
    ).sort_values("known_at", kind="stable")
    history = history.assign(symbol=history["symbol"].to_numpy(dtype=object))
    arrivals = history[["symbol", "ts", "matured_at"]].sort_values(["matured_at", "ts"], kind="stable")
    # the newest bar among the labels matured so far, per symbol, at each arrival
    arrivals = arrivals.assign(newest=arrivals.groupby("symbol")["ts"].cummax())
    right = (
        arrivals[["symbol", "matured_at", "newest"]]
        .merge(history[["symbol", "ts", "direction"]].rename(columns={"ts": "newest"}), on=["symbol", "newest"])
        .rename(columns={"matured_at": "known_at"})
        .sort_values("known_at", kind="stable")[["symbol", "known_at", "direction"]]
    )
    merged = pd.merge_asof(left, right, on="known_at", by="symbol", direction="backward", allow_exact_matches=True)
    return merged.sort_values("order")["direction"].fillna(-1).to_numpy(dtype=np.int64)


def _transition_matrix(train: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """P(label | last label matured by the prediction time) over the training window, add-one
    smoothed. Every label it reads matured before its training row was predicted."""
    previous = last_matured_labels(train, history)
    counts = np.ones((N_CLASSES, N_CLASSES))
    usable = previous >= 0
    np.add.at(counts, (previous[usable], train["direction"].to_numpy(dtype=np.int64)[usable]), 1.0)
    return counts / counts.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class _Baselines:
    priors: np.ndarray  # (n, 3)
    persistence: np.ndarray  # (n, 3)
    majority: np.ndarray  # (n,) predicted class
    without_matured_label: int


def _baselines(test: pd.DataFrame, train: pd.DataFrame, history: pd.DataFrame) -> _Baselines:
    y_train = train["direction"].to_numpy(dtype=np.int64)
    priors = class_priors(y_train)
    majority = int(np.argmax(np.bincount(y_train, minlength=N_CLASSES)))
    transitions = _transition_matrix(train, history)
    previous = last_matured_labels(test, history)
    known = previous >= 0
    persistence = np.where(known[:, None], transitions[np.maximum(previous, 0)], priors[None, :])
    return _Baselines(
        priors=np.broadcast_to(priors, (len(test), N_CLASSES)).copy(),
        persistence=persistence,
        majority=np.full(len(test), majority),
        without_matured_label=int((~known).sum()),
    )


def _compare(
    y: np.ndarray, proba: np.ndarray, forward_return: np.ndarray, base: _Baselines, block: int
) -> tuple[dict, dict, bool, str]:
    """Model and baseline scores, model-minus-baseline differences with 95% block-bootstrap
    intervals (rows in time order), and whether the model beats priors and persistence."""
    scores = {
        "model": _scores(y, proba, forward_return),
        "class_priors": _scores(y, base.priors, forward_return),
        "persistence": _scores(y, base.persistence, forward_return),
        "majority_class": {
            "accuracy": float((base.majority == y).mean()),
            "balanced_accuracy": _balanced_accuracy(y, base.majority),
        },
    }
    model_rows = _per_row(y, proba)
    differences = {}
    for name, p in (("class_priors", base.priors), ("persistence", base.persistence)):
        base_rows = _per_row(y, p)
        for metric in ("log_loss", "brier", "accuracy"):
            diff = model_rows[metric] - base_rows[metric]
            differences[f"{metric}_minus_{name}"] = {
                "value": float(diff.mean()),
                "ci95": block_bootstrap_ci(diff, block, resamples=BOOTSTRAP_RESAMPLES),
            }
    diff = model_rows["accuracy"] - (base.majority == y).astype(np.float64)
    differences["accuracy_minus_majority_class"] = {
        "value": float(diff.mean()),
        "ci95": block_bootstrap_ci(diff, block, resamples=BOOTSTRAP_RESAMPLES),
    }
    priors_high = differences["log_loss_minus_class_priors"]["ci95"][1]
    persistence_high = differences["log_loss_minus_persistence"]["ci95"][1]
    beats = bool(priors_high < 0 and persistence_high < 0)
    if beats:
        verdict = "beats class priors and persistence on log loss (95% intervals below zero)"
    else:
        losing = [
            name for name, high in (("class priors", priors_high), ("persistence", persistence_high)) if not high < 0
        ]
        verdict = (
            f"does NOT beat {' and '.join(losing)} on log loss with 95% confidence "
            f"(log loss {scores['model']['log_loss']:.4f} vs priors {scores['class_priors']['log_loss']:.4f}, "
            f"persistence {scores['persistence']['log_loss']:.4f})"
        )
    return scores, differences, beats, verdict


# ---------------------------------------------------------------------------------------------
# strategy


def _check_prices(prices: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("symbol", "ts", "open") if c not in prices.columns]
    if missing:
        raise WalkForwardError(f"prices lack column(s) {missing}; need symbol, ts and the hourly open")
    if not isinstance(prices["ts"].dtype, pd.DatetimeTZDtype):
        raise WalkForwardError(f"prices column 'ts' must be timezone-aware UTC timestamps, got {prices['ts'].dtype}")
    duplicated = prices.duplicated(["symbol", "ts"])
    if duplicated.any():
        first = prices[duplicated].iloc[0]
        raise WalkForwardError(f"prices: duplicate bar for {first['symbol']} at {first['ts'].isoformat()}")
    return prices


def _curve_stats(returns: np.ndarray) -> dict:
    equity = np.cumprod(1.0 + returns)
    path = np.concatenate([[1.0], equity])
    sd = returns.std(ddof=1) if len(returns) > 1 else 0.0
    return {
        "total_return": float(path[-1] - 1.0),
        # a curve that never moves (flat) has no risk to divide by: reported as 0
        "sharpe": float(returns.mean() / sd * math.sqrt(HOURS_PER_YEAR)) if sd > 0 else 0.0,
        "max_drawdown": float((1.0 - path / np.maximum.accumulate(path)).max()),
        "hours": int(len(returns)),
    }


def simulate_strategy(
    positions: pd.DataFrame, prices: pd.DataFrame, fee_bps: float, slippage_bps: float
) -> tuple[pd.DataFrame, dict, dict]:
    """``positions``: symbol, ts (signal bar), position in [-1, 1]; ``prices``: symbol, ts, open
    (hourly bars; other columns such as close are not used: a signal can never trade at its own
    bar's close). The position of bar t is held from open(t + 1h) to open(t + 2h).

    Returns the equity curves (ts = t + 2h, when the hour's return is realised; strategy,
    buy_and_hold, flat), their statistics, and what was not traded (counts and examples)."""
    for column in ("symbol", "ts", "position"):
        if column not in positions.columns:
            raise WalkForwardError(f"positions lack column {column!r}")
    if positions.empty:
        raise WalkForwardError("no positions to simulate")
    wanted = positions["position"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(wanted) | (np.abs(wanted) > 1)
    if bad.any():
        first = positions[bad].iloc[0]
        raise WalkForwardError(
            f"position {first['position']} of {first['symbol']} at {first['ts'].isoformat()} is not in [-1, 1]"
        )
    if positions.duplicated(["symbol", "ts"]).any():
        first = positions[positions.duplicated(["symbol", "ts"])].iloc[0]
        raise WalkForwardError(f"positions: two signals for {first['symbol']} at {first['ts'].isoformat()}")
    prices = _check_prices(prices)
    cost = (fee_bps + slippage_bps) / 1e4
    hours = pd.date_range(positions["ts"].min(), positions["ts"].max(), freq="h")
    strategy, hold, turnover, exposure, not_taken = [], [], [], [], []
    for symbol, rows in positions.groupby("symbol", sort=True):
        opens = prices.loc[prices["symbol"] == symbol, ["ts", "open"]].set_index("ts")["open"].sort_index()
        if opens.empty:
            raise WalkForwardError(f"prices have no bars for {symbol}; cannot simulate its positions")
        want = rows.set_index("ts")["position"].astype(np.float64).reindex(hours).fillna(0.0).to_numpy()
        entry = opens.reindex(hours + ONE_HOUR).to_numpy(dtype=np.float64)
        exit_ = opens.reindex(hours + 2 * ONE_HOUR).to_numpy(dtype=np.float64)
        tradeable = np.isfinite(entry) & np.isfinite(exit_) & (entry > 0)
        held = np.where(tradeable, want, 0.0)
        for i in np.flatnonzero((want != 0) & ~tradeable):
            not_taken.append((symbol, hours[i]))
        move = np.where(tradeable, exit_ / np.where(tradeable, entry, 1.0) - 1.0, 0.0)
        traded = np.abs(np.diff(np.concatenate([[0.0], held])))
        strategy.append(held * move - cost * traded)
        turnover.append(traded)
        exposure.append(np.abs(held))
        # buy-and-hold marks through missing opens with the last one seen (the move lands on the
        # next open that exists); before the first open there is nothing to hold
        marks = opens.reindex(hours.append(hours[-1:] + ONE_HOUR) + ONE_HOUR, method="ffill").to_numpy()
        bh = np.nan_to_num(marks[1:] / marks[:-1] - 1.0, nan=0.0)
        bh[0] -= cost  # buying in
        hold.append(bh)
    returns = {
        "strategy": np.mean(strategy, axis=0),
        "buy_and_hold": np.mean(hold, axis=0),
        "flat": np.zeros(len(hours)),
    }
    equity = pd.DataFrame({"ts": hours + 2 * ONE_HOUR, **{k: np.cumprod(1.0 + r) for k, r in returns.items()}})
    stats = {name: _curve_stats(r) for name, r in returns.items()}
    per_hour_turnover = np.mean(turnover, axis=0)
    stats["strategy"].update(
        {
            "turnover_per_hour": float(per_hour_turnover.mean()),
            "total_turnover": float(per_hour_turnover.sum()),
            "trades": int(sum(int((t > 0).sum()) for t in turnover)),
            "exposure": float(np.mean(exposure)),  # mean |position| over hours and symbols
        }
    )
    notes = {
        "fee_bps": float(fee_bps),
        "slippage_bps": float(slippage_bps),
        "symbols": int(positions["symbol"].nunique()),
        "signal_rows": int(len(positions)),
        "hours_without_signal": int(len(hours) * positions["symbol"].nunique() - len(positions)),
        "positions_not_taken_missing_price": len(not_taken),
        "examples_not_taken": [f"{s} {t.isoformat()}" for s, t in not_taken[:EXAMPLES]],
    }
    return equity, stats, notes


# ---------------------------------------------------------------------------------------------
# walk-forward


def _fail_at(frame: pd.DataFrame, mask: np.ndarray, what: str) -> None:
    if mask.any():
        row = frame[mask].iloc[0]
        raise WalkForwardError(f"{what} for {row['symbol']} at {row['ts'].isoformat()} ({int(mask.sum())} rows)")


def _check_frame(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in (*REQUIRED_COLUMNS, *MODEL_FEATURE_COLUMNS) if c not in frame.columns]
    if missing:
        raise WalkForwardError(f"walk-forward frame lacks column(s) {missing}")
    if frame.empty:
        raise WalkForwardError("walk-forward frame is empty")
    for column in ("ts", "matured_at"):
        if not isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            raise WalkForwardError(
                f"column {column!r} must be timezone-aware UTC timestamps, got {frame[column].dtype}"
            )
    _fail_at(frame, frame.duplicated(["symbol", "ts"]).to_numpy(), "duplicate row")
    features = frame[list(MODEL_FEATURE_COLUMNS)].isna()
    if features.to_numpy().any():
        i = int(np.flatnonzero(features.any(axis=1).to_numpy())[0])
        column = features.columns[features.iloc[i].to_numpy()][0]
        row = frame.iloc[i]
        raise WalkForwardError(
            f"feature {column!r} is missing for {row['symbol']} at {row['ts'].isoformat()}; "
            "pass complete rows (dataset.split_complete_rows)"
        )
    _fail_at(frame, ~frame["direction"].isin([SELL, HOLD, BUY]).to_numpy(), "direction is not 0/1/2 (SELL/HOLD/BUY)")
    _fail_at(frame, ~np.isfinite(frame["forward_return"].to_numpy(dtype=np.float64)), "forward_return is not finite")
    _fail_at(
        frame,
        (frame["matured_at"] <= frame["ts"] + ONE_HOUR).to_numpy(),
        "matured_at is not after the prediction time ts + 1h (a label known when predicting is no forecast)",
    )
    return frame.sort_values(["ts", "symbol"], ignore_index=True)


def _stamp(value: pd.Timestamp) -> str:
    return value.isoformat()


def _printable(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.strftime("%Y-%m-%d %H:%M")
    return out


def _baseline_table(overall: dict) -> pd.DataFrame:
    names = {
        "model": "walk-forward model",
        "class_priors": "class priors (fold's training window)",
        "persistence": "persistence of the last matured label",
        "majority_class": "majority class (fold's training window)",
    }
    columns = ("log_loss", "brier", "accuracy", "balanced_accuracy", "ic")
    return pd.DataFrame(
        [
            {"predictor": label, **{c: overall["metrics"][key].get(c, float("nan")) for c in columns}}
            for key, label in names.items()
        ]
    )


def _unbundle(prices: pd.DataFrame, bundle: object) -> dict:
    """The (frame, prices, WalkForwardParams) call of assets/models.py, as keyword arguments."""
    bundle = bundle if isinstance(bundle, WalkForwardParams) else WalkForwardParams()
    return {
        "train_days": bundle.train_days,
        "step_days": bundle.step_days,
        "min_train_rows": bundle.min_train_rows,
        "params": bundle.xgb,
        "fee_bps": bundle.fee_bps,
        "slippage_bps": bundle.slippage_bps,
        "prices": prices,
        "window": bundle.window,
    }


def walk_forward(
    frame: pd.DataFrame,
    train_days: float = 30,
    step_days: float = 7,
    min_train_rows: int = 300,
    params: direction_xgb.XgbTrainingParams | None = None,
    fee_bps: float = 5.0,
    slippage_bps: float = 2.0,
    prices: pd.DataFrame | None = None,
    *,
    window: str = "rolling",
    class_weight: str | None = FROM_PARAMS,
    signal_params: dict | None = None,
    bins: int = CALIBRATION_BINS,
) -> WalkForwardReport:
    """``frame``: complete labelled model inputs (symbol, ts, the model's feature columns,
    direction, forward_return, matured_at) over the history. ``prices``: hourly bars (symbol, ts,
    open; close is ignored) for the strategy simulation, which is skipped (and the report says so)
    when None. ``window``: "rolling" or "expanding". ``class_weight``: "balanced" or None for the
    training (default: ``params.class_weight``).

    Also accepts ``walk_forward(frame, prices, WalkForwardParams)``, the form assets/models.py uses."""
    if isinstance(train_days, pd.DataFrame):
        return walk_forward(frame, **_unbundle(train_days, step_days))
    if not (train_days > 0 and step_days > 0 and min_train_rows >= 1):
        raise WalkForwardError(
            f"need train_days > 0, step_days > 0, min_train_rows >= 1; got {train_days}, {step_days}, {min_train_rows}"
        )
    if window not in WINDOWS:
        raise WalkForwardError(f"window must be one of {WINDOWS}, got {window!r}")
    params = params or direction_xgb.XgbTrainingParams()
    weight = params.class_weight if class_weight == FROM_PARAMS else class_weight
    if weight not in CLASS_WEIGHTS:
        raise WalkForwardError(f"class_weight must be one of {CLASS_WEIGHTS}, got {weight!r}")
    training = replace(params, min_rows=int(min_train_rows), class_weight=weight)
    frame = _check_frame(frame)
    horizon = max(1, math.ceil((frame["matured_at"] - frame["ts"]).max() / ONE_HOUR) - 1)
    symbols = frame["symbol"].nunique()
    block = (horizon + 1) * symbols * 6  # rows spanning several overlapping label horizons
    first, last = frame["ts"].min(), frame["ts"].max()
    origin = first.floor("D")
    train_span, step = pd.Timedelta(days=train_days), pd.Timedelta(days=step_days)

    folds, skipped, predicted, bases = [], [], [], []
    test_start = origin + train_span
    while test_start <= last:
        test_end = test_start + step
        test = frame[(frame["ts"] >= test_start) & (frame["ts"] < test_end)].reset_index(drop=True)
        window_start = test_start - train_span if window == "rolling" else origin
        in_window = (frame["ts"] >= window_start) & (frame["ts"] < test_start)
        # purge: a training label must have matured by the time the test block starts
        train = frame[in_window & (frame["matured_at"] <= test_start)].reset_index(drop=True)
        boundaries = {"test_start": test_start, "test_end": test_end, "train_rows": len(train), "test_rows": len(test)}
        if test.empty:
            test_start = test_end
            continue
        if len(train) < min_train_rows:
            skipped.append({**boundaries, "reason": f"{len(train)} matured training rows < min_train_rows"})
            test_start = test_end
            continue
        try:
            trained = direction_xgb.train_direction_model(train, training)
        except direction_xgb.TrainingError as exc:
            skipped.append({**boundaries, "reason": f"training failed: {exc}"})
            test_start = test_end
            continue
        proba = direction_xgb.predict_proba(trained.model, test)
        y = test["direction"].to_numpy(dtype=np.int64)
        forward = test["forward_return"].to_numpy(dtype=np.float64)
        base = _baselines(test, train, frame)
        scores, differences, beats, _ = _compare(y, proba, forward, base, block)
        _, ece = calibration_table(y, proba, bins)
        number = len(folds)
        labels_until = train["matured_at"].max()
        folds.append(
            {
                "fold": number,
                "train_start": train["ts"].min(),
                "train_end": train["ts"].max(),
                "labels_matured_until": labels_until,
                **boundaries,
                "purged_rows": int(in_window.sum() - len(train)),
                **scores["model"],
                "ece": ece,
                "priors_log_loss": scores["class_priors"]["log_loss"],
                "priors_brier": scores["class_priors"]["brier"],
                "priors_accuracy": scores["class_priors"]["accuracy"],
                "persistence_log_loss": scores["persistence"]["log_loss"],
                "persistence_brier": scores["persistence"]["brier"],
                "persistence_accuracy": scores["persistence"]["accuracy"],
                "majority_accuracy": scores["majority_class"]["accuracy"],
                **{
                    f"log_loss_minus_{short}{suffix}": value
                    for short, key in (("priors", "class_priors"), ("persistence", "persistence"))
                    for suffix, value in zip(
                        ("", "_ci_low", "_ci_high"),
                        (differences[f"log_loss_minus_{key}"]["value"], *differences[f"log_loss_minus_{key}"]["ci95"]),
                        strict=True,
                    )
                },
                "beats_baselines": beats,
            }
        )
        predicted.append(
            test[["symbol", "ts", "direction", "forward_return"]].assign(
                fold=number,
                predicted_at=test["ts"] + ONE_HOUR,
                model_labels_matured_until=labels_until,
                prob_sell=proba[:, SELL],
                prob_hold=proba[:, HOLD],
                prob_buy=proba[:, BUY],
                predicted_direction=proba.argmax(axis=1),
            )
        )
        bases.append(base)
        test_start = test_end

    if not folds:
        reasons = "; ".join(f"{s['test_start'].date()}: {s['reason']}" for s in skipped[:3]) or (
            f"the history {first.isoformat()} .. {last.isoformat()} ends before the first test block "
            f"({(origin + train_span).isoformat()})"
        )
        raise WalkForwardError(
            f"walk-forward: no fold could be evaluated with {train_days} training days, {step_days}-day test "
            f"blocks and min_train_rows={min_train_rows}: {reasons}"
        )

    table = pd.DataFrame(folds)
    skipped_table = pd.DataFrame(skipped, columns=["test_start", "test_end", "train_rows", "test_rows", "reason"])
    rows = pd.concat(predicted, ignore_index=True)
    y = rows["direction"].to_numpy(dtype=np.int64)
    proba = rows[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64)
    forward = rows["forward_return"].to_numpy(dtype=np.float64)
    pooled = _Baselines(
        priors=np.concatenate([b.priors for b in bases]),
        persistence=np.concatenate([b.persistence for b in bases]),
        majority=np.concatenate([b.majority for b in bases]),
        without_matured_label=sum(b.without_matured_label for b in bases),
    )
    # folds follow one another and each is in (ts, symbol) order: the pooled rows are in time order
    scores, differences, beats, verdict = _compare(y, proba, forward, pooled, block)
    calibration, ece = calibration_table(y, proba, bins)
    signals = signals_from_probabilities(rows["prob_sell"].to_numpy(), rows["prob_buy"].to_numpy(), signal_params)
    rows["signal"] = signals["signal"].to_numpy()
    rows["position"] = signals["position"].to_numpy()
    if prices is not None:
        equity, strategy, simulation = simulate_strategy(
            rows[["symbol", "ts", "position"]], prices, fee_bps, slippage_bps
        )
        simulation["status"] = "simulated at the next open"
    else:
        equity = pd.DataFrame(columns=["ts", "strategy", "buy_and_hold", "flat"])
        strategy, simulation = {}, {"status": "not simulated: no prices given"}
    ics = table["ic"].to_numpy(dtype=np.float64)
    finite = ics[np.isfinite(ics)]
    ic_std = float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
    overall = {
        "folds": int(len(table)),
        "folds_skipped": int(len(skipped_table)),
        "rows": int(len(rows)),
        "rows_not_evaluated": int(skipped_table["test_rows"].sum()) if len(skipped_table) else 0,
        "rows_before_first_test": int((frame["ts"] < origin + train_span).sum()),
        "first_test_start": _stamp(table["test_start"].iloc[0]),
        "last_test_end": _stamp(table["test_end"].iloc[-1]),
        "window": window,
        "train_days": float(train_days),
        "step_days": float(step_days),
        "min_train_rows": int(min_train_rows),
        "class_weight": weight,
        "horizon_hours": int(horizon),
        "bootstrap_block_rows": int(block),
        **{k: scores["model"][k] for k in ("accuracy", "balanced_accuracy", "log_loss", "brier", "ic")},
        "ic_mean": float(finite.mean()) if len(finite) else float("nan"),
        "ic_std": ic_std,
        "icir": float(finite.mean() / ic_std) if len(finite) > 1 and ic_std > 0 else float("nan"),
        "ece": ece,
        "priors_log_loss": scores["class_priors"]["log_loss"],
        "priors_brier": scores["class_priors"]["brier"],
        "priors_accuracy": scores["class_priors"]["accuracy"],
        "persistence_log_loss": scores["persistence"]["log_loss"],
        "persistence_brier": scores["persistence"]["brier"],
        "persistence_accuracy": scores["persistence"]["accuracy"],
        "majority_accuracy": scores["majority_class"]["accuracy"],
        "metrics": scores,
        "differences": differences,
        "persistence_rows_without_matured_label": pooled.without_matured_label,
        "beats_baselines": beats,
        "verdict": verdict,
        "strategy": strategy,
        "simulation": simulation,
    }
    return WalkForwardReport(table, overall, calibration, equity, rows, skipped_table)


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def choose_class_weight(
    frame: pd.DataFrame,
    train_days: float = 30,
    step_days: float = 7,
    min_train_rows: int = 300,
    params: direction_xgb.XgbTrainingParams | None = None,
    fee_bps: float = 5.0,
    slippage_bps: float = 2.0,
    prices: pd.DataFrame | None = None,
    *,
    window: str = "rolling",
    signal_params: dict | None = None,
    bins: int = CALIBRATION_BINS,
) -> dict:
    """Walk forward with "balanced" and with unweighted (None) classes on the same folds; the lower
    overall log loss wins (a tie keeps "balanced"). Returns a JSON-safe dict: the choice, both log
    losses and a summary of both reports. Accepts the (frame, prices, WalkForwardParams) form too."""
    if isinstance(train_days, pd.DataFrame):
        return choose_class_weight(frame, **_unbundle(train_days, step_days))
    summaries, log_loss = {}, {}
    for weight in CLASS_WEIGHTS:
        report = walk_forward(
            frame,
            train_days,
            step_days,
            min_train_rows,
            params,
            fee_bps,
            slippage_bps,
            prices,
            window=window,
            class_weight=weight,
            signal_params=signal_params,
            bins=bins,
        )
        o = report.overall
        log_loss[str(weight)] = o["log_loss"]
        summaries[str(weight)] = {
            key: o[key]
            for key in (
                "folds",
                "rows",
                "log_loss",
                "brier",
                "accuracy",
                "balanced_accuracy",
                "ece",
                "ic_mean",
                "icir",
                "priors_log_loss",
                "beats_baselines",
                "verdict",
            )
        }
        if o["strategy"]:
            summaries[str(weight)]["strategy_sharpe"] = o["strategy"]["strategy"]["sharpe"]
    chosen = min(log_loss, key=log_loss.get)  # dicts keep insertion order: "balanced" wins a tie
    return _json_safe(
        {
            "chosen": None if chosen == "None" else chosen,
            "rule": "lower overall walk-forward log loss",
            "log_loss": log_loss,
            "reports": summaries,
        }
    )
