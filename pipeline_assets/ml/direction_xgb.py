"""Direction classifier (SELL / HOLD / BUY) with XGBoost, trained on a purged time split.

Validation then refit: the model fitted on the train slice, early-stopped on the validation slice,
is scored once on the untouched test slice (the reported metrics, labelled ``validated``); then,
with ``refit_on_window``, a model with the same settings and exactly the number of boosting rounds
early stopping chose is fitted on every row of the window (all labels matured before train_end),
and that refit is the artifact. Its labels_matured_until covers the whole window, so the leakage
rule keeps it away from every hour it saw."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss
from sklearn.utils.class_weight import compute_sample_weight

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.ml.baselines import class_priors, metrics_with_baselines
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS, MODEL_FEATURE_SET_ID
from pipeline_assets.ml.labels import BUY, HOLD, HORIZON_HOURS, LABEL_SET_ID, SELL

MODEL_NAME = "direction_xgboost"
ARTIFACT_FORMAT = "xgboost-ubj"
CLASSES = (SELL, HOLD, BUY)


class TrainingError(ValueError):
    pass


@dataclass(frozen=True)
class XgbTrainingParams:
    n_estimators: int = 400
    max_depth: int = 3
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 40
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    min_rows: int = 300
    seed: int = 42
    # "balanced" reweights classes by inverse frequency (better recall of rare classes, worse
    # calibrated probabilities); None trains unweighted. ml/walk_forward.choose_class_weight
    # measures both on the user's history.
    class_weight: str | None = "balanced"
    # Register the model refitted on the whole window (rounds = those early stopping chose) rather
    # than the one fitted on the train slice only.
    refit_on_window: bool = True

    def version_hash(self) -> str:
        return content_id(
            "xgb",
            {
                "params": asdict(self),
                "features": MODEL_FEATURE_SET_ID,
                "labels": LABEL_SET_ID,
                "columns": MODEL_FEATURE_COLUMNS,
                "xgboost": xgb.__version__,
            },
        )


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    purged_rows: int


@dataclass(frozen=True)
class TrainedDirectionModel:
    """``model``/``artifact``: what is registered (the refit when ``params.refit_on_window``).
    ``validated_model``: fitted on the train slice only; its test metrics are the reported ones and
    it alone may be scored on ``test`` (the refit trained on those rows)."""

    model: xgb.XGBClassifier
    artifact: bytes
    metrics: dict
    params: XgbTrainingParams
    train_start: datetime
    train_end: datetime
    labels_matured_until: datetime
    test: pd.DataFrame
    validated_model: xgb.XGBClassifier
    training_rows: int


def purged_time_split(frame: pd.DataFrame, validation_fraction: float, test_fraction: float) -> TimeSplit:
    """Split by bar time into train / validation / test. A row is purged from an earlier segment
    when its label matured after the next segment starts (its forward window overlaps it)."""
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1 or validation_fraction + test_fraction >= 1:
        raise TrainingError(f"bad split fractions validation={validation_fraction} test={test_fraction}")
    times = np.sort(frame["ts"].unique())
    if len(times) < 10:
        raise TrainingError(f"need at least 10 distinct bar times to split, got {len(times)}")
    val_start = pd.Timestamp(times[int(len(times) * (1 - validation_fraction - test_fraction))])
    test_start = pd.Timestamp(times[int(len(times) * (1 - test_fraction))])
    train = frame[(frame["ts"] < val_start) & (frame["matured_at"] <= val_start)]
    validation = frame[(frame["ts"] >= val_start) & (frame["ts"] < test_start) & (frame["matured_at"] <= test_start)]
    test = frame[frame["ts"] >= test_start]
    purged = len(frame) - len(train) - len(validation) - len(test)
    return TimeSplit(
        train.reset_index(drop=True), validation.reset_index(drop=True), test.reset_index(drop=True), purged
    )


def _xy(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return frame[list(MODEL_FEATURE_COLUMNS)].to_numpy(dtype=np.float64), frame["direction"].to_numpy(dtype=np.int64)


def evaluate(model: xgb.XGBClassifier, frame: pd.DataFrame) -> dict:
    x, y = _xy(frame)
    proba = predict_proba(model, frame)
    predicted = proba.argmax(axis=1)
    majority = np.bincount(y, minlength=3).argmax()
    traded = predicted != HOLD
    hits = (predicted[traded] == y[traded]).mean() if traded.any() else float("nan")
    return {
        "rows": int(len(y)),
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "log_loss": float(log_loss(y, proba, labels=list(CLASSES))),
        "majority_class_accuracy": float((y == majority).mean()),
        "directional_hit_rate": float(hits),
        "class_share": {str(c): float((y == c).mean()) for c in CLASSES},
    }


def train_direction_model(frame: pd.DataFrame, params: XgbTrainingParams | None = None) -> TrainedDirectionModel:
    """Fit on the train slice, early-stop on validation, report metrics on the untouched test slice,
    then (``refit_on_window``) refit on the whole window with the chosen number of rounds."""
    params = params or XgbTrainingParams()
    if len(frame) < params.min_rows:
        raise TrainingError(f"{len(frame)} labelled rows with complete features; need at least {params.min_rows}")
    nan_columns = [c for c in MODEL_FEATURE_COLUMNS if frame[c].isna().any()]
    if nan_columns:
        raise TrainingError(f"training frame has NaN in {nan_columns}; pass complete rows only")
    split = purged_time_split(frame, params.validation_fraction, params.test_fraction)
    for name, part in (("train", split.train), ("validation", split.validation), ("test", split.test)):
        missing = set(CLASSES) - set(part["direction"].unique())
        if name == "train" and missing:
            raise TrainingError(f"train slice lacks class(es) {sorted(missing)}; widen the training window")
        if part.empty:
            raise TrainingError(f"{name} slice is empty")
    x_train, y_train = _xy(split.train)
    x_val, y_val = _xy(split.validation)
    model = _classifier(params, params.n_estimators, early_stopping=True)
    model.fit(
        x_train,
        y_train,
        sample_weight=compute_sample_weight(params.class_weight, y_train) if params.class_weight else None,
        eval_set=[(x_val, y_val)],
        verbose=False,
    )
    horizon = int(frame["horizon_hours"].iloc[0]) if "horizon_hours" in frame.columns else HORIZON_HOURS
    rounds = int(model.best_iteration) + 1
    metrics = {
        "train": {"rows": len(split.train), "class_priors": class_priors(y_train).tolist()},
        "validation": evaluate(model, split.validation),
        "test": evaluate(model, split.test),
        # Held-out metrics beside class priors, majority and persistence of the training window.
        "test_vs_baselines": metrics_with_baselines(
            split.test, predict_proba(model, split.test), split.train, frame, horizon
        ),
        "purged_rows": split.purged_rows,
        "best_iteration": int(model.best_iteration),
        "horizon_hours": horizon,
    }
    used = pd.concat([split.train, split.validation, split.test])
    registered, rows = model, len(split.train)
    window = used
    if params.refit_on_window:
        # Same settings, the rounds early stopping chose, every row of the window (no purge needed:
        # nothing is held out any more; every label matured before train_end).
        window = frame
        x_all, y_all = _xy(frame)
        registered = _classifier(params, rounds, early_stopping=False)
        registered.fit(
            x_all,
            y_all,
            sample_weight=compute_sample_weight(params.class_weight, y_all) if params.class_weight else None,
            verbose=False,
        )
        rows = len(frame)
    metrics["metrics_basis"] = (
        "train/validation/test metrics are the validated model's (fitted on the train slice only); "
        + ("the registered model is its refit on the whole window" if params.refit_on_window else "it is registered")
    )
    metrics["validated"] = {"train_rows": len(split.train), "n_estimators": rounds, "sha256": _sha(serialize(model))}
    metrics["refit"] = (
        {
            "rows": rows,
            "n_estimators": rounds,
            "train_start": window["ts"].min().isoformat(),
            "train_end": window["ts"].max().isoformat(),
            "labels_matured_until": window["matured_at"].max().isoformat(),
        }
        if params.refit_on_window
        else None
    )
    return TrainedDirectionModel(
        model=registered,
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


def _sha(artifact: bytes) -> str:
    return hashlib.sha256(artifact).hexdigest()


def _classifier(params: XgbTrainingParams, rounds: int, early_stopping: bool) -> xgb.XGBClassifier:
    return xgb.XGBClassifier(
        objective="multi:softprob",
        num_class=len(CLASSES),
        n_estimators=rounds,
        max_depth=params.max_depth,
        learning_rate=params.learning_rate,
        subsample=params.subsample,
        colsample_bytree=params.colsample_bytree,
        min_child_weight=params.min_child_weight,
        reg_lambda=params.reg_lambda,
        early_stopping_rounds=params.early_stopping_rounds if early_stopping else None,
        eval_metric="mlogloss",
        tree_method="hist",
        random_state=params.seed,
        n_jobs=2,
    )


def serialize(model: xgb.XGBClassifier) -> bytes:
    return bytes(model.get_booster().save_raw(raw_format="ubj"))


def deserialize(artifact: bytes) -> xgb.XGBClassifier:
    model = xgb.XGBClassifier()
    model.load_model(bytearray(artifact))
    return model


def predict_proba(model: xgb.XGBClassifier, frame: pd.DataFrame) -> np.ndarray:
    x = frame[list(MODEL_FEATURE_COLUMNS)].to_numpy(dtype=np.float64)
    if np.isnan(x).any():
        raise TrainingError("cannot predict rows with missing features")
    proba = model.predict_proba(x).astype(np.float64)
    if proba.shape[1] != len(CLASSES):
        raise TrainingError(f"model returned {proba.shape[1]} classes, expected {len(CLASSES)}")
    # XGBoost computes in float32; renormalise so stored rows sum to 1 in float64.
    return proba / proba.sum(axis=1, keepdims=True)
