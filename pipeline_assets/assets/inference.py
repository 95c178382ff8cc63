"""Cross-symbol daily assets: predictions, trading signals, dashboard rows and realised
performance, for one or many days per run. A symbol without rows for a day (an outage, a symbol
that started later) is reported per day, never a failure of the other symbols."""

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from pipeline_assets.assets._common import (
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
from pipeline_assets.assets.features import ml_features_ohlcv, ml_features_sentiment, ml_labels
from pipeline_assets.assets.ingestion import raw_ohlcv
from pipeline_assets.assets.models import direction_model_xgboost
from pipeline_assets.automation.conditions import correction_aware
from pipeline_assets.ml import direction_xgb
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS, DatasetError, split_complete_rows
from pipeline_assets.ml.drift import CusumParams, feature_psi, performance_cusum
from pipeline_assets.ml.performance import evaluate_predictions, realised_baselines
from pipeline_assets.ml.signals import SIGNAL_RULE_ID, signals_from_probabilities, strategy_returns
from pipeline_assets.partitions import SYMBOLS, day_window
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store import artifacts
from pipeline_assets.store import models as registry
from pipeline_assets.store.feature_sets import FeatureSetNotMaterialised, resolve_model_feature_set
from pipeline_assets.store.frames import read_frame, upsert_frame
from pipeline_assets.store.warehouse import (
    read_labels,
    read_leaking_predictions,
    read_model_inputs,
    read_ohlcv,
    read_predictions,
    read_serving_inputs,
    read_signal_predictions,
    read_signals,
)

LEAKAGE_CHECK = "model_trained_before_prediction_time"
PROBABILITY_CHECK = "probabilities_sum_to_one"
MODEL_AVAILABLE_CHECK = "model_available"
MODEL_ASSET = "direction_model_xgboost"


class LeakageError(RuntimeError):
    """Predictions about to be stored came from a model that saw their future."""


SHADOW_TABLE = "ml_shadow_predictions"
SHADOW_KEY = ["symbol", "ts", "model_name", "model_id"]


def load_challengers(conn, model_name: str, days) -> tuple[dict[str, list], dict[int, bytes], dict[int, str]]:
    """Per day, the active challengers of ``model_name`` trained before the day began (point in
    time, like the champion), with their verified artifacts; a challenger whose artifact fails
    verification is reported (id -> reason) and predicts nothing."""
    by_day, artifacts_by_id, problems = {}, {}, {}
    for day in days:
        by_day[day] = registry.challengers(conn, model_name, trained_before=day_window(day)[0])
        for record in by_day[day]:
            if record.model_id in artifacts_by_id or record.model_id in problems:
                continue
            try:
                artifacts_by_id[record.model_id] = registry.load_artifact(conn, record.model_id)[1]
            except registry.ArtifactIntegrityError as exc:
                problems[record.model_id] = str(exc)
    return by_day, artifacts_by_id, problems


def shadow_frame(
    model_name: str, complete: pd.DataFrame, by_day: dict[str, list], artifacts_by_id: dict[int, bytes], predict
) -> tuple[pd.DataFrame, dict[str, list[int]], dict[int, str]]:
    """Challengers' predictions of the same rows as the champion, for ml_shadow_predictions:
    ``predict(artifact, rows) -> proba``. A challenger whose prediction fails or whose probabilities
    are not finite, in [0, 1] and summing to 1 is reported and left out (it never blocks the
    champion's rows). Returns (rows, day -> challenger ids, failures)."""
    day_of = complete["ts"].dt.strftime("%Y-%m-%d")
    frames, used, failures = [], {}, {}
    for day, records in by_day.items():
        rows = complete[(day_of == day).to_numpy()]
        if rows.empty:
            continue
        for record in records:
            if record.model_id not in artifacts_by_id or record.model_id in failures:
                continue
            try:
                proba = np.asarray(predict(artifacts_by_id[record.model_id], rows), dtype=np.float64)
            except (ValueError, RuntimeError) as exc:  # TrainingError is a ValueError; xgboost raises these
                failures[record.model_id] = f"{model_name} challenger {record.model_id} on {day}: {exc}"
                continue
            if proba.shape != (len(rows), 3):
                failures[record.model_id] = (
                    f"{model_name} challenger {record.model_id} on {day}: probabilities of shape {proba.shape}, "
                    f"expected {(len(rows), 3)}"
                )
                continue
            invalid = ~(np.isfinite(proba).all(axis=1) & (np.abs(proba.sum(axis=1) - 1) <= 1e-6))
            invalid |= ((proba < 0) | (proba > 1)).any(axis=1)
            if invalid.any():
                first = rows.iloc[int(np.argmax(invalid))]
                failures[record.model_id] = (
                    f"{model_name} challenger {record.model_id} on {day}: {int(invalid.sum())} rows of invalid "
                    f"probabilities, first {first['symbol']} {pd.Timestamp(first['ts']).isoformat()}"
                )
                continue
            frames.append(_probability_rows(rows, model_name, record.model_id, proba))
            used.setdefault(day, []).append(record.model_id)
    if not frames:
        return pd.DataFrame(columns=[*SHADOW_KEY, "prob_sell", "prob_hold", "prob_buy"]), used, failures
    out = pd.concat(frames, ignore_index=True)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out, used, failures


def _probability_rows(rows: pd.DataFrame, model_name: str, model_id: int, proba: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": rows["symbol"].to_numpy(),
            "ts": rows["ts"].to_numpy(),
            "model_name": model_name,
            "model_id": model_id,
            "prob_sell": proba[:, 0],
            "prob_hold": proba[:, 1],
            "prob_buy": proba[:, 2],
            "predicted_direction": proba.argmax(axis=1).astype(np.int16),
        }
    )


def write_shadow_rows(conn, shadow: pd.DataFrame):
    """Upsert challengers' rows (keyed by model_id too, so challengers never collide with each
    other or with the champion, whose rows live in ml_predictions)."""
    if shadow.empty:
        return None
    return upsert_frame(conn, SHADOW_TABLE, shadow, SHADOW_KEY)


@daily_asset(
    group_name="inference",
    kinds={"xgboost", "postgres"},
    tags={"layer": "inference"},
    automation_condition=correction_aware(ignore=[MODEL_ASSET], require=[MODEL_ASSET]),
    deps=[ml_features_ohlcv, ml_features_sentiment, direction_model_xgboost],
    check_specs=[
        AssetCheckSpec(
            LEAKAGE_CHECK,
            asset="ml_predictions",
            blocking=True,
            description="Every prediction comes from a model whose training labels all matured "
            "before the predicted hour (checked inside the writing transaction: leaky rows are rolled "
            "back, never visible).",
        ),
        AssetCheckSpec(
            PROBABILITY_CHECK,
            asset="ml_predictions",
            blocking=True,
            description="Class probabilities are in [0, 1] and sum to 1.",
        ),
        AssetCheckSpec(
            MODEL_AVAILABLE_CHECK,
            asset="ml_predictions",
            description="Every day of the run had a promoted model trained on labels matured before it "
            "(warns for days before the first model).",
        ),
    ],
)
@transient_only
def ml_predictions(context: AssetExecutionContext, warehouse: WarehouseResource):
    """SELL/HOLD/BUY probabilities for every symbol and closed hour of the run's days. Each day
    uses the newest promoted XGBoost model whose training labels had all matured before that day
    began (point-in-time, also inside a range run spanning several model versions). Every active
    challenger trained before the day predicts the same rows into ml_shadow_predictions (never
    read by the ensemble or signals); the leakage check covers both tables."""
    window = run_window(context)
    end = closed_bars_end(window.end)
    frames, models_used = [], {}
    with warehouse.transaction() as conn:
        by_model: dict[int, list[str]] = {}
        records = {}
        no_model: dict[str, str] = {}
        for day in window.days:
            day_start, _ = day_window(day)
            try:
                record = registry.model_for_prediction(conn, direction_xgb.MODEL_NAME, day_start)
            except registry.ModelNotFoundError as exc:
                # Before the first model existed there is nothing to predict with: reported per day
                # (model_available check), not a failure of the days that have a model.
                no_model[day] = str(exc)
                continue
            columns = tuple(record.params.get("feature_columns") or MODEL_FEATURE_COLUMNS)
            if columns != MODEL_FEATURE_COLUMNS:
                raise Failure(
                    f"ml_predictions {day}: model {record.model_id} (feature set {record.feature_set_id}) was "
                    f"trained on columns {list(columns)}, this code predicts from {list(MODEL_FEATURE_COLUMNS)}; "
                    "retrain direction_model_xgboost",
                    allow_retries=False,
                )
            records[record.model_id] = record
            by_model.setdefault(record.model_id, []).append(day)
        # Each model is served the feature-set version it was trained on (several may coexist in
        # the feature tables); a version with no rows for its days is a clear error, never a
        # silent switch to another version's rows.
        days_by_set: dict[str, list[str]] = {}
        for model_id, days in by_model.items():
            days_by_set.setdefault(records[model_id].feature_set_id, []).extend(days)
        inputs_by_set: dict[str, pd.DataFrame] = {}
        family_ids: dict[str, dict[str, str]] = {}
        for feature_set_id, days in days_by_set.items():
            first_start = day_window(min(days))[0]
            last_end = min(day_window(max(days))[1], end)
            if last_end <= first_start:
                continue  # no closed bar yet in those days
            try:
                inputs_by_set[feature_set_id] = read_serving_inputs(
                    conn, feature_set_id, SYMBOLS, first_start, last_end
                )
            except FeatureSetNotMaterialised as exc:
                raise Failure(f"ml_predictions {window.label}: {exc}", allow_retries=False) from exc
            family_ids[feature_set_id] = {
                f.name: f.feature_set_id for f in resolve_model_feature_set(conn, feature_set_id).families
            }
        if not by_model:
            inputs = read_model_inputs(conn, SYMBOLS, window.start, end)
            if inputs.empty:
                raise Failure(
                    f"ml_predictions {window.label}: no feature rows for any symbol; materialise ml_features_ohlcv",
                    allow_retries=False,
                )
        artifacts = {model_id: registry.load_artifact(conn, model_id)[1] for model_id in by_model}
        challengers_by_day, challenger_artifacts, challenger_problems = load_challengers(
            conn, direction_xgb.MODEL_NAME, [d for days in by_model.values() for d in days]
        )
    complete_by_set: dict[str, pd.DataFrame] = {}
    incomplete_rows = 0
    for feature_set_id, frame in inputs_by_set.items():
        try:
            complete_by_set[feature_set_id], incomplete = split_complete_rows(frame, family_ids[feature_set_id])
        except DatasetError as exc:
            raise Failure(f"ml_predictions {window.label}: {exc}", allow_retries=False) from exc
        incomplete_rows += len(incomplete)
    if by_model and all(frame.empty for frame in complete_by_set.values()):
        raise Failure(
            f"ml_predictions {window.label}: no row has complete features ({incomplete_rows} incomplete)",
            allow_retries=False,
        )
    model_check = AssetCheckResult(
        asset_key="ml_predictions",
        check_name=MODEL_AVAILABLE_CHECK,
        passed=not no_model,
        severity=AssetCheckSeverity.WARN,
        metadata={"days_without_model": MetadataValue.json(no_model)},
    )
    if not by_model:
        context.log.warning(f"ml_predictions {window.label}: no model for any day: {next(iter(no_model.values()))}")
        return MaterializeResult(
            metadata={"rows": MetadataValue.int(0), "days_without_model": MetadataValue.int(len(no_model))},
            check_results=[
                model_check,
                AssetCheckResult(asset_key="ml_predictions", check_name=LEAKAGE_CHECK, passed=True),
                AssetCheckResult(asset_key="ml_predictions", check_name=PROBABILITY_CHECK, passed=True),
            ],
        )
    for model_id, days in by_model.items():
        complete = complete_by_set.get(records[model_id].feature_set_id)
        if complete is None or complete.empty:
            continue
        rows = complete[complete["ts"].dt.strftime("%Y-%m-%d").isin(days).to_numpy()]
        if rows.empty:
            continue
        model = direction_xgb.deserialize(artifacts[model_id])
        proba = direction_xgb.predict_proba(model, rows)
        frames.append(_probability_rows(rows, direction_xgb.MODEL_NAME, model_id, proba))
        models_used[str(model_id)] = days
    predictions = pd.concat(frames, ignore_index=True)
    predictions["ts"] = pd.to_datetime(predictions["ts"], utc=True)
    # Challengers predict the same rows in the shadow, only the days they were trained before,
    # each from the feature-set version it was trained on where that version is served that day.
    shadow_parts, shadow_used, shadow_failures = [], {}, dict(challenger_problems)
    for feature_set_id, complete in complete_by_set.items():
        served_days = days_by_set[feature_set_id]
        rows = complete[complete["ts"].dt.strftime("%Y-%m-%d").isin(served_days).to_numpy()]
        by_day = {
            d: [r for r in recs if r.feature_set_id == feature_set_id]
            for d, recs in challengers_by_day.items()
            if d in served_days
        }
        part, used, failures = shadow_frame(
            direction_xgb.MODEL_NAME,
            rows,
            by_day,
            challenger_artifacts,
            lambda artifact, rows: direction_xgb.predict_proba(direction_xgb.deserialize(artifact), rows),
        )
        shadow_parts.append(part)
        shadow_failures.update(failures)
        for d, ids in used.items():
            shadow_used.setdefault(d, []).extend(ids)
    for day, recs in challengers_by_day.items():
        for record in recs:
            if record.feature_set_id not in complete_by_set:
                shadow_failures.setdefault(
                    record.model_id,
                    f"{direction_xgb.MODEL_NAME} challenger {record.model_id} on {day}: trained on feature set "
                    f"{record.feature_set_id}, which no champion of the run's days is served",
                )
    shadow_parts = [p for p in shadow_parts if len(p)]
    shadow = (
        pd.concat(shadow_parts, ignore_index=True)
        if shadow_parts
        else pd.DataFrame(columns=[*SHADOW_KEY, "prob_sell", "prob_hold", "prob_buy"])
    )
    for reason in shadow_failures.values():
        context.log.warning(f"ml_predictions {window.label}: shadow challenger left out: {reason}")
    try:
        with warehouse.transaction() as conn:
            stats = upsert_frame(
                conn, "ml_predictions", predictions, ["symbol", "ts", "model_name"], changed_by_day="ts"
            )
            write_shadow_rows(conn, shadow)
            leaks = read_leaking_predictions(conn, window.start, window.end)
            if len(leaks):
                # Raised inside the transaction: the leaky rows are rolled back, never visible.
                raise LeakageError(leaks.head(10).to_markdown(index=False))
            stored = read_predictions(conn, SYMBOLS, window.start, window.end, direction_xgb.MODEL_NAME)
    except LeakageError as exc:
        raise Failure(
            f"ml_predictions {window.label}: predictions from a model that saw their future; nothing was "
            f"written. First rows:\n{exc}",
            allow_retries=False,
        ) from exc
    total = stored[["prob_sell", "prob_hold", "prob_buy"]].sum(axis=1)
    bad_proba = stored[
        ((total - 1).abs() > 1e-5)
        | (stored[["prob_sell", "prob_hold", "prob_buy"]] < 0).any(axis=1)
        | (stored[["prob_sell", "prob_hold", "prob_buy"]] > 1).any(axis=1)
    ]
    checks = [
        AssetCheckResult(
            asset_key="ml_predictions",
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
        AssetCheckResult(
            asset_key="ml_predictions",
            check_name=PROBABILITY_CHECK,
            passed=bad_proba.empty,
            severity=AssetCheckSeverity.ERROR,
            metadata={"violations": len(bad_proba)},
        ),
        model_check,
    ]
    missing = missing_symbols_per_day(predictions, [d for d in window.days if day_window(d)[0] < end], SYMBOLS)
    day_rows = rows_per_day(predictions, window.days)
    add_day_metadata(
        context,
        {
            day: {
                "rows": MetadataValue.int(day_rows[day]),
                "rows_changed": MetadataValue.int(stats.changed_per_day.get(day, 0)),
                "symbols_without_prediction": MetadataValue.json(missing.get(day, [])),
            }
            for day in window.days
        },
    )
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                **frame_metadata(predictions),
                **stats_metadata(stats),
                "days_in_run": MetadataValue.int(len(window.days)),
                "model_ids": MetadataValue.json(sorted(int(m) for m in by_model)),
                "shadow_rows": MetadataValue.int(len(shadow)),
                "shadow_challengers_by_day": MetadataValue.json(shadow_used),
                "shadow_challengers_left_out": MetadataValue.json({str(k): v for k, v in shadow_failures.items()}),
                "rows_without_complete_features": MetadataValue.int(incomplete_rows),
                "symbol_days_without_prediction": symbol_day_table(missing),
                "predicted_direction_counts": MetadataValue.json(
                    {str(k): int(v) for k, v in predictions["predicted_direction"].value_counts().items()}
                ),
            },
        ),
        check_results=checks,
    )


@daily_asset(
    group_name="inference",
    tags={"layer": "inference"},
    deps=[ml_predictions, AssetKey("ml_ensemble_predictions")],
    metadata={"signal_rule_id": SIGNAL_RULE_ID},
)
@transient_only
def trading_signals(context: AssetExecutionContext, warehouse: WarehouseResource):
    """BUY / SELL / HOLD per symbol and hour from the ensemble's probabilities where it predicted
    the hour (members behind circuit breakers, class-priors fallback), else the XGBoost member's."""
    window = run_window(context)
    with warehouse.transaction() as conn:
        predictions = read_signal_predictions(conn, SYMBOLS, window.start, window.end, direction_xgb.MODEL_NAME)
    if predictions.empty:
        context.log.warning(f"trading_signals {window.label}: no predictions in the range (see ml_predictions)")
        return MaterializeResult(metadata={"rows": MetadataValue.int(0), "reason": "no predictions in the range"})
    rule = signals_from_probabilities(predictions["prob_sell"].to_numpy(), predictions["prob_buy"].to_numpy())
    signals = pd.concat([predictions[["symbol", "ts", "model_id"]], rule], axis=1).assign(signal_rule_id=SIGNAL_RULE_ID)
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "trading_signals", signals, ["symbol", "ts"], changed_by_day="ts")
    day_rows = rows_per_day(signals, window.days)
    add_day_metadata(context, {day: {"rows": MetadataValue.int(n)} for day, n in day_rows.items()})
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                **frame_metadata(signals),
                **stats_metadata(stats),
                "days_in_run": MetadataValue.int(len(window.days)),
                "signal_counts": MetadataValue.json({k: int(v) for k, v in signals["signal"].value_counts().items()}),
            },
        )
    )


DASHBOARD_COLUMNS = [
    "symbol",
    "ts",
    "close",
    "signal",
    "position",
    "prob_buy",
    "prob_sell",
    "forward_return",
    "strategy_return",
    "model_id",
]


@daily_asset(
    group_name="dashboard",
    tags={"layer": "serving"},
    deps=[trading_signals, raw_ohlcv, ml_labels],
)
@transient_only
def dashboard_data(context: AssetExecutionContext, warehouse: WarehouseResource):
    """One row per symbol and hour: price, signal, probabilities and, once the label has matured,
    the realised forward return and what the signal earned."""
    window = run_window(context)
    with warehouse.transaction() as conn:
        signals = read_signals(conn, SYMBOLS, window.start, window.end)
        bars = read_ohlcv(conn, SYMBOLS, window.start, window.end)
        labels = read_labels(conn, SYMBOLS, window.start, window.end)
        predictions = read_signal_predictions(conn, SYMBOLS, window.start, window.end, direction_xgb.MODEL_NAME)
    if signals.empty:
        context.log.warning(f"dashboard_data {window.label}: no trading signals in the range")
        return MaterializeResult(metadata={"rows": MetadataValue.int(0), "reason": "no trading signals in the range"})
    rows = (
        signals.merge(predictions[["symbol", "ts", "prob_buy", "prob_sell"]], on=["symbol", "ts"], how="left")
        .merge(bars[["symbol", "ts", "close"]], on=["symbol", "ts"], how="left")
        .merge(labels[["symbol", "ts", "forward_return"]], on=["symbol", "ts"], how="left")
    )
    no_bar = rows["close"].isna()
    if no_bar.any():
        first = rows.loc[no_bar].iloc[0]
        raise Failure(
            f"dashboard_data: signal without a stored bar for {first['symbol']} at {first['ts']}", allow_retries=False
        )
    rows["strategy_return"] = strategy_returns(rows["position"].to_numpy(), rows["forward_return"].to_numpy())
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "dashboard_data", rows[DASHBOARD_COLUMNS], ["symbol", "ts"], changed_by_day="ts")
    traded = rows[(rows["position"] != 0) & rows["forward_return"].notna()]
    day_rows = rows_per_day(rows, window.days)
    add_day_metadata(context, {day: {"rows": MetadataValue.int(n)} for day, n in day_rows.items()})
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                **frame_metadata(rows[DASHBOARD_COLUMNS]),
                **stats_metadata(stats),
                "days_in_run": MetadataValue.int(len(window.days)),
                "traded_hours_matured": MetadataValue.int(len(traded)),
                "hit_rate": MetadataValue.float(float((traded["strategy_return"] > 0).mean()) if len(traded) else 0.0),
                "sum_strategy_return": MetadataValue.float(float(traded["strategy_return"].sum())),
            },
        )
    )


PERFORMANCE_DRIFT_CHECK = "performance_drift"
FEATURE_DRIFT_CHECK = "feature_drift"


@daily_asset(
    group_name="monitoring",
    tags={"layer": "monitoring"},
    deps=[ml_predictions, ml_labels],
    check_specs=[
        AssetCheckSpec(
            PERFORMANCE_DRIFT_CHECK,
            asset="model_performance",
            description="The CUSUM of each model's realised daily log loss over its held-out log loss (overlapping "
            "labels counted once per horizon) is below its threshold (ml/drift.py; warns, the drift sensor retrains).",
        ),
        AssetCheckSpec(
            FEATURE_DRIFT_CHECK,
            asset="model_performance",
            description="No model feature of the run's days has a population stability index above 0.25 against the "
            "newest model's training dataset (warns).",
        ),
    ],
)
@transient_only
def model_performance(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Realised accuracy and log loss of each day's predictions whose labels have matured, per model,
    next to the model's own held-out log loss (the drift sensor compares the two)."""
    window = run_window(context)
    with warehouse.transaction() as conn:
        frame = read_frame(
            conn,
            """
            SELECT to_char(p.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, p.symbol, p.ts, p.model_id,
                   p.prob_sell, p.prob_hold, p.prob_buy, p.predicted_direction, l.direction,
                   prev.direction AS persisted_direction
            FROM ml_predictions p JOIN ml_labels l USING (symbol, ts)
            -- persistence: the newest label of the symbol matured when bar t was predicted (t + 1h)
            LEFT JOIN ml_labels prev
                   ON prev.symbol = p.symbol AND prev.ts = p.ts - make_interval(hours => l.horizon_hours)
            WHERE p.ts >= %s AND p.ts < %s AND p.model_name = %s
            ORDER BY p.ts, p.symbol
            """,
            (window.start, window.end, direction_xgb.MODEL_NAME),
        )
        (predicted,) = conn.execute(
            "SELECT count(*) FROM ml_predictions WHERE ts >= %s AND ts < %s AND model_name = %s",
            (window.start, window.end, direction_xgb.MODEL_NAME),
        ).fetchone()
        if frame.empty:
            none = {"note": "no matured prediction in the run's days"}
            return MaterializeResult(
                metadata={"predictions": predicted, "matured_rows": 0},
                check_results=[
                    AssetCheckResult(check_name=PERFORMANCE_DRIFT_CHECK, passed=True, metadata=none),
                    AssetCheckResult(check_name=FEATURE_DRIFT_CHECK, passed=True, metadata=none),
                ],
            )
        references = {int(m): registry.get_model(conn, int(m)) for m in frame["model_id"].unique()}
        rows = []
        for (day, model_id), group in frame.groupby(["day", "model_id"], sort=True):
            record = references[int(model_id)]
            rows.append(
                {
                    "day": day_window(day)[0].date(),
                    "model_name": record.model_name,
                    "model_id": int(model_id),
                    **evaluate_predictions(group),
                    **realised_baselines(group, record.metrics),
                    "reference_log_loss": float(record.metrics["test"]["log_loss"]),
                }
            )
        performance = pd.DataFrame(rows)
        stats = upsert_frame(conn, "model_performance", performance, ["day", "model_name", "model_id"])
        drift_check = _performance_drift_check(conn, references)
        feature_check = _feature_drift_check(conn, references, window)
    weights = performance["matured_rows"]
    add_day_metadata(
        context,
        {
            str(row["day"]): {
                "rows": MetadataValue.int(1),
                "matured_rows": MetadataValue.int(int(row["matured_rows"])),
                "log_loss": MetadataValue.float(float(row["log_loss"])),
                "accuracy": MetadataValue.float(float(row["accuracy"])),
            }
            for _, row in performance.iterrows()
        },
    )
    return MaterializeResult(
        metadata={
            **stats_metadata(stats),
            "predictions": MetadataValue.int(predicted),
            "matured_rows": MetadataValue.int(int(weights.sum())),
            "accuracy": MetadataValue.float(float(np.average(performance["accuracy"], weights=weights))),
            "log_loss": MetadataValue.float(float(np.average(performance["log_loss"], weights=weights))),
            "reference_log_loss": MetadataValue.float(float(performance["reference_log_loss"].iloc[-1])),
            "priors_log_loss": MetadataValue.float(float(np.average(performance["priors_log_loss"], weights=weights))),
            "persistence_accuracy": MetadataValue.float(
                float(np.nanmean(performance["persistence_accuracy"].astype(float)))
            ),
            "training_majority_accuracy": MetadataValue.float(
                float(np.average(performance["majority_accuracy"], weights=weights))
            ),
            "table": MetadataValue.md(performance.tail(31).to_markdown(index=False, floatfmt=".4f")),
        },
        check_results=[drift_check, feature_check],
    )


def _performance_drift_check(conn, references: dict) -> AssetCheckResult:
    decisions = {}
    for model_id, record in references.items():
        history = read_frame(
            conn,
            "SELECT day, matured_rows, log_loss, log_loss_std FROM model_performance WHERE model_id = %s ORDER BY day",
            (model_id,),
        )
        decisions[model_id] = performance_cusum(history, float(record.metrics["test"]["log_loss"]))
    drifted = {m: d.reason for m, d in decisions.items() if d.drifted}
    return AssetCheckResult(
        check_name=PERFORMANCE_DRIFT_CHECK,
        passed=not drifted,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "drifted_models": MetadataValue.json({str(m): r for m, r in drifted.items()}),
            "statistics": MetadataValue.json({str(m): round(d.statistic, 3) for m, d in decisions.items()}),
            "threshold": MetadataValue.float(CusumParams().threshold),
        },
    )


def _feature_drift_check(conn, references: dict, window) -> AssetCheckResult:
    newest = references[max(references)]
    dataset_id = newest.params.get("training_dataset_id")
    if dataset_id is None:
        return AssetCheckResult(
            check_name=FEATURE_DRIFT_CHECK,
            passed=True,
            severity=AssetCheckSeverity.WARN,
            metadata={"note": f"model {newest.model_id} records no training dataset; nothing to compare with"},
        )
    train = artifacts.read_training_dataset(artifacts.get_training_dataset(conn, int(dataset_id)))
    recent = read_model_inputs(conn, SYMBOLS, window.start, window.end)
    table = feature_psi(train, recent, MODEL_FEATURE_COLUMNS)
    shifted = table[table["shifted"]]
    return AssetCheckResult(
        check_name=FEATURE_DRIFT_CHECK,
        passed=shifted.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "model_id": MetadataValue.int(newest.model_id),
            "shifted_features": MetadataValue.json(shifted["feature"].tolist()),
            "psi": MetadataValue.md(table.to_markdown(index=False, floatfmt=".3f")),
        },
    )
