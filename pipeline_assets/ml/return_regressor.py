"""Forward-return regressor: one ridge regression (scikit-learn) per horizon of the forward log
return log(close(t + h) / close(t)), h in 1h, 4h, 24h (the reference system's price model, as a
return model writing its own prediction table).

Time discipline as the direction members:

- the target of bar t and horizon h becomes knowable when bar t + h closes, so
  ``matured_at = t + (h + 1) hours`` (the convention of ml/labels.compute_labels); the forward bar
  is looked up by timestamp, so a gap never pairs the wrong bars;
- per horizon the rows are split by bar time into train / validation / test with
  ``direction_xgb.purged_time_split`` (a row is purged from a segment when its own horizon's target
  matured after the next segment starts);
- the scaler is fitted on that horizon's train slice only; the ridge penalty alpha is chosen from
  a grid by mean squared error on the validation slice (its only use); the model is fitted on the
  train slice; metrics come from the untouched test slice.

Metrics per horizon, on the test slice, beside three baselines: zero return, the training-window
mean return, and persistence (the newest return of the same symbol that had matured when the
prediction was made: bar t is predicted at t + 1h, the target of bar t' matures at t' + h + 1h, so
the newest usable one is t - h; rows without it fall back to the training mean, counted). Each
metric (MAE, RMSE, Spearman information coefficient, directional hit rate) is shown for all four,
with model-minus-baseline differences and 95% moving-block bootstrap intervals whose blocks span
several horizons of every symbol. The verdict per horizon is "beats its baselines" only when the
model's squared error is below every baseline's with 95% confidence.

The artifact is JSON (coefficients, intercept, alpha, train-only scaler per horizon), never a
pickle; predictions are rebuilt from those numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import Ridge

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.ml import scalers
from pipeline_assets.ml.baselines import block_bootstrap_ci
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS, MODEL_FEATURE_SET_ID
from pipeline_assets.ml.direction_xgb import TrainingError, purged_time_split
from pipeline_assets.ml.promotion import MIN_ROWS, PromotionDecision

MODEL_NAME = "return_ridge"
ARTIFACT_FORMAT = "ridge-returns-json-v1"
HORIZONS: tuple[int, ...] = (1, 4, 24)
TARGET_PARAMS = {"kind": "forward_log_return", "horizons": list(HORIZONS), "matured_at": "ts + (h + 1) hours"}
TARGET_SET_ID = content_id("logret-v1", TARGET_PARAMS)
BASELINES = ("zero_return", "training_mean", "persistence")


@dataclass(frozen=True)
class RidgeTrainingParams:
    alpha_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
    horizons: tuple[int, ...] = HORIZONS
    scaler_kind: str = "standard"
    feature_columns: tuple[str, ...] = MODEL_FEATURE_COLUMNS
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    min_rows: int = 300
    bootstrap_resamples: int = 400
    refit_on_window: bool = True

    def version_hash(self) -> str:
        return content_id(
            "ridge-returns",
            {
                "params": asdict(self),
                "features": MODEL_FEATURE_SET_ID,
                "targets": TARGET_SET_ID,
                "sklearn": sklearn.__version__,
            },
        )


@dataclass(frozen=True)
class HorizonModel:
    horizon_hours: int
    coef: np.ndarray  # (n_features,)
    intercept: float
    alpha: float
    scaler: scalers.Scaler
    train_mean_return: float


@dataclass(frozen=True)
class ReturnModel:
    """Everything prediction needs, as numbers."""

    feature_columns: tuple[str, ...]
    horizons: dict[int, HorizonModel]
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainedReturnModel:
    """``model``: the registered model (per horizon, scaler and ridge refitted on every row of the
    window with the validated alpha when ``params.refit_on_window``); ``validated_model``: fitted on
    the train slices only, the model the reported test metrics belong to."""

    model: ReturnModel
    validated_model: ReturnModel
    training_rows: int
    estimators: dict[int, Ridge]
    artifact: bytes
    metrics: dict
    params: RidgeTrainingParams
    train_start: datetime
    train_end: datetime
    labels_matured_until: datetime
    test: pd.DataFrame  # long: symbol, ts, horizon_hours, forward_log_return, matured_at, features


# ---------------------------------------------------------------------------------------------
# targets


def forward_log_returns(
    bars: pd.DataFrame, horizons: Sequence[int] = HORIZONS, matured_by: datetime | None = None
) -> pd.DataFrame:
    """Long frame (symbol, ts, horizon_hours, forward_log_return, matured_at) from hourly bars
    (symbol, ts, close). The forward bar is found by timestamp; a bar without one (the end of the
    data, a gap) gets no row. With ``matured_by`` only targets with matured_at < matured_by."""
    for column in ("symbol", "ts", "close"):
        if column not in bars.columns:
            raise TrainingError(f"bars lack column {column!r}")
    duplicated = bars.duplicated(["symbol", "ts"])
    if duplicated.any():
        first = bars.loc[duplicated].iloc[0]
        raise TrainingError(f"duplicate bar for {first['symbol']} at {pd.Timestamp(first['ts']).isoformat()}")
    close = bars["close"].to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(close) & (close > 0))
    if bad.any():
        first = bars.loc[bad].iloc[0]
        raise TrainingError(
            f"column 'close' is {float(first['close'])} for {first['symbol']} at "
            f"{pd.Timestamp(first['ts']).isoformat()}: a log return needs a positive finite close"
        )
    frames = []
    index = pd.MultiIndex.from_arrays([bars["symbol"].to_numpy(), pd.DatetimeIndex(bars["ts"])])
    series = pd.Series(close, index=index)
    for horizon in horizons:
        if int(horizon) < 1:
            raise TrainingError(f"horizon must be >= 1 hour, got {horizon}")
        step = pd.Timedelta(hours=int(horizon))
        forward_index = pd.MultiIndex.from_arrays([bars["symbol"].to_numpy(), pd.DatetimeIndex(bars["ts"]) + step])
        forward = series.reindex(forward_index).to_numpy()
        found = ~np.isnan(forward)
        ts = pd.DatetimeIndex(bars["ts"])[found]
        frame = pd.DataFrame(
            {
                "symbol": bars["symbol"].to_numpy()[found],
                "ts": ts,
                "horizon_hours": int(horizon),
                "forward_log_return": np.log(forward[found] / close[found]),
                "matured_at": ts + pd.Timedelta(hours=int(horizon) + 1),
            }
        )
        if matured_by is not None:
            frame = frame[frame["matured_at"] < pd.Timestamp(matured_by)]
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["horizon_hours", "ts", "symbol"], ignore_index=True)


def training_frame(features: pd.DataFrame, targets: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Feature rows joined with one horizon's targets; the target's matured_at replaces any other."""
    part = targets.loc[targets["horizon_hours"] == horizon, ["symbol", "ts", "forward_log_return", "matured_at"]]
    dropped = [c for c in ("matured_at", "forward_log_return", "horizon_hours") if c in features.columns]
    joined = features.drop(columns=dropped).merge(part, on=["symbol", "ts"], how="inner")
    return joined.assign(horizon_hours=int(horizon)).sort_values(["ts", "symbol"], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# prediction


def _x(columns: Sequence[str], scaler: scalers.Scaler, frame: pd.DataFrame) -> np.ndarray:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TrainingError(f"frame lacks feature column(s) {missing}")
    raw = frame[list(columns)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(raw)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise TrainingError(
            f"cannot use rows with missing/non-finite features: column {columns[col]!r}, "
            f"symbol {frame['symbol'].iloc[row]}, ts {pd.Timestamp(frame['ts'].iloc[row]).isoformat()}"
        )
    return scaler.transform(frame)[list(columns)].to_numpy(dtype=np.float64)


def predict(model: ReturnModel, frame: pd.DataFrame, horizon: int) -> np.ndarray:
    """Predicted forward log return of ``horizon`` for each row, rebuilt from the parameters."""
    if horizon not in model.horizons:
        raise TrainingError(f"model has no {horizon}h horizon (has {sorted(model.horizons)})")
    if frame.empty:
        return np.empty(0)
    part = model.horizons[horizon]
    return _x(model.feature_columns, part.scaler, frame) @ part.coef + part.intercept


def predict_rows(model: ReturnModel, rows: pd.DataFrame, strict: bool = True) -> np.ndarray:
    """Predictions for a long frame with a ``horizon_hours`` column, aligned with its rows. With
    ``strict=False`` rows of a horizon the model lacks get NaN instead of an error."""
    out = np.full(len(rows), np.nan)
    horizons = rows["horizon_hours"].to_numpy()
    for horizon in np.unique(horizons):
        if not strict and int(horizon) not in model.horizons:
            continue
        mask = horizons == horizon
        out[mask] = predict(model, rows[mask], int(horizon))
    return out


# ---------------------------------------------------------------------------------------------
# metrics


def _ranks(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).rank(method="average").to_numpy()


def spearman(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant (a constant prediction has no IC)."""
    if len(actual) < 3:
        return float("nan")
    a, b = _ranks(predicted), _ranks(actual)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _hits(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """1.0 where a directional prediction (non-zero) has the sign of the realised return, 0.0 where
    not, NaN where the prediction takes no direction."""
    out = (np.sign(predicted) == np.sign(actual)).astype(np.float64)
    out[predicted == 0] = np.nan
    return out


def _summary(predicted: np.ndarray, actual: np.ndarray) -> dict:
    error = predicted - actual
    hits = _hits(predicted, actual)
    directional = ~np.isnan(hits)
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "ic": _none_if_nan(spearman(predicted, actual)),
        "hit_rate": float(hits[directional].mean()) if directional.any() else None,
        "directional_rows": int(directional.sum()),
    }


def _none_if_nan(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def _block_indices(n: int, block: int, resamples: int, seed: int) -> np.ndarray:
    # the same moving-block resampling as baselines.block_bootstrap_ci, for statistics that are
    # not means of per-row values (the IC)
    block = max(1, min(block, n))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, (resamples, -(-n // block)))
    return (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(resamples, -1)[:, :n]


def _bootstrap_statistic(
    statistic: Callable[[np.ndarray], float], n: int, block: int, resamples: int, level: float = 0.95
) -> tuple[float | None, float | None]:
    if n < 3:
        return (None, None)
    values = np.array([statistic(idx) for idx in _block_indices(n, block, resamples, seed=0)])
    values = values[np.isfinite(values)]
    if len(values) < resamples // 2:
        return (None, None)
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def persisted_returns(rows: pd.DataFrame, history: pd.DataFrame, horizon: int) -> np.ndarray:
    """For each row (symbol, ts), the realised return of the same symbol's bar ts - horizon (the
    newest target matured when bar ts is predicted, at ts + 1h), NaN when ``history`` lacks it."""
    lookup = history.loc[history["horizon_hours"] == horizon, ["symbol", "ts", "forward_log_return"]].copy()
    lookup["ts"] = lookup["ts"] + pd.Timedelta(hours=horizon)
    merged = rows[["symbol", "ts"]].merge(lookup, on=["symbol", "ts"], how="left")
    return merged["forward_log_return"].to_numpy(dtype=np.float64)


def metrics_with_baselines(
    rows: pd.DataFrame,
    predicted: np.ndarray,
    train_mean_return: float,
    history: pd.DataFrame,
    horizon: int,
    resamples: int = 400,
) -> dict:
    """Model and baseline metrics on ``rows`` (symbol, ts, forward_log_return) of one horizon, with
    model-minus-baseline differences and 95% block-bootstrap intervals. ``history`` is the long
    target frame persistence reads from."""
    order = np.argsort(rows["ts"].to_numpy(), kind="stable")
    rows = rows.iloc[order].reset_index(drop=True)
    predicted = np.asarray(predicted, dtype=np.float64)[order]
    actual = rows["forward_log_return"].to_numpy(dtype=np.float64)
    n = len(actual)
    if n == 0:
        raise TrainingError(f"{horizon}h: no test rows to evaluate")
    persisted = persisted_returns(rows, history, horizon)
    without = np.isnan(persisted)
    candidates = {
        "model": predicted,
        "zero_return": np.zeros(n),
        "training_mean": np.full(n, float(train_mean_return)),
        "persistence": np.where(without, float(train_mean_return), persisted),
    }
    block = (horizon + 1) * max(1, rows["symbol"].nunique()) * 6
    out = {name: _summary(values, actual) for name, values in candidates.items()}
    differences = {}
    model_abs = np.abs(predicted - actual)
    model_sq = (predicted - actual) ** 2
    model_hits = _hits(predicted, actual)
    for name in BASELINES:
        baseline = candidates[name]
        diff = model_abs - np.abs(baseline - actual)
        differences[f"mae_minus_{name}"] = {
            "value": float(diff.mean()),
            "ci95": block_bootstrap_ci(diff, block, resamples=resamples),
        }
        diff = model_sq - (baseline - actual) ** 2
        differences[f"squared_error_minus_{name}"] = {
            "value": float(diff.mean()),
            "ci95": block_bootstrap_ci(diff, block, resamples=resamples),
        }
        base_rmse = out[name]["rmse"]
        differences[f"rmse_minus_{name}"] = {"value": out["model"]["rmse"] - base_rmse}
        hits = _hits(baseline, actual)
        both = ~np.isnan(model_hits) & ~np.isnan(hits)
        if both.any():
            diff = model_hits[both] - hits[both]
            differences[f"hit_rate_minus_{name}"] = {
                "value": float(diff.mean()),
                "ci95": block_bootstrap_ci(diff, block, resamples=resamples),
                "rows": int(both.sum()),
            }
        else:
            differences[f"hit_rate_minus_{name}"] = {
                "value": None,
                "note": f"{name} takes no direction; compare the model's hit rate with 0.5 and training_mean's",
            }
        if out[name]["ic"] is not None and out["model"]["ic"] is not None:
            differences[f"ic_minus_{name}"] = {
                "value": out["model"]["ic"] - out[name]["ic"],
                "ci95": _bootstrap_statistic(
                    lambda idx, b=baseline: spearman(predicted[idx], actual[idx]) - spearman(b[idx], actual[idx]),
                    n,
                    block,
                    resamples,
                ),
            }
        else:
            differences[f"ic_minus_{name}"] = {"value": None, "note": f"{name} is constant: it has no rank correlation"}
    model_ic_ci = (
        _bootstrap_statistic(lambda idx: spearman(predicted[idx], actual[idx]), n, block, resamples)
        if out["model"]["ic"] is not None
        else (None, None)
    )
    beats = all(differences[f"squared_error_minus_{name}"]["ci95"][1] < 0 for name in BASELINES)
    return {
        "rows": int(n),
        "metrics": out,
        "model_ic_ci95": model_ic_ci,
        "differences": differences,
        "persistence_rows_without_matured_return": int(without.sum()),
        "beats_baselines": bool(beats),
        "verdict": (
            f"{horizon}h: beats its baselines (squared error below zero return, training mean and persistence, "
            "95% intervals below zero)"
            if beats
            else f"{horizon}h: does NOT beat its baselines (squared error not below zero return, training mean "
            "and persistence with 95% confidence)"
        ),
    }


def overall_verdict(per_horizon: dict[int, dict], skipped: dict[str, str] | None = None) -> tuple[bool, str]:
    """(beats on every horizon it was asked for, plain sentence). A horizon left out for lack of
    rows counts as not beating."""
    skipped = skipped or {}
    winners = [h for h, m in per_horizon.items() if m["beats_baselines"]]
    losers = [h for h, m in per_horizon.items() if not m["beats_baselines"]]
    note = "; not trained: " + "; ".join(skipped.values()) if skipped else ""
    if not losers and not skipped:
        return True, "beats its baselines on every horizon (" + ", ".join(f"{h}h" for h in winners) + ")"
    if not winners:
        return False, "does not beat its baselines on any horizon (" + ", ".join(f"{h}h" for h in losers) + ")" + note
    if not losers:
        return False, "beats its baselines on " + ", ".join(f"{h}h" for h in winners) + note
    return False, (
        "beats its baselines on "
        + ", ".join(f"{h}h" for h in winners)
        + "; does not beat them on "
        + ", ".join(f"{h}h" for h in losers)
        + note
    )


# ---------------------------------------------------------------------------------------------
# training


def _fit(x: np.ndarray, y: np.ndarray, alpha: float) -> Ridge:
    estimator = Ridge(alpha=alpha, fit_intercept=True)
    estimator.fit(x, y)
    return estimator


def train_return_model(
    features: pd.DataFrame, targets: pd.DataFrame, params: RidgeTrainingParams | None = None
) -> TrainedReturnModel:
    """``features``: complete model-input rows (symbol, ts, feature columns), e.g. a registered
    training dataset; ``targets``: forward_log_returns() of the same bars, already restricted to
    targets matured by the dataset's cut-off."""
    params = params or RidgeTrainingParams()
    columns = list(params.feature_columns)
    if not params.alpha_grid or any(not a > 0 for a in params.alpha_grid):
        raise TrainingError(f"alpha_grid must hold positive values, got {params.alpha_grid}")
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise TrainingError(f"training frame lacks feature column(s) {missing}")
    horizon_models, estimators, metrics, tests, skipped = {}, {}, {}, [], {}
    refits, refit_rows = {}, 0
    used_ts, matured = [], []
    for horizon in params.horizons:
        frame = training_frame(features, targets, horizon)
        # Too little history for one horizon (a long horizon loses its last h hours to maturity and
        # h + 1 hours at each purged boundary) leaves that horizon out, stated in the metrics and
        # the verdict; the model fails only when no horizon can be trained.
        if len(frame) < params.min_rows:
            skipped[str(horizon)] = (
                f"{horizon}h: {len(frame)} rows with complete features and a matured target; "
                f"need at least {params.min_rows}"
            )
            continue
        split = purged_time_split(frame, params.validation_fraction, params.test_fraction)
        empty = [
            n
            for n, part in (("train", split.train), ("validation", split.validation), ("test", split.test))
            if part.empty
        ]
        if empty:
            skipped[str(horizon)] = (
                f"{horizon}h: {' and '.join(empty)} slice empty after purging {split.purged_rows} rows whose "
                f"{horizon}h target overlaps the next slice; widen the training window"
            )
            continue
        scaler = scalers.fit(split.train, columns, kind=params.scaler_kind)
        x_train = _x(columns, scaler, split.train)
        y_train = split.train["forward_log_return"].to_numpy(dtype=np.float64)
        x_val = _x(columns, scaler, split.validation)
        y_val = split.validation["forward_log_return"].to_numpy(dtype=np.float64)
        validation_mse, fitted = {}, {}
        for alpha in params.alpha_grid:
            fitted[alpha] = _fit(x_train, y_train, alpha)
            validation_mse[alpha] = float(((fitted[alpha].predict(x_val) - y_val) ** 2).mean())
        best = min(params.alpha_grid, key=lambda a: (validation_mse[a], -a))  # ties: the stronger penalty
        estimator = fitted[best]
        coef = np.asarray(estimator.coef_, dtype=np.float64).copy()
        intercept = float(estimator.intercept_)
        if not (np.isfinite(coef).all() and np.isfinite(intercept)):
            raise TrainingError(f"{horizon}h: ridge (alpha={best}) produced non-finite coefficients")
        part = HorizonModel(horizon, coef, intercept, float(best), scaler, float(y_train.mean()))
        horizon_models[horizon] = part
        estimators[horizon] = estimator
        single = ReturnModel(tuple(columns), {horizon: part})
        report = metrics_with_baselines(
            split.test,
            predict(single, split.test, horizon),
            part.train_mean_return,
            targets,
            horizon,
            params.bootstrap_resamples,
        )
        metrics[str(horizon)] = {
            "train_rows": len(split.train),
            "validation_rows": len(split.validation),
            "test_rows": len(split.test),
            "purged_rows": split.purged_rows,
            "alpha": float(best),
            "validation_mse_by_alpha": {str(a): v for a, v in validation_mse.items()},
            "train_mean_return": part.train_mean_return,
            "train_return_variance": float(y_train.var()),
            "scaler_id": scaler.scaler_id,
            "test_vs_baselines": report,
        }
        tests.append(split.test)
        used = pd.concat([split.train, split.validation, split.test])
        if params.refit_on_window:  # validated: now the same alpha on every row of the window
            used = frame
            refit_scaler = scalers.fit(frame, columns, kind=params.scaler_kind)
            y_all = frame["forward_log_return"].to_numpy(dtype=np.float64)
            refit = _fit(_x(columns, refit_scaler, frame), y_all, best)
            refit_coef = np.asarray(refit.coef_, dtype=np.float64).copy()
            if not (np.isfinite(refit_coef).all() and np.isfinite(float(refit.intercept_))):
                raise TrainingError(f"{horizon}h: ridge refit (alpha={best}) produced non-finite coefficients")
            refits[horizon] = HorizonModel(
                horizon, refit_coef, float(refit.intercept_), float(best), refit_scaler, float(y_all.mean())
            )
            estimators[horizon] = refit
            metrics[str(horizon)]["refit_rows"] = len(frame)
        refit_rows += len(used)
        used_ts.append(used["ts"])
        matured.append(used["matured_at"].max())
    if not metrics:
        raise TrainingError("no horizon could be trained: " + "; ".join(skipped.values()))
    beats, verdict = overall_verdict({int(h): m["test_vs_baselines"] for h, m in metrics.items()}, skipped)
    meta = {"version_hash": params.version_hash(), "sklearn": sklearn.__version__, "target_set_id": TARGET_SET_ID}
    validated = ReturnModel(tuple(columns), horizon_models, meta=meta)
    model = ReturnModel(tuple(columns), refits, meta=meta) if params.refit_on_window else validated
    all_ts = pd.concat(used_ts)
    return TrainedReturnModel(
        model=model,
        validated_model=validated,
        training_rows=refit_rows,
        estimators=estimators,
        artifact=serialize(model),
        metrics={
            "horizons": metrics,
            "skipped_horizons": skipped,
            "beats_baselines": beats,
            "verdict": verdict,
            "target_set_id": TARGET_SET_ID,
            "feature_set_id": MODEL_FEATURE_SET_ID,
            "metrics_basis": "test metrics are the validated model's (train slices only); "
            + (
                "the registered model is its refit on the whole window"
                if params.refit_on_window
                else "it is registered"
            ),
        },
        params=params,
        train_start=all_ts.min().to_pydatetime(),
        train_end=all_ts.max().to_pydatetime(),
        labels_matured_until=max(matured).to_pydatetime(),
        test=pd.concat(tests, ignore_index=True),
    )


# ---------------------------------------------------------------------------------------------
# champion / challenger


def compare_for_promotion(
    rows: pd.DataFrame,
    candidate_predictions: np.ndarray,
    champion_predictions: np.ndarray,
    level: float,
    target_variance: dict[int, float],
) -> PromotionDecision:
    """``rows``: long test rows (symbol, ts, horizon_hours, forward_log_return) neither model trained
    on. Per row the squared-error difference candidate - champion, divided by the horizon's
    training variance of the target (so a 24h return does not drown a 1h one), averaged over the
    horizons of each (symbol, ts); promotion needs the moving-block interval's upper bound below 0."""
    candidate_predictions = np.asarray(candidate_predictions, dtype=np.float64)
    champion_predictions = np.asarray(champion_predictions, dtype=np.float64)
    # horizons only one of the two models has are not compared
    both = ~np.isnan(candidate_predictions) & ~np.isnan(champion_predictions)
    rows, candidate_predictions, champion_predictions = (
        rows[both],
        candidate_predictions[both],
        champion_predictions[both],
    )
    n = len(rows)
    if n < MIN_ROWS:
        return PromotionDecision(False, f"only {n} unseen rows (< {MIN_ROWS}): the champion stays", n, level)
    actual = rows["forward_log_return"].to_numpy(dtype=np.float64)
    scale = rows["horizon_hours"].map(lambda h: target_variance.get(int(h), 1.0) or 1.0).to_numpy(dtype=np.float64)
    candidate = (np.asarray(candidate_predictions, dtype=np.float64) - actual) ** 2 / scale
    champion = (np.asarray(champion_predictions, dtype=np.float64) - actual) ** 2 / scale
    per_row = (
        pd.DataFrame({"symbol": rows["symbol"].to_numpy(), "ts": rows["ts"].to_numpy(), "d": candidate - champion})
        .groupby(["ts", "symbol"], sort=True)["d"]
        .mean()
    )
    diff = per_row.to_numpy()
    block = (max(int(h) for h in rows["horizon_hours"].unique()) + 1) * max(1, rows["symbol"].nunique()) * 6
    low, high = block_bootstrap_ci(diff, block, resamples=1000, level=level)
    promote = bool(high < 0)
    reason = (
        f"candidate normalised squared error {candidate.mean():.4f} vs champion {champion.mean():.4f} on {n} unseen "
        f"rows ({len(diff)} symbol-hours): difference {diff.mean():+.4f}, {level:.0%} interval [{low:+.4f}, "
        f"{high:+.4f}]: {'better' if promote else 'not significantly better'}"
    )
    return PromotionDecision(promote, reason, n, level, None, None, float(diff.mean()), low, high)


# ---------------------------------------------------------------------------------------------
# artifact


def to_dict(model: ReturnModel) -> dict:
    return {
        "format": ARTIFACT_FORMAT,
        "feature_columns": list(model.feature_columns),
        "horizons": {
            str(h): {
                "coef": part.coef.tolist(),
                "intercept": part.intercept,
                "alpha": part.alpha,
                "train_mean_return": part.train_mean_return,
                "scaler": part.scaler.to_dict(),
            }
            for h, part in sorted(model.horizons.items())
        },
        "meta": model.meta,
    }


def from_dict(data: dict) -> ReturnModel:
    if data.get("format") != ARTIFACT_FORMAT:
        raise TrainingError(f"artifact format {data.get('format')!r}, expected {ARTIFACT_FORMAT!r}")
    columns = tuple(data["feature_columns"])
    horizons = {}
    for key, entry in data["horizons"].items():
        horizon = int(key)
        coef = np.asarray(entry["coef"], dtype=np.float64)
        intercept = float(entry["intercept"])
        if coef.shape != (len(columns),):
            raise TrainingError(f"artifact {horizon}h coef shape {coef.shape} does not fit {len(columns)} features")
        if not (np.isfinite(coef).all() and np.isfinite(intercept)):
            raise TrainingError(f"artifact {horizon}h holds non-finite coefficients")
        scaler = scalers.Scaler.from_dict(entry["scaler"])
        if scaler.columns != columns:
            raise TrainingError(f"artifact {horizon}h scaler columns {list(scaler.columns)} differ from features")
        horizons[horizon] = HorizonModel(
            horizon, coef, intercept, float(entry["alpha"]), scaler, float(entry["train_mean_return"])
        )
    if not horizons:
        raise TrainingError("artifact holds no horizon")
    return ReturnModel(columns, horizons, dict(data.get("meta", {})))


def serialize(model: ReturnModel) -> bytes:
    # repr-exact floats: json round-trips float64 without loss.
    return json.dumps(to_dict(model), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def deserialize(artifact: bytes) -> ReturnModel:
    return from_dict(json.loads(artifact.decode()))
