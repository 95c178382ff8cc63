"""The chart-pattern member's training asset (``direction_model_patterns``) and the reads its
inference shares with the ensemble.

The member (ml/pattern_member.py) turns the ``ml_patterns`` detections active at a bar into SELL /
HOLD / BUY probabilities. It trains on the same registered training dataset as the other members
(its rows and labels; the pattern states come from ``ml_patterns``), is registered with the
pattern set id as its feature set, stored as JSON, and promoted by the same significance test.
"""

import time
from datetime import timedelta

import pandas as pd
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from pipeline_assets.assets._common import ML_OWNERS, TRANSIENT_RETRY, WAREHOUSE_POOL, transient_only
from pipeline_assets.assets.models import (
    TrainingConfig,
    load_training_dataset,
    register_trained_member,
    timing_metadata,
    training_dataset,
)
from pipeline_assets.assets.patterns import PATTERN_SET_ID, ml_patterns
from pipeline_assets.ml import pattern_member
from pipeline_assets.ml.dataset import DatasetError
from pipeline_assets.ml.direction_xgb import TrainingError
from pipeline_assets.ml.labels import LABEL_SET_ID
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store import artifacts
from pipeline_assets.store.warehouse import read_active_detections


@asset(
    group_name="models",
    kinds={"postgres"},
    code_version="1",
    owners=ML_OWNERS,
    tags={"trigger": "retrain", "layer": "models"},
    pool=WAREHOUSE_POOL,
    retry_policy=TRANSIENT_RETRY,
    deps=[training_dataset, ml_patterns],
)
@transient_only
def direction_model_patterns(context: AssetExecutionContext, config: TrainingConfig, warehouse: WarehouseResource):
    """The chart-pattern member, trained on the newest registered training dataset (or
    ``dataset_id``) and the pattern detections of its window; promoted only by a significant
    improvement (the first valid model becomes champion)."""
    params = pattern_member.PatternMemberParams(min_rows=config.min_rows)
    dataset = load_training_dataset(warehouse, config, "direction_model_patterns")
    try:
        frame = artifacts.read_training_dataset(dataset)
    except (artifacts.ArtifactError, DatasetError) as exc:
        raise Failure(f"direction_model_patterns: {exc} (dataset {dataset.dataset_id})", allow_retries=False) from exc
    start, end = frame["ts"].min(), frame["ts"].max() + timedelta(hours=1)
    with warehouse.transaction() as conn:
        found = read_active_detections(conn, SYMBOLS, start, end)
    if found.empty:
        raise Failure(
            f"direction_model_patterns: ml_patterns has no detection between {start.isoformat()} and "
            f"{end.isoformat()}; materialise ml_patterns for the training window (dataset {dataset.dataset_id})",
            allow_retries=False,
        )
    try:
        started = time.perf_counter()
        trained = pattern_member.train_pattern_model(frame, found, params)
        training_seconds = time.perf_counter() - started
    except TrainingError as exc:
        raise Failure(f"direction_model_patterns: {exc} (dataset {dataset.dataset_id})", allow_retries=False) from exc
    with warehouse.transaction() as conn:
        candidate, decision, timings = register_trained_member(
            context,
            conn,
            trained,
            model_name=pattern_member.MODEL_NAME,
            artifact_format=pattern_member.ARTIFACT_FORMAT,
            feature_set_id=PATTERN_SET_ID,
            label_set_id=LABEL_SET_ID,
            version_hash=params.version_hash(),
            params={
                "symbols": list(SYMBOLS),
                "training_dataset_id": dataset.dataset_id,
                "training_dataset_sha256": dataset.sha256,
                "dead_zone": trained.model.dead_zone,
                "prior_rows": trained.model.prior_rows,
                "detections": len(found),
            },
            predict_validated=lambda rows: pattern_member.predict_proba(trained.validated_model, rows, found),
            predict_with_artifact=lambda artifact, rows: pattern_member.predict_proba(
                pattern_member.deserialize(artifact), rows, found
            ),
            deserialize=pattern_member.deserialize,
            training_seconds=training_seconds,
        )
    report = trained.metrics["test_vs_baselines"]
    table = pd.DataFrame(trained.model.table, columns=["P(SELL)", "P(HOLD)", "P(BUY)"], index=pattern_member.STATES)
    table["train share"] = [trained.metrics["train"]["state_share"][s] for s in pattern_member.STATES]
    return MaterializeResult(
        metadata={
            "model_id": MetadataValue.int(candidate.model_id),
            "status": MetadataValue.text(candidate.status),
            "test_log_loss": MetadataValue.float(trained.metrics["test"]["log_loss"]),
            "class_priors_log_loss": MetadataValue.float(report["metrics"]["class_priors"]["log_loss"]),
            "persistence_log_loss": MetadataValue.float(report["metrics"]["persistence"]["log_loss"]),
            "beats_baselines": MetadataValue.bool(bool(report["beats_baselines"])),
            "verdict": MetadataValue.text(report["verdict"]),
            "state_table": MetadataValue.md(table.round(4).to_markdown()),
            "detections_in_window": MetadataValue.int(len(found)),
            "training_rows": MetadataValue.int(trained.training_rows),
            **timing_metadata(timings),
            "metrics_basis": MetadataValue.text(trained.metrics["metrics_basis"]),
            "promotion": MetadataValue.text(decision.reason),
        }
    )
