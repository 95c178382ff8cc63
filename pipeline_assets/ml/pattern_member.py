"""The chart-pattern member: SELL / HOLD / BUY probabilities from the chart patterns active at a bar.

Signal. A detection in ``ml_patterns`` (pattern, score in [0, 1], direction +1 / -1, expected
completion in hours) at bar d became known when bar d closed. It is *active* for the bars t with
d <= t < d + expected_completion_hours. The net signal of (symbol, t) is the sum of
score x direction over its active detections, and the bar's state is one of

- ``none``: no active detection,
- ``bearish``: net signal < -``dead_zone``,
- ``bullish``: net signal > ``dead_zone``,
- ``mixed``: active detections whose net signal is within the dead zone.

Row t uses only detections with d <= t, all known by t's close: causal by construction.

Model. For each state, P(class | state) from the train slice's labels, smoothed towards the train
slice's class priors with ``prior_rows`` pseudo-rows (a state seen rarely stays near the priors;
one never seen is the priors). ``prior_rows`` is chosen from a grid by log loss on the validation
slice (its only use); metrics come from the untouched test slice, beside the baselines (class
priors, persistence, majority; ml/baselines.py). Then, like the other members, the registered
model is refitted on every row of the window with that strength (``refit_on_window``). The same
purged split as the other members (direction_xgb.purged_time_split). The artifact is JSON (the
table of probabilities, the priors, the parameters), never a pickle.

An honest expectation: on a market where patterns carry no information, this member equals the
class priors up to noise, and its metrics say so beside the baselines.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.ml.baselines import class_priors, metrics_with_baselines
from pipeline_assets.ml.direction_xgb import TrainingError, purged_time_split
from pipeline_assets.ml.labels import BUY, HOLD, HORIZON_HOURS, LABEL_SET_ID, SELL

MODEL_NAME = "direction_patterns"
ARTIFACT_FORMAT = "pattern-states-json-v1"
CLASSES = (SELL, HOLD, BUY)
STATES = ("none", "bearish", "bullish", "mixed")
DETECTION_COLUMNS = ("symbol", "ts", "score", "direction", "expected_completion_hours")


@dataclass(frozen=True)
class PatternMemberParams:
    dead_zone: float = 0.25
    prior_rows_grid: tuple[float, ...] = (5.0, 20.0, 80.0, 320.0)
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    min_rows: int = 200
    refit_on_window: bool = True

    def version_hash(self) -> str:
        return content_id("pattern-member-v1", {**asdict(self), "labels": LABEL_SET_ID})


@dataclass(frozen=True)
class PatternModel:
    """P(class | state), rows in STATES order, columns in CLASSES order."""

    table: np.ndarray  # (len(STATES), 3)
    priors: np.ndarray  # (3,)
    dead_zone: float
    prior_rows: float
    counts: np.ndarray  # (len(STATES), 3) train-slice label counts per state
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainedPatternModel:
    """``model``: the registered model (its table refitted on every row of the window when
    ``params.refit_on_window``); ``validated_model``: counted on the train slice only, the model the
    reported test metrics belong to."""

    model: PatternModel
    validated_model: PatternModel
    training_rows: int
    artifact: bytes
    metrics: dict
    params: PatternMemberParams
    train_start: datetime
    train_end: datetime
    labels_matured_until: datetime
    test: pd.DataFrame


def pattern_signal(keys: pd.DataFrame, detections: pd.DataFrame, dead_zone: float) -> pd.DataFrame:
    """``keys`` (symbol, ts) with ``net_signal``, ``active_patterns`` and ``state`` (index into
    STATES), in the keys' order. ``detections``: DETECTION_COLUMNS (rows of ml_patterns)."""
    missing = [c for c in DETECTION_COLUMNS if c not in detections.columns]
    if missing:
        raise TrainingError(f"pattern detections lack column(s) {missing}")
    bad = detections["expected_completion_hours"].to_numpy(dtype=np.float64)
    if len(bad) and not (np.isfinite(bad).all() and (bad > 0).all()):
        row = detections[~(np.isfinite(bad) & (bad > 0))].iloc[0]
        raise TrainingError(
            f"detection {row['symbol']} {pd.Timestamp(row['ts']).isoformat()}: expected completion "
            f"{row['expected_completion_hours']} hours is not a positive number"
        )
    net = np.zeros(len(keys))
    active = np.zeros(len(keys), dtype=np.int64)
    key_symbols = keys["symbol"].to_numpy(dtype=object)
    key_ts = keys["ts"].to_numpy(dtype="datetime64[us]")
    det_symbols = detections["symbol"].to_numpy(dtype=object)
    det_ts = detections["ts"].to_numpy(dtype="datetime64[us]")
    det_until = det_ts + (detections["expected_completion_hours"].to_numpy(dtype=np.float64) * 3.6e9).astype(
        "timedelta64[us]"
    )
    det_value = detections["score"].to_numpy(dtype=np.float64) * detections["direction"].to_numpy(dtype=np.float64)
    for symbol in pd.unique(key_symbols):
        rows = np.flatnonzero(key_symbols == symbol)
        order = rows[np.argsort(key_ts[rows], kind="stable")]
        times = key_ts[order]
        mine = det_symbols == symbol
        # each detection adds its value to the keys in [d, d + completion): a difference array
        lo = np.searchsorted(times, det_ts[mine], side="left")
        hi = np.searchsorted(times, det_until[mine], side="left")
        diff = np.zeros(len(order) + 1)
        count = np.zeros(len(order) + 1, dtype=np.int64)
        np.add.at(diff, lo, det_value[mine])
        np.add.at(diff, hi, -det_value[mine])
        np.add.at(count, lo, 1)
        np.add.at(count, hi, -1)
        net[order] = np.cumsum(diff)[:-1]
        active[order] = np.cumsum(count)[:-1]
    net = np.where(active > 0, net, 0.0)
    state = np.where(active == 0, 0, np.where(net < -dead_zone, 1, np.where(net > dead_zone, 2, 3))).astype(np.int64)
    return keys[["symbol", "ts"]].assign(net_signal=net, active_patterns=active, state=state)


def _table(counts: np.ndarray, priors: np.ndarray, prior_rows: float) -> np.ndarray:
    smoothed = counts + prior_rows * priors[None, :]
    return smoothed / smoothed.sum(axis=1, keepdims=True)


def _counts(state: np.ndarray, y: np.ndarray) -> np.ndarray:
    counts = np.zeros((len(STATES), len(CLASSES)))
    np.add.at(counts, (state, y), 1.0)
    return counts


def predict_proba_states(model: PatternModel, state: np.ndarray) -> np.ndarray:
    return model.table[np.asarray(state, dtype=np.int64)]


def predict_proba(model: PatternModel, keys: pd.DataFrame, detections: pd.DataFrame) -> np.ndarray:
    """(n, 3) probabilities for ``keys`` (symbol, ts) from the detections known by each key."""
    return predict_proba_states(model, pattern_signal(keys, detections, model.dead_zone)["state"].to_numpy())


def _evaluate(proba: np.ndarray, y: np.ndarray) -> dict:
    predicted = proba.argmax(axis=1)
    return {
        "rows": int(len(y)),
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "log_loss": float(log_loss(y, proba, labels=list(CLASSES))),
    }


def train_pattern_model(
    frame: pd.DataFrame, detections: pd.DataFrame, params: PatternMemberParams | None = None
) -> TrainedPatternModel:
    """``frame``: labelled rows (symbol, ts, direction, matured_at), e.g. a training dataset;
    ``detections``: the ml_patterns rows covering them (only those with ts <= a row's ts act)."""
    params = params or PatternMemberParams()
    if len(frame) < params.min_rows:
        raise TrainingError(f"{len(frame)} labelled rows; need at least {params.min_rows}")
    if not params.prior_rows_grid or any(not p > 0 for p in params.prior_rows_grid):
        raise TrainingError(f"prior_rows_grid must hold positive values, got {params.prior_rows_grid}")
    signal = pattern_signal(frame, detections, params.dead_zone)
    frame = frame.assign(_state=signal["state"].to_numpy())
    split = purged_time_split(frame, params.validation_fraction, params.test_fraction)
    for name, part in (("train", split.train), ("validation", split.validation), ("test", split.test)):
        if part.empty:
            raise TrainingError(f"{name} slice is empty")
    y_train = split.train["direction"].to_numpy(dtype=np.int64)
    y_val = split.validation["direction"].to_numpy(dtype=np.int64)
    priors = class_priors(y_train)
    counts = _counts(split.train["_state"].to_numpy(), y_train)
    validation_log_loss = {
        p: float(
            log_loss(y_val, _table(counts, priors, p)[split.validation["_state"].to_numpy()], labels=list(CLASSES))
        )
        for p in params.prior_rows_grid
    }
    best = min(params.prior_rows_grid, key=lambda p: (validation_log_loss[p], -p))
    model = PatternModel(
        table=_table(counts, priors, best),
        priors=priors,
        dead_zone=params.dead_zone,
        prior_rows=float(best),
        counts=counts,
        meta={"version_hash": params.version_hash()},
    )
    horizon = int(frame["horizon_hours"].iloc[0]) if "horizon_hours" in frame.columns else HORIZON_HOURS
    test_proba = predict_proba_states(model, split.test["_state"].to_numpy())
    y_test = split.test["direction"].to_numpy(dtype=np.int64)
    state_share = {s: float((split.train["_state"] == i).mean()) for i, s in enumerate(STATES)}
    metrics = {
        "train": {"rows": len(split.train), "class_priors": priors.tolist(), "state_share": state_share},
        "validation": {
            **_evaluate(predict_proba_states(model, split.validation["_state"].to_numpy()), y_val),
            "log_loss_by_prior_rows": {str(p): v for p, v in validation_log_loss.items()},
            "chosen_prior_rows": float(best),
        },
        "test": _evaluate(test_proba, y_test),
        "test_vs_baselines": metrics_with_baselines(
            split.test.drop(columns="_state"), test_proba, split.train.drop(columns="_state"), frame, horizon
        ),
        "purged_rows": split.purged_rows,
        "horizon_hours": horizon,
    }
    window = pd.concat([split.train, split.validation, split.test])
    registered, rows = model, len(split.train)
    if params.refit_on_window:  # the same smoothing strength, counts and priors of every row of the window
        window = frame
        y_all = frame["direction"].to_numpy(dtype=np.int64)
        all_priors = class_priors(y_all)
        all_counts = _counts(frame["_state"].to_numpy(), y_all)
        registered = PatternModel(
            table=_table(all_counts, all_priors, best),
            priors=all_priors,
            dead_zone=params.dead_zone,
            prior_rows=float(best),
            counts=all_counts,
            meta={"version_hash": params.version_hash(), "refit_rows": len(frame)},
        )
        rows = len(frame)
    metrics["metrics_basis"] = "train/validation/test metrics are the validated model's (train slice only); " + (
        "the registered model is its refit on the whole window" if params.refit_on_window else "it is registered"
    )
    metrics["validated"] = {"train_rows": len(split.train), "prior_rows": float(best)}
    metrics["refit"] = (
        {
            "rows": rows,
            "train_start": window["ts"].min().isoformat(),
            "train_end": window["ts"].max().isoformat(),
            "labels_matured_until": window["matured_at"].max().isoformat(),
        }
        if params.refit_on_window
        else None
    )
    return TrainedPatternModel(
        model=registered,
        validated_model=model,
        training_rows=rows,
        artifact=serialize(registered),
        metrics=metrics,
        params=params,
        train_start=window["ts"].min().to_pydatetime(),
        train_end=window["ts"].max().to_pydatetime(),
        labels_matured_until=window["matured_at"].max().to_pydatetime(),
        test=split.test.drop(columns="_state"),
    )


def to_dict(model: PatternModel) -> dict:
    return {
        "format": ARTIFACT_FORMAT,
        "states": list(STATES),
        "classes": list(CLASSES),
        "table": model.table.tolist(),
        "priors": model.priors.tolist(),
        "dead_zone": model.dead_zone,
        "prior_rows": model.prior_rows,
        "counts": model.counts.tolist(),
        "meta": model.meta,
    }


def from_dict(data: dict) -> PatternModel:
    if data.get("format") != ARTIFACT_FORMAT:
        raise TrainingError(f"artifact format {data.get('format')!r}, expected {ARTIFACT_FORMAT!r}")
    if tuple(data["states"]) != STATES or tuple(int(c) for c in data["classes"]) != CLASSES:
        raise TrainingError(f"artifact states {data['states']} / classes {data['classes']} do not match this code")
    table = np.asarray(data["table"], dtype=np.float64)
    priors = np.asarray(data["priors"], dtype=np.float64)
    if table.shape != (len(STATES), len(CLASSES)) or priors.shape != (len(CLASSES),):
        raise TrainingError(f"artifact table shape {table.shape} / priors {priors.shape} do not fit")
    if not (np.isfinite(table).all() and (table > 0).all() and np.allclose(table.sum(axis=1), 1.0)):
        raise TrainingError("artifact table rows are not positive probabilities summing to 1")
    return PatternModel(
        table,
        priors,
        float(data["dead_zone"]),
        float(data["prior_rows"]),
        np.asarray(data["counts"], dtype=np.float64),
        dict(data.get("meta", {})),
    )


def serialize(model: PatternModel) -> bytes:
    return json.dumps(to_dict(model), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def deserialize(artifact: bytes) -> PatternModel:
    return from_dict(json.loads(artifact.decode()))
