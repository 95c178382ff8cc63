"""Direction classifier (SELL / HOLD / BUY) as a multinomial logistic regression (scikit-learn).

Same split discipline as the XGBoost member (``direction_xgb.purged_time_split``): the scaler is
fitted on the train slice only, the inverse regularisation strength C is chosen from a small grid
by log loss on the validation slice (the only use of validation), the model is fitted on the train
slice, and metrics come from the untouched test slice, beside the baselines. Then, with
``refit_on_window``, a new scaler is fitted on every row of the window (training data only: all
labels matured before train_end) and the model is refitted there with the chosen C; that refit is
the registered model, the validated one's test metrics stay the reported ones.

The artifact is JSON holding the fitted numbers (coef_, intercept_, classes_, the scaler's
statistics, the feature names), never a pickle: ``predict_proba`` rebuilds the softmax from them
and equals scikit-learn's own ``predict_proba`` to float rounding.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.ml import scalers
from pipeline_assets.ml.baselines import class_priors, metrics_with_baselines
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS, MODEL_FEATURE_SET_ID
from pipeline_assets.ml.direction_xgb import TrainingError, purged_time_split
from pipeline_assets.ml.labels import BUY, HOLD, HORIZON_HOURS, LABEL_SET_ID, SELL

MODEL_NAME = "direction_linear"
ARTIFACT_FORMAT = "logreg-json-v1"
CLASSES = (SELL, HOLD, BUY)


@dataclass(frozen=True)
class LinearTrainingParams:
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    max_iter: int = 2000
    tol: float = 1e-8
    # Unweighted: the ensemble and the breakers judge members by log loss, and balanced class
    # weights distort the probabilities (measured: test log loss 1.109 balanced vs 1.074 unweighted
    # on the synthetic 30-day set).
    class_weight: str | None = None
    scaler_kind: str = "standard"
    per_symbol_scaling: bool = False
    feature_columns: tuple[str, ...] = MODEL_FEATURE_COLUMNS
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    min_rows: int = 300
    refit_on_window: bool = True

    def version_hash(self) -> str:
        return content_id(
            "logreg",
            {
                "params": asdict(self),
                "features": MODEL_FEATURE_SET_ID,
                "labels": LABEL_SET_ID,
                "sklearn": sklearn.__version__,
            },
        )


@dataclass(frozen=True)
class LinearModel:
    """Everything prediction needs, as numbers."""

    coef: np.ndarray  # (n_classes, n_features)
    intercept: np.ndarray  # (n_classes,)
    classes: tuple[int, ...]
    feature_columns: tuple[str, ...]
    scaler: scalers.Scaler
    c: float
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainedLinearModel:
    """``model``/``estimator``/``artifact``: what is registered (the refit on the whole window when
    ``params.refit_on_window``); ``validated_model``: scaler and fit on the train slice only, the
    one scored on ``test`` and in the reported metrics."""

    model: LinearModel
    estimator: LogisticRegression
    artifact: bytes
    metrics: dict
    params: LinearTrainingParams
    train_start: datetime
    train_end: datetime
    labels_matured_until: datetime
    test: pd.DataFrame
    validated_model: LinearModel
    training_rows: int


def _x(model_or_columns: LinearModel | Sequence[str], scaler: scalers.Scaler, frame: pd.DataFrame) -> np.ndarray:
    columns = model_or_columns.feature_columns if isinstance(model_or_columns, LinearModel) else model_or_columns
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TrainingError(f"frame lacks feature column(s) {missing}")
    raw = frame[list(columns)].to_numpy(dtype=np.float64)
    if np.isnan(raw).any():
        row, col = map(int, np.argwhere(np.isnan(raw))[0])
        raise TrainingError(
            f"cannot use rows with missing features: column {columns[col]!r}, "
            f"symbol {frame['symbol'].iloc[row]}, ts {pd.Timestamp(frame['ts'].iloc[row]).isoformat()}"
        )
    return scaler.transform(frame)[list(columns)].to_numpy(dtype=np.float64)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_proba(model: LinearModel, frame: pd.DataFrame) -> np.ndarray:
    """Class probabilities, columns in CLASSES order (SELL, HOLD, BUY), rebuilt from parameters."""
    x = _x(model, model.scaler, frame)
    return _softmax(x @ model.coef.T + model.intercept)


def _evaluate(proba: np.ndarray, y: np.ndarray) -> dict:
    predicted = proba.argmax(axis=1)
    majority = np.bincount(y, minlength=3).argmax()
    traded = predicted != HOLD
    return {
        "rows": int(len(y)),
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "log_loss": float(log_loss(y, proba, labels=list(CLASSES))),
        "majority_class_accuracy": float((y == majority).mean()),
        "directional_hit_rate": float((predicted[traded] == y[traded]).mean()) if traded.any() else float("nan"),
        "class_share": {str(c): float((y == c).mean()) for c in CLASSES},
    }


def _fit(x: np.ndarray, y: np.ndarray, c: float, params: LinearTrainingParams) -> LogisticRegression:
    estimator = LogisticRegression(
        C=c, solver="lbfgs", max_iter=params.max_iter, tol=params.tol, class_weight=params.class_weight
    )
    estimator.fit(x, y)
    if int(np.max(estimator.n_iter_)) >= params.max_iter:
        raise TrainingError(f"logistic regression (C={c}) did not converge in {params.max_iter} iterations")
    return estimator


def train_linear_model(frame: pd.DataFrame, params: LinearTrainingParams | None = None) -> TrainedLinearModel:
    params = params or LinearTrainingParams()
    columns = list(params.feature_columns)
    if len(frame) < params.min_rows:
        raise TrainingError(f"{len(frame)} labelled rows with complete features; need at least {params.min_rows}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TrainingError(f"training frame lacks feature column(s) {missing}")
    nan_columns = [c for c in columns if frame[c].isna().any()]
    if nan_columns:
        raise TrainingError(f"training frame has NaN in {nan_columns}; pass complete rows only")
    if not params.c_grid or any(not c > 0 for c in params.c_grid):
        raise TrainingError(f"c_grid must hold positive values, got {params.c_grid}")
    split = purged_time_split(frame, params.validation_fraction, params.test_fraction)
    for name, part in (("train", split.train), ("validation", split.validation), ("test", split.test)):
        if part.empty:
            raise TrainingError(f"{name} slice is empty")
    lacking = set(CLASSES) - set(split.train["direction"].unique())
    if lacking:
        raise TrainingError(f"train slice lacks class(es) {sorted(lacking)}; widen the training window")

    scaler = scalers.fit(split.train, columns, kind=params.scaler_kind, per_symbol=params.per_symbol_scaling)
    x_train = _x(columns, scaler, split.train)
    y_train = split.train["direction"].to_numpy(dtype=np.int64)
    x_val = _x(columns, scaler, split.validation)
    y_val = split.validation["direction"].to_numpy(dtype=np.int64)
    validation_log_loss = {}
    fitted = {}
    for c in params.c_grid:
        fitted[c] = _fit(x_train, y_train, c, params)
        validation_log_loss[c] = float(log_loss(y_val, fitted[c].predict_proba(x_val), labels=list(CLASSES)))
    best_c = min(params.c_grid, key=lambda c: (validation_log_loss[c], c))
    estimator = fitted[best_c]
    model = _linear(estimator, columns, scaler, best_c, params)
    horizon = int(frame["horizon_hours"].iloc[0]) if "horizon_hours" in frame.columns else HORIZON_HOURS
    test_proba = predict_proba(model, split.test)
    metrics = {
        "train": {"rows": len(split.train), "class_priors": class_priors(y_train).tolist()},
        "validation": {
            **_evaluate(predict_proba(model, split.validation), y_val),
            "log_loss_by_c": {str(c): v for c, v in validation_log_loss.items()},
            "chosen_c": float(best_c),
        },
        "test": _evaluate(test_proba, split.test["direction"].to_numpy(dtype=np.int64)),
        "test_vs_baselines": metrics_with_baselines(split.test, test_proba, split.train, frame, horizon),
        "purged_rows": split.purged_rows,
        "horizon_hours": horizon,
        "scaler_id": scaler.scaler_id,
    }
    window = pd.concat([split.train, split.validation, split.test])
    registered, registered_estimator, rows = model, estimator, len(split.train)
    if params.refit_on_window:
        window = frame
        refit_scaler = scalers.fit(frame, columns, kind=params.scaler_kind, per_symbol=params.per_symbol_scaling)
        registered_estimator = _fit(
            _x(columns, refit_scaler, frame), frame["direction"].to_numpy(dtype=np.int64), best_c, params
        )
        registered = _linear(registered_estimator, columns, refit_scaler, best_c, params)
        rows = len(frame)
    metrics["metrics_basis"] = (
        "train/validation/test metrics are the validated model's (scaler and fit on the train slice only); "
        + ("the registered model is its refit on the whole window" if params.refit_on_window else "it is registered")
    )
    metrics["validated"] = {"train_rows": len(split.train), "c": float(best_c), "scaler_id": scaler.scaler_id}
    metrics["refit"] = (
        {
            "rows": rows,
            "c": float(best_c),
            "scaler_id": registered.scaler.scaler_id,
            "train_start": window["ts"].min().isoformat(),
            "train_end": window["ts"].max().isoformat(),
            "labels_matured_until": window["matured_at"].max().isoformat(),
        }
        if params.refit_on_window
        else None
    )
    return TrainedLinearModel(
        model=registered,
        estimator=registered_estimator,
        artifact=serialize(registered),
        metrics=metrics,
        params=params,
        train_start=window["ts"].min().to_pydatetime(),
        train_end=window["ts"].max().to_pydatetime(),
        labels_matured_until=window["matured_at"].max().to_pydatetime(),
        test=split.test,
        validated_model=model,
        training_rows=rows,
    )


def _linear(
    estimator: LogisticRegression, columns: list[str], scaler: scalers.Scaler, c: float, params: LinearTrainingParams
) -> LinearModel:
    if tuple(int(k) for k in estimator.classes_) != CLASSES:
        raise TrainingError(f"fitted classes {estimator.classes_.tolist()}, expected {list(CLASSES)}")
    return LinearModel(
        coef=estimator.coef_.astype(np.float64).copy(),
        intercept=estimator.intercept_.astype(np.float64).copy(),
        classes=CLASSES,
        feature_columns=tuple(columns),
        scaler=scaler,
        c=float(c),
        meta={
            "version_hash": params.version_hash(),
            "sklearn": sklearn.__version__,
            "n_iter": int(estimator.n_iter_[0]),
        },
    )


def to_dict(model: LinearModel) -> dict:
    return {
        "format": ARTIFACT_FORMAT,
        "coef": model.coef.tolist(),
        "intercept": model.intercept.tolist(),
        "classes": list(model.classes),
        "feature_columns": list(model.feature_columns),
        "scaler": model.scaler.to_dict(),
        "c": model.c,
        "meta": model.meta,
    }


def from_dict(data: dict) -> LinearModel:
    if data.get("format") != ARTIFACT_FORMAT:
        raise TrainingError(f"artifact format {data.get('format')!r}, expected {ARTIFACT_FORMAT!r}")
    coef = np.asarray(data["coef"], dtype=np.float64)
    intercept = np.asarray(data["intercept"], dtype=np.float64)
    classes = tuple(int(c) for c in data["classes"])
    columns = tuple(data["feature_columns"])
    if classes != CLASSES:
        raise TrainingError(f"artifact classes {list(classes)}, expected {list(CLASSES)}")
    if coef.shape != (len(CLASSES), len(columns)) or intercept.shape != (len(CLASSES),):
        raise TrainingError(
            f"artifact coef shape {coef.shape} / intercept {intercept.shape} do not fit "
            f"{len(CLASSES)} classes x {len(columns)} features"
        )
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise TrainingError("artifact holds non-finite coefficients")
    scaler = scalers.Scaler.from_dict(data["scaler"])
    if scaler.columns != columns:
        raise TrainingError(f"artifact scaler columns {list(scaler.columns)} differ from features {list(columns)}")
    return LinearModel(coef, intercept, classes, columns, scaler, float(data["c"]), dict(data.get("meta", {})))


def serialize(model: LinearModel) -> bytes:
    # repr-exact floats: json round-trips float64 without loss.
    return json.dumps(to_dict(model), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def deserialize(artifact: bytes) -> LinearModel:
    return from_dict(json.loads(artifact.decode()))
