"""The forward-return member: a ridge regressor per horizon (1h, 4h, 24h) and its predictions.

- ``return_model_ridge``: trained from the same registered training dataset as the direction
  members (its feature rows), with forward log-return targets computed from the bars as they were
  known at the dataset's cut-off and kept only when matured before it (ml/return_regressor.py).
  Registered as a model version (JSON parameters, SHA-256 in the ledger), promoted only by a
  significant improvement of its squared error over the champion on rows the champion never saw;
  the first valid version becomes champion.
- ``ml_return_predictions``: for every symbol and closed hour of the run's days, each horizon's
  predicted log return from the model version whose labels all matured before the predicted day;
  the leakage check runs inside the write transaction (a leaking row rolls everything back).
"""

import time
from datetime import timedelta

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from pipeline_assets.assets._common import (
    ML_OWNERS,
    TRANSIENT_RETRY,
    WAREHOUSE_POOL,
    add_day_metadata,
    closed_bars_end,
    daily_asset,
    frame_metadata,
    missing_symbols_per_day,
    rows_per_day,
    run_metadata,
    run_window,
    stats_metadata,
    symbol_day_table,
    transient_only,
)
from pipeline_assets.assets.features import ml_features_ohlcv, ml_features_sentiment
from pipeline_assets.assets.inference import LeakageError
from pipeline_assets.assets.models import (
    TrainingConfig,
    load_training_dataset,
    register_trained_member,
    timing_metadata,
    training_dataset,
)
from pipeline_assets.automation.conditions import correction_aware
from pipeline_assets.ml import return_regressor as rr
from pipeline_assets.ml.dataset import MODEL_FEATURE_SET_ID, DatasetError, split_complete_rows
from pipeline_assets.ml.direction_xgb import TrainingError
from pipeline_assets.partitions import SYMBOLS, day_window
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store import artifacts
from pipeline_assets.store import models as registry
from pipeline_assets.store.frames import upsert_frame
from pipeline_assets.store.revisions import read_ohlcv_as_of
from pipeline_assets.store.warehouse import (
    read_leaking_return_predictions,
    read_model_inputs,
    read_return_predictions,
)

MODEL_ASSET = "return_model_ridge"
BEATS_BASELINES_CHECK = "beats_baselines"
LEAKAGE_CHECK = "model_trained_before_prediction_time"
MODEL_AVAILABLE_CHECK = "model_available"


def _fmt(value, spec: str = ".6f") -> str:
    return "n/a" if value is None else format(value, spec)


def _interval(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    ci = entry.get("ci95")
    if not ci or ci[0] is None:
        return f"{entry['value']:+.6f}"
    return f"{entry['value']:+.6f} [{ci[0]:+.6f}, {ci[1]:+.6f}]"


def return_baseline_table(metrics: dict) -> str:
    """Markdown per horizon: MAE, RMSE, IC, hit rate of the model and each baseline, and the
    model's squared-error and MAE differences with their 95% intervals; then the verdicts."""
    rows = []
    for horizon, entry in metrics["horizons"].items():
        report = entry["test_vs_baselines"]
        for name, values in report["metrics"].items():
            diff = report["differences"]
            rows.append(
                {
                    "horizon": f"{horizon}h",
                    "predictor": name,
                    "mae": _fmt(values["mae"]),
                    "rmse": _fmt(values["rmse"]),
                    "ic": _fmt(values["ic"], ".4f"),
                    "hit_rate": _fmt(values["hit_rate"], ".4f"),
                    "model_sq_error_minus (95% CI)": ""
                    if name == "model"
                    else _interval(diff.get(f"squared_error_minus_{name}")),
                    "model_mae_minus (95% CI)": "" if name == "model" else _interval(diff.get(f"mae_minus_{name}")),
                    "model_ic_minus (95% CI)": "" if name == "model" else _interval(diff.get(f"ic_minus_{name}")),
                }
            )
    verdicts = "\n".join(
        [f"- {e['test_vs_baselines']['verdict']}" for e in metrics["horizons"].values()]
        + [f"- not trained: {reason}" for reason in metrics.get("skipped_horizons", {}).values()]
    )
    return pd.DataFrame(rows).to_markdown(index=False) + f"\n\n{verdicts}\n\nOverall: the model {metrics['verdict']}"


def _targets_for(warehouse: WarehouseResource, dataset, features: pd.DataFrame, horizons) -> pd.DataFrame:
    """Forward log returns of the dataset's rows from the bars as known at the dataset's cut-off,
    only those matured before it: the model never sees a return the dataset could not have."""
    matured_by = pd.Timestamp(dataset.meta["matured_by"]).to_pydatetime()
    start = features["ts"].min().to_pydatetime()
    end = features["ts"].max().to_pydatetime() + timedelta(hours=max(horizons) + 1)
    symbols = sorted(features["symbol"].unique())
    with warehouse.transaction() as conn:
        bars = read_ohlcv_as_of(conn, symbols, start, end, as_of=matured_by)
    if bars.empty:
        raise Failure(
            f"{MODEL_ASSET}: no bars known at {matured_by.isoformat()} for {symbols} in "
            f"{start.isoformat()} .. {end.isoformat()} (dataset {dataset.dataset_id})",
            allow_retries=False,
        )
    return rr.forward_log_returns(bars[["symbol", "ts", "close"]], horizons, matured_by=matured_by)


@asset(
    group_name="models",
    kinds={"scikit-learn", "postgres"},
    code_version="1",
    owners=ML_OWNERS,
    tags={"trigger": "retrain", "layer": "models"},
    pool=WAREHOUSE_POOL,
    retry_policy=TRANSIENT_RETRY,
    deps=[training_dataset],
    check_specs=[
        AssetCheckSpec(
            BEATS_BASELINES_CHECK,
            asset=MODEL_ASSET,
            description="On each horizon's held-out slice the squared error is below zero return, the training "
            "mean and persistence with 95% confidence (block bootstrap). WARN: a model that loses is reported, "
            "not hidden, and does not fail the run.",
        )
    ],
)
@transient_only
def return_model_ridge(context: AssetExecutionContext, config: TrainingConfig, warehouse: WarehouseResource):
    """Ridge regressors of the 1h / 4h / 24h forward log return on the newest registered training
    dataset (or ``dataset_id``), registered with JSON parameters and promoted only by a significant
    improvement over the champion."""
    params = rr.RidgeTrainingParams(min_rows=config.min_rows)
    dataset = load_training_dataset(warehouse, config, MODEL_ASSET)
    try:
        features = artifacts.read_training_dataset(dataset)
        targets = _targets_for(warehouse, dataset, features, params.horizons)
        started = time.perf_counter()
        trained = rr.train_return_model(features, targets, params)
        training_seconds = time.perf_counter() - started
    except (artifacts.ArtifactError, DatasetError, TrainingError) as exc:
        raise Failure(f"{MODEL_ASSET}: {exc} (dataset {dataset.dataset_id})", allow_retries=False) from exc
    variance = {int(h): m["train_return_variance"] for h, m in trained.metrics["horizons"].items()}
    with warehouse.transaction() as conn:
        candidate, decision, timings = register_trained_member(
            context,
            conn,
            trained,
            model_name=rr.MODEL_NAME,
            artifact_format=rr.ARTIFACT_FORMAT,
            feature_set_id=MODEL_FEATURE_SET_ID,
            label_set_id=rr.TARGET_SET_ID,
            version_hash=params.version_hash(),
            params={
                "feature_columns": list(params.feature_columns),
                "horizons": list(params.horizons),
                "symbols": list(SYMBOLS),
                "training_dataset_id": dataset.dataset_id,
                "training_dataset_sha256": dataset.sha256,
                "alpha": {str(h): part.alpha for h, part in trained.model.horizons.items()},
            },
            predict_validated=lambda rows: rr.predict_rows(trained.validated_model, rows),
            predict_with_artifact=lambda artifact, rows: rr.predict_rows(rr.deserialize(artifact), rows, strict=False),
            deserialize=rr.deserialize,
            training_seconds=training_seconds,
            compare=lambda rows, new, old, level: rr.compare_for_promotion(rows, new, old, level, variance),
        )
    table = return_baseline_table(trained.metrics)
    per_horizon = {
        h: {
            "alpha": m["alpha"],
            "test_rows": m["test_rows"],
            "beats_baselines": m["test_vs_baselines"]["beats_baselines"],
            **{f"model_{k}": v for k, v in m["test_vs_baselines"]["metrics"]["model"].items()},
        }
        for h, m in trained.metrics["horizons"].items()
    }
    return MaterializeResult(
        metadata={
            "model_id": MetadataValue.int(candidate.model_id),
            "version": MetadataValue.int(candidate.version),
            "status": MetadataValue.text(candidate.status),
            "artifact_sha256": MetadataValue.text(candidate.artifact_sha256),
            "training_dataset_id": MetadataValue.int(dataset.dataset_id),
            "labels_matured_until": MetadataValue.text(trained.labels_matured_until.isoformat()),
            "training_rows": MetadataValue.int(trained.training_rows),
            "metrics_basis": MetadataValue.text(trained.metrics["metrics_basis"]),
            **timing_metadata(timings),
            "per_horizon": MetadataValue.json(per_horizon),
            "horizons_not_trained": MetadataValue.json(trained.metrics["skipped_horizons"]),
            "beats_baselines": MetadataValue.bool(bool(trained.metrics["beats_baselines"])),
            "verdict": MetadataValue.text(trained.metrics["verdict"]),
            "held_out_vs_baselines": MetadataValue.md(table),
            "promotion": MetadataValue.text(decision.reason),
            "champion_comparison_rows": MetadataValue.int(decision.rows),
        },
        check_results=[
            AssetCheckResult(
                check_name=BEATS_BASELINES_CHECK,
                passed=bool(trained.metrics["beats_baselines"]),
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "verdict": trained.metrics["verdict"],
                    "model_id": candidate.model_id,
                    "table": MetadataValue.md(table),
                },
            )
        ],
    )


@daily_asset(
    group_name="inference",
    kinds={"scikit-learn", "postgres"},
    tags={"layer": "inference"},
    automation_condition=correction_aware(ignore=[MODEL_ASSET], require=[MODEL_ASSET]),
    deps=[ml_features_ohlcv, ml_features_sentiment, return_model_ridge],
    check_specs=[
        AssetCheckSpec(
            LEAKAGE_CHECK,
            asset="ml_return_predictions",
            blocking=True,
            description="Every return prediction comes from a model whose training labels all matured before the "
            "predicted hour (checked inside the writing transaction: leaky rows are rolled back, never visible).",
        ),
        AssetCheckSpec(
            MODEL_AVAILABLE_CHECK,
            asset="ml_return_predictions",
            description="Every day of the run had a promoted return model trained on labels matured before it "
            "(warns for days before the first model).",
        ),
    ],
)
@transient_only
def ml_return_predictions(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Predicted forward log returns (1h, 4h, 24h) for every symbol and closed hour of the run's
    days. Each day uses the newest promoted return model whose training labels all matured before
    the day began (point-in-time, also inside a range run spanning several model versions)."""
    window = run_window(context)
    end = closed_bars_end(window.end)
    by_model: dict[int, list[str]] = {}
    records: dict[int, registry.ModelRecord] = {}
    no_model: dict[str, str] = {}
    with warehouse.transaction() as conn:
        inputs = read_model_inputs(conn, SYMBOLS, window.start, end)
        if inputs.empty:
            raise Failure(
                f"ml_return_predictions {window.label}: no feature rows for any symbol; materialise ml_features_ohlcv",
                allow_retries=False,
            )
        for day in window.days:
            try:
                record = registry.model_for_prediction(conn, rr.MODEL_NAME, day_window(day)[0])
            except registry.ModelNotFoundError as exc:
                no_model[day] = str(exc)
                continue
            if record.feature_set_id != MODEL_FEATURE_SET_ID:
                raise Failure(
                    f"ml_return_predictions {day}: model {record.model_id} uses feature set {record.feature_set_id}, "
                    f"features are {MODEL_FEATURE_SET_ID}; retrain {MODEL_ASSET}",
                    allow_retries=False,
                )
            records[record.model_id] = record
            by_model.setdefault(record.model_id, []).append(day)
        try:
            models = {m: rr.deserialize(registry.load_artifact(conn, m)[1]) for m in by_model}
        except (registry.ArtifactIntegrityError, TrainingError) as exc:
            raise Failure(f"ml_return_predictions {window.label}: {exc}", allow_retries=False) from exc
    try:
        complete, incomplete = split_complete_rows(inputs)
    except DatasetError as exc:
        raise Failure(f"ml_return_predictions {window.label}: {exc}", allow_retries=False) from exc
    model_check = AssetCheckResult(
        asset_key="ml_return_predictions",
        check_name=MODEL_AVAILABLE_CHECK,
        passed=not no_model,
        severity=AssetCheckSeverity.WARN,
        metadata={"days_without_model": MetadataValue.json(no_model)},
    )
    if not by_model or complete.empty:
        reason = (
            f"no return model for any day: {next(iter(no_model.values()))}"
            if not by_model
            else f"no row has complete features ({len(incomplete)} incomplete)"
        )
        context.log.warning(f"ml_return_predictions {window.label}: {reason}")
        return MaterializeResult(
            metadata={"rows_in_run": MetadataValue.int(0), "reason": MetadataValue.text(reason)},
            check_results=[
                model_check,
                AssetCheckResult(asset_key="ml_return_predictions", check_name=LEAKAGE_CHECK, passed=True),
            ],
        )
    frames = []
    complete_day = complete["ts"].dt.strftime("%Y-%m-%d")
    for model_id, days in by_model.items():
        rows = complete[complete_day.isin(days).to_numpy()]
        if rows.empty:
            continue
        model = models[model_id]
        for horizon in sorted(model.horizons):
            predicted = rr.predict(model, rows, horizon)
            frames.append(
                pd.DataFrame(
                    {
                        "symbol": rows["symbol"].to_numpy(),
                        "ts": rows["ts"].to_numpy(),
                        "horizon_hours": np.int16(horizon),
                        "model_name": rr.MODEL_NAME,
                        "model_id": model_id,
                        "predicted_return": predicted,
                        "matures_at": (rows["ts"] + pd.Timedelta(hours=horizon + 1)).to_numpy(),
                    }
                )
            )
    predictions = pd.concat(frames, ignore_index=True)
    predictions["ts"] = pd.to_datetime(predictions["ts"], utc=True)
    predictions["matures_at"] = pd.to_datetime(predictions["matures_at"], utc=True)
    bad = ~np.isfinite(predictions["predicted_return"].to_numpy())
    if bad.any():
        first = predictions[bad].iloc[0]
        raise Failure(
            f"ml_return_predictions {window.label}: non-finite predicted_return for {first['symbol']} at "
            f"{first['ts'].isoformat()} ({first['horizon_hours']}h, model {first['model_id']}); nothing was written",
            allow_retries=False,
        )
    try:
        with warehouse.transaction() as conn:
            stats = upsert_frame(
                conn,
                "ml_return_predictions",
                predictions,
                ["symbol", "ts", "horizon_hours", "model_name"],
                changed_by_day="ts",
            )
            leaks = read_leaking_return_predictions(conn, window.start, window.end)
            if len(leaks):
                # Raised inside the transaction: the leaky rows are rolled back, never visible.
                raise LeakageError(leaks.head(10).to_markdown(index=False))
            stored = read_return_predictions(conn, SYMBOLS, window.start, window.end, rr.MODEL_NAME)
    except LeakageError as exc:
        raise Failure(
            f"ml_return_predictions {window.label}: predictions from a model that saw their future; nothing was "
            f"written. First rows:\n{exc}",
            allow_retries=False,
        ) from exc
    missing = missing_symbols_per_day(predictions, [d for d in window.days if day_window(d)[0] < end], SYMBOLS)
    day_rows = rows_per_day(predictions, window.days)
    day_of = predictions["ts"].dt.strftime("%Y-%m-%d")
    models_used = {str(m): days for m, days in by_model.items()}
    add_day_metadata(
        context,
        {
            day: {
                "rows": MetadataValue.int(day_rows[day]),
                "rows_changed": MetadataValue.int(stats.changed_per_day.get(day, 0)),
                "rows_per_horizon": MetadataValue.json(
                    {f"{h}h": int(n) for h, n in predictions.loc[day_of == day, "horizon_hours"].value_counts().items()}
                ),
                "model_id": MetadataValue.text(
                    next((m for m, days in models_used.items() if day in days), "none: no model matured before it")
                ),
                "symbols_without_prediction": MetadataValue.json(missing.get(day, [])),
            }
            for day in window.days
        },
    )
    summary = stored.groupby("horizon_hours")["predicted_return"].agg(["count", "mean", "std", "min", "max"])
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                **frame_metadata(predictions),
                **stats_metadata(stats),
                "days_in_run": MetadataValue.int(len(window.days)),
                "model_ids": MetadataValue.json(sorted(int(m) for m in by_model)),
                "rows_without_complete_features": MetadataValue.int(len(incomplete)),
                "symbol_days_without_prediction": symbol_day_table(missing),
                "predicted_return_by_horizon": MetadataValue.md(summary.to_markdown(floatfmt=".6f")),
            },
        ),
        check_results=[
            AssetCheckResult(
                asset_key="ml_return_predictions",
                check_name=LEAKAGE_CHECK,
                passed=True,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    "violations": 0,
                    "models_by_day": MetadataValue.json(models_used),
                    "model_labels_matured_until": MetadataValue.json(
                        {str(k): r.labels_matured_until.isoformat() for k, r in records.items()}
                    ),
                },
            ),
            model_check,
        ],
    )


RETURN_ASSETS = [return_model_ridge, ml_return_predictions]
