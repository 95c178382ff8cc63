"""The second member and the ensemble.

- ``direction_model_linear``: the scikit-learn multinomial logistic regression on train-only
  scaled features (ml/linear_model.py), trained from the same registered training dataset as the
  XGBoost member, stored as JSON parameters, promoted by the same significance test.
- ``ml_ensemble_predictions``: for every closed hour of the run's days, the own point-in-time
  predictions of the members run from their artifacts here (``direction_linear``, and the
  chart-pattern member ``direction_patterns`` of assets/pattern_model.py, which reads the
  ``ml_patterns`` detections active at each hour), and the ensemble's rows (model name
  ``direction_ensemble``) in ``ml_predictions``; the XGBoost member's rows come from
  ``ml_predictions``. Members run behind circuit breakers (state in
  ``member_breakers``): an exception, a failed artifact check or invalid output opens the
  member's breaker and leaves it out of that day, never failing the day. Realised performance is
  judged point-in-time per day (ml/breakers.realised_loss_gate): a member whose rows predicted
  before the day, with labels matured before it, have a mean log loss worse than the class priors
  of those labels (margin rule of BreakerConfig, at least ``loss_min_rows`` rows) is left out of
  that day's ensemble; the verdict is per-day metadata and fails the WARN check. It depends on
  nothing after the day's start, so range runs and one-day runs give the same rows (this run's
  member rows are the history of its later days). The ensemble weights of a
  day are fitted only on member predictions whose labels matured before the day began (linear
  pool, ml/ensemble.py); a weights set is registered as a model version (its artifact is the
  weights JSON, its labels_matured_until the newest label used), so the leakage check covers
  ensemble rows too. The in-process members' active challengers (registered, not promoted,
  trained before the day) predict the same rows into ``ml_shadow_predictions``, never used here
  or by signals; the leakage check covers them. With no usable member, an hour keeps the
  ensemble's previous row for it (``previous_champion``: stored by an earlier run whose members
  were usable, with that run's weights set as its model), else falls back to the class priors of
  the labels matured before the day (``class_priors``); ``fallback_used`` says which.
"""

import contextlib
import functools
import json
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
from psycopg.types.json import Jsonb

from pipeline_assets.assets._common import (
    ML_OWNERS,
    TRANSIENT_RETRY,
    WAREHOUSE_POOL,
    add_day_metadata,
    closed_bars_end,
    daily_asset,
    run_metadata,
    run_window,
    transient_only,
    utc_now,
)
from pipeline_assets.assets.inference import (
    SHADOW_KEY,
    load_challengers,
    ml_predictions,
    shadow_frame,
    write_shadow_rows,
)
from pipeline_assets.assets.models import (
    TrainingConfig,
    load_training_dataset,
    register_trained_member,
    timing_metadata,
    training_dataset,
)
from pipeline_assets.assets.pattern_model import direction_model_patterns
from pipeline_assets.assets.patterns import PATTERN_SET_ID, ml_patterns
from pipeline_assets.ml import breakers, direction_xgb, ensemble, linear_model, pattern_member
from pipeline_assets.ml.baselines import class_priors
from pipeline_assets.ml.dataset import MODEL_FEATURE_SET_ID, DatasetError, split_complete_rows
from pipeline_assets.ml.direction_xgb import TrainingError
from pipeline_assets.ml.labels import LABEL_SET_ID
from pipeline_assets.partitions import SYMBOLS, day_window
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store import artifacts
from pipeline_assets.store import models as registry
from pipeline_assets.store.frames import read_frame, upsert_frame
from pipeline_assets.store.warehouse import read_active_detections, read_leaking_predictions, read_model_inputs

ENSEMBLE_NAME = ensemble.ENSEMBLE_NAME
# the class-priors fallback is registered as a model of its own kind (a baseline), not as an
# ensemble weights set, so the UI and the registry say which rows came from no model at all
BASELINE_PRIORS_NAME = "baseline_class_priors"
MEMBERS = (direction_xgb.MODEL_NAME, linear_model.MODEL_NAME, pattern_member.MODEL_NAME)
MEMBER_ASSETS = {
    linear_model.MODEL_NAME: "direction_model_linear",
    pattern_member.MODEL_NAME: "direction_model_patterns",
}
# members this asset runs in process from their artifacts (XGBoost's rows come from ml_predictions)
IN_PROCESS = {
    linear_model.MODEL_NAME: (
        linear_model.deserialize,
        lambda model, keys, detections: linear_model.predict_proba(model, keys),
    ),
    pattern_member.MODEL_NAME: (pattern_member.deserialize, pattern_member.predict_proba),
}


@functools.lru_cache(maxsize=32)
def _model(member: str, artifact: bytes):
    """A member's model from its verified artifact bytes, deserialised once however many days of a
    range run (and challengers' shadow days) it serves."""
    return IN_PROCESS[member][0](artifact)


def _member_proba(member: str, artifact: bytes, keys: pd.DataFrame, detections: pd.DataFrame) -> np.ndarray:
    return IN_PROCESS[member][1](_model(member, artifact), keys, detections)


BREAKERS_CHECK = "no_open_breakers"
LEAKAGE_CHECK = "model_trained_before_prediction_time"
BREAKER_CONFIG = breakers.BreakerConfig()
PROBABILITIES = ["prob_sell", "prob_hold", "prob_buy"]


@asset(
    kinds={"scikit-learn", "postgres"},
    code_version="1",
    owners=ML_OWNERS,
    tags={"trigger": "retrain", "layer": "models"},
    pool=WAREHOUSE_POOL,
    retry_policy=TRANSIENT_RETRY,
    deps=[training_dataset],
)
@transient_only
def direction_model_linear(context: AssetExecutionContext, config: TrainingConfig, warehouse: WarehouseResource):
    """The linear member, trained on the newest registered training dataset (or ``dataset_id``),
    registered with its parameters as JSON and promoted only by a significant improvement."""
    params = linear_model.LinearTrainingParams(min_rows=config.min_rows)
    dataset = load_training_dataset(warehouse, config, "direction_model_linear")
    try:
        frame = artifacts.read_training_dataset(dataset)
        started = time.perf_counter()
        trained = linear_model.train_linear_model(frame, params)
        training_seconds = time.perf_counter() - started
    except (artifacts.ArtifactError, DatasetError, TrainingError) as exc:
        raise Failure(f"direction_model_linear: {exc} (dataset {dataset.dataset_id})", allow_retries=False) from exc
    with warehouse.transaction() as conn:
        candidate, decision, timings = register_trained_member(
            context,
            conn,
            trained,
            model_name=linear_model.MODEL_NAME,
            artifact_format=linear_model.ARTIFACT_FORMAT,
            feature_set_id=MODEL_FEATURE_SET_ID,
            label_set_id=LABEL_SET_ID,
            version_hash=params.version_hash(),
            params={
                "feature_columns": list(params.feature_columns),
                "symbols": list(SYMBOLS),
                "training_dataset_id": dataset.dataset_id,
                "training_dataset_sha256": dataset.sha256,
                "C": trained.model.c,
            },
            predict_validated=lambda rows: linear_model.predict_proba(trained.validated_model, rows),
            predict_with_artifact=lambda artifact, rows: linear_model.predict_proba(
                linear_model.deserialize(artifact), rows
            ),
            deserialize=linear_model.deserialize,
            training_seconds=training_seconds,
        )
    report = trained.metrics["test_vs_baselines"]
    return MaterializeResult(
        metadata={
            "model_id": MetadataValue.int(candidate.model_id),
            "status": MetadataValue.text(candidate.status),
            "test_log_loss": MetadataValue.float(trained.metrics["test"]["log_loss"]),
            "training_rows": MetadataValue.int(trained.training_rows),
            **timing_metadata(timings),
            "validated_train_rows": MetadataValue.int(trained.metrics["train"]["rows"]),
            "chosen_c": MetadataValue.float(trained.model.c),
            "refit": MetadataValue.json(trained.metrics["refit"]),
            "metrics_basis": MetadataValue.text(trained.metrics["metrics_basis"]),
            "beats_baselines": MetadataValue.bool(bool(report["beats_baselines"])),
            "verdict": MetadataValue.text(report["verdict"]),
            "promotion": MetadataValue.text(decision.reason),
        }
    )


def _member_frame(member: str, proba: np.ndarray, rows: pd.DataFrame) -> pd.DataFrame:
    frame = rows[["symbol", "ts"]].reset_index(drop=True).copy()
    frame[PROBABILITIES] = proba
    return frame


def _load_states(conn) -> dict[str, dict]:
    return {m: s for m, s in conn.execute("SELECT member, state FROM member_breakers").fetchall()}


@daily_asset(
    group_name="inference",
    code_version="3",
    kinds={"postgres", "scikit-learn"},
    tags={"layer": "inference"},
    deps=[ml_predictions, ml_patterns, direction_model_linear, direction_model_patterns],
    check_specs=[
        AssetCheckSpec(
            BREAKERS_CHECK,
            asset="ml_ensemble_predictions",
            description="No ensemble member's circuit breaker is open or half-open after the run, and no member "
            "was left out of a day for realised log loss worse than the class priors (warns; such a member is left "
            "out of the ensemble, its reason in the metadata).",
        ),
        AssetCheckSpec(
            LEAKAGE_CHECK,
            asset="ml_ensemble_predictions",
            blocking=True,
            description="Every member and ensemble row was made by a model (or weights set) whose labels all "
            "matured before the predicted hour; checked inside the write transaction.",
        ),
    ],
)
@transient_only
def ml_ensemble_predictions(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Linear- and pattern-member and ensemble probabilities for every symbol and closed hour of the
    run's days, point-in-time, with members behind circuit breakers and a class-priors fallback."""
    window = run_window(context)
    end = closed_bars_end(window.end)
    lookback = timedelta(hours=ensemble.EnsembleParams().lookback_hours)
    with warehouse.transaction() as conn:
        inputs = read_model_inputs(conn, SYMBOLS, window.start, end)
        history = read_frame(
            conn,
            "SELECT model_name AS member, symbol, ts, prob_sell, prob_hold, prob_buy FROM ml_predictions "
            "WHERE model_name = ANY(%s) AND ts >= %s AND ts < %s ORDER BY ts, symbol",
            (list(MEMBERS), window.start - lookback, end),
        )
        labels = read_frame(
            conn,
            "SELECT symbol, ts, direction, matured_at FROM ml_labels WHERE ts >= %s AND ts < %s ORDER BY ts, symbol",
            (window.start - lookback, end),
        )
        detections = read_active_detections(conn, SYMBOLS, window.start, end)
        # the ensemble's own rows already stored for these hours (from members that were usable
        # then): the first fallback when no member is usable now
        previous = read_frame(
            conn,
            "SELECT symbol, ts, model_id AS previous_model_id, prob_sell, prob_hold, prob_buy, weights_id, "
            "members_used FROM ml_predictions WHERE model_name = %s AND fallback_used = 'none' "
            "AND ts >= %s AND ts < %s ORDER BY ts, symbol",
            (ENSEMBLE_NAME, window.start, end),
        )
        states = _load_states(conn)
        records = {member: {} for member in IN_PROCESS}  # member -> day -> model version of that day
        for member, day in ((m, d) for m in IN_PROCESS for d in window.days):
            with contextlib.suppress(registry.ModelNotFoundError):
                records[member][day] = registry.model_for_prediction(conn, member, day_window(day)[0])
        # each in-process member's challengers predict in the shadow on the days its champion does
        challengers = {m: load_challengers(conn, m, sorted(records[m])) for m in IN_PROCESS}
        artifacts_by_id = {}
        integrity_problems = {}
        for record in {r.model_id: r for by_day in records.values() for r in by_day.values()}.values():
            try:
                artifacts_by_id[record.model_id] = registry.load_artifact(conn, record.model_id)[1]
            except registry.ArtifactIntegrityError as exc:
                integrity_problems[record.model_id] = str(exc)
    for member, current in (
        (linear_model.MODEL_NAME, MODEL_FEATURE_SET_ID),
        (pattern_member.MODEL_NAME, PATTERN_SET_ID),
    ):
        other_sets = sorted(
            {(r.model_id, r.feature_set_id) for r in records[member].values() if r.feature_set_id != current}
        )
        if other_sets:
            # the ensemble reads one feature-set version (the current one) for all its members
            raise Failure(
                f"ml_ensemble_predictions {window.label}: {member} model(s) {[m for m, _ in other_sets]} use "
                f"feature set(s) {sorted({f for _, f in other_sets})}, the ensemble serves the current feature "
                f"set {current} only; retrain {MEMBER_ASSETS[member]}",
                allow_retries=False,
            )
    if inputs.empty:
        raise Failure(
            f"ml_ensemble_predictions {window.label}: no feature rows; materialise the features", allow_retries=False
        )
    complete, _ = split_complete_rows(inputs)
    day_of = complete["ts"].dt.strftime("%Y-%m-%d")
    member_rows, ensemble_rows, weights_models, fallbacks, skipped_all, realised = [], [], {}, {}, {}, {}
    run_started = utc_now()
    for day in window.days:
        day_start = day_window(day)[0]
        keys = complete[(day_of == day).to_numpy()]
        if keys.empty:
            continue

        def member_call(member, day=day, keys=keys):
            record = records[member][day]
            if record.model_id in integrity_problems:
                raise breakers.MemberIntegrityError(integrity_problems[record.model_id])
            proba = _member_proba(member, artifacts_by_id[record.model_id], keys, detections)
            return _member_frame(member, proba, keys)

        def xgb_call(day=day, keys=keys, day_start=day_start, history=history):
            stored = history[(history["member"] == direction_xgb.MODEL_NAME) & (history["ts"] >= day_start)]
            stored = stored[stored["ts"] < day_start + timedelta(days=1)]
            if stored.empty:
                raise LookupError(f"ml_predictions has no {direction_xgb.MODEL_NAME} rows for {day}")
            return stored.drop(columns=["member"]).merge(keys[["symbol", "ts"]], on=["symbol", "ts"])

        # a member without a model trained before the day is not a member that day (not a failure)
        calls = {m: functools.partial(member_call, m) for m in IN_PROCESS if day in records[m]}
        if (history["member"] == direction_xgb.MODEL_NAME).any() or not calls:
            calls[direction_xgb.MODEL_NAME] = xgb_call
        absent = [m for m in MEMBERS if m not in calls]
        run = breakers.run_members(
            calls,
            states,
            run_started,  # breakers live on wall-clock time: a backfill of past days cannot rewind them
            BREAKER_CONFIG,
            integrity_errors=(breakers.MemberIntegrityError, registry.ArtifactIntegrityError),
        )
        states = run.states
        for member in (m for m in IN_PROCESS if m in run.predictions):
            fresh = run.predictions[member]
            member_rows.append(fresh.assign(model_name=member, model_id=records[member][day].model_id))
            # this run's rows are the member's history for the run's later days, exactly as a
            # one-day run of those days would read them back from ml_predictions
            stale = (history["member"] == member) & (history["ts"] >= day_start)
            stale &= history["ts"] < day_start + timedelta(days=1)
            history = pd.concat([history[~stale], fresh.assign(member=member)], ignore_index=True)
        # exactly the history a one-day run of this day reads (from day_start - lookback on)
        past = history[(history["ts"] < day_start) & (history["ts"] >= day_start - lookback)]
        matured = labels[labels["matured_at"] < day_start]
        priors = class_priors(matured["direction"].to_numpy()) if len(matured) else np.full(3, 1 / 3)
        # realised performance, point-in-time: a member whose matured rows before the day lose to
        # the class priors leaves that day's ensemble (its own rows are still written)
        verdicts = breakers.realised_loss_gate(past, labels, day_start, sorted(run.predictions), BREAKER_CONFIG, priors)
        gated = {m: e for m, e in verdicts.items() if e["worse"]}
        realised[day] = verdicts
        skipped_all[day] = {
            **{m: "no model trained before this day" for m in absent},
            **run.skipped,
            **{m: e["detail"] for m, e in run.events.items() if e["kind"] != "success"},
            **{m: f"realised loss worse than class priors: {e['detail']}" for m, e in gated.items()},
        }
        usable = sorted(m for m in run.predictions if m not in gated)
        weights = ensemble.fit_weights(past[past["member"].isin(usable)], labels, day_start, usable) if usable else None
        before = previous[(previous["ts"] >= day_start) & (previous["ts"] < day_start + timedelta(days=1))]
        rows = breakers.fallback_chain(
            keys[["symbol", "ts"]],
            {m: run.predictions[m] for m in usable},
            weights,
            before.drop(columns=["previous_model_id"]) if len(before) else None,
            priors,
        )
        rows = rows.merge(before[["symbol", "ts", "previous_model_id"]], on=["symbol", "ts"], how="left")
        fallbacks[day] = rows["fallback_used"].value_counts().to_dict()
        weights_payload = weights.to_dict() if weights is not None else {"class_priors": priors.tolist()}
        weights_models[day] = (weights_payload, weights, day_start, matured)
        ensemble_rows.append((day, rows))
    if not ensemble_rows:
        raise Failure(f"ml_ensemble_predictions {window.label}: no row has complete features", allow_retries=False)
    shadow_parts, shadow_used, shadow_failures = [], {}, {}
    for member, (by_day, member_artifacts, problems) in challengers.items():
        part, used, failures = shadow_frame(
            member,
            complete,
            by_day,
            member_artifacts,
            lambda artifact, rows, member=member: _member_proba(member, artifact, rows, detections),
        )
        if len(part):
            shadow_parts.append(part)
        shadow_failures.update({**problems, **failures})
        for day, ids in used.items():
            shadow_used.setdefault(day, []).extend(ids)
    shadow = (
        pd.concat(shadow_parts, ignore_index=True)
        if shadow_parts
        else pd.DataFrame(columns=[*SHADOW_KEY, *PROBABILITIES])
    )
    for reason in shadow_failures.values():
        context.log.warning(f"ml_ensemble_predictions {window.label}: shadow challenger left out: {reason}")
    try:
        with warehouse.transaction() as conn:
            frames = [pd.concat(member_rows, ignore_index=True)] if member_rows else []
            model_ids = {}
            for day, rows in ensemble_rows:
                payload, weights, day_start, matured = weights_models[day]
                model_ids[day] = _register_weights(conn, payload, weights, day_start, matured)
                # rows kept from the previous champion ensemble keep the weights set that made them
                kept = (rows["fallback_used"] == "previous_champion").to_numpy()
                model_id = np.where(kept, rows["previous_model_id"].fillna(-1).to_numpy(), model_ids[day])
                frames.append(
                    rows.drop(columns=["previous_model_id"]).assign(
                        model_name=ENSEMBLE_NAME, model_id=model_id.astype(np.int64)
                    )
                )
            predictions = pd.concat(frames, ignore_index=True)
            predictions["predicted_direction"] = (
                predictions[PROBABILITIES].to_numpy(dtype=np.float64).argmax(axis=1).astype(np.int16)
            )
            columns = ["symbol", "ts", "model_name", "model_id", *PROBABILITIES, "predicted_direction"]
            extra = [c for c in ("members_used", "weights_id", "fallback_used") if c in predictions.columns]
            out = predictions[columns + extra].copy()
            stats = upsert_frame(conn, "ml_predictions", out, ["symbol", "ts", "model_name"], changed_by_day="ts")
            write_shadow_rows(conn, shadow)
            if realised:  # the newest day's realised-loss verdict beside each member's breaker state
                newest = max(realised)
                for member, verdict in realised[newest].items():
                    state = states.get(member) or breakers.new_state(member)
                    if (state.get("realised_loss") or {}).get("day", "") <= newest:
                        keep = ("worse", "rows", "model_log_loss", "baseline_log_loss", "detail")
                        states[member] = {
                            **state,
                            "realised_loss": {"day": newest, **{k: verdict.get(k) for k in keep}},
                        }
            for member, state in states.items():
                conn.execute(
                    "INSERT INTO member_breakers (member, state, updated_at) VALUES (%s, %s, now()) "
                    "ON CONFLICT (member) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
                    (member, Jsonb(state)),
                )
            leaks = read_leaking_predictions(conn, window.start, window.end)
            if len(leaks):
                raise ensemble.EnsembleError(leaks.head(10).to_markdown(index=False))
    except ensemble.EnsembleError as exc:
        raise Failure(
            f"ml_ensemble_predictions {window.label}: rows from a model or weights set that saw their future; "
            f"nothing was written. First rows:\n{exc}",
            allow_retries=False,
        ) from exc
    not_closed = {m: s for m, s in states.items() if s["state"] != "closed"}
    gated_days = {
        day: {m: e["detail"] for m, e in verdicts.items() if e["worse"]}
        for day, verdicts in realised.items()
        if any(e["worse"] for e in verdicts.values())
    }
    rows_per_day = out["ts"].dt.strftime("%Y-%m-%d").value_counts()
    add_day_metadata(
        context,
        {
            day: {
                "rows": MetadataValue.int(int(rows_per_day.get(day, 0))),
                "fallback_used": MetadataValue.json({str(k): int(v) for k, v in fallbacks.get(day, {}).items()}),
                "members_left_out": MetadataValue.json(skipped_all.get(day, {})),
                "realised_loss": MetadataValue.json(
                    {
                        m: {k: e.get(k) for k in ("worse", "rows", "model_log_loss", "baseline_log_loss", "detail")}
                        for m, e in realised.get(day, {}).items()
                    }
                ),
            }
            for day in window.days
        },
    )
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                "rows_in_run": MetadataValue.int(len(out)),
                "rows_changed": MetadataValue.int(stats.inserted + stats.updated),
                "ensemble_rows": MetadataValue.int(int((out["model_name"] == ENSEMBLE_NAME).sum())),
                "weights_model_ids": MetadataValue.json(model_ids),
                "shadow_rows": MetadataValue.int(len(shadow)),
                "shadow_challengers_by_day": MetadataValue.json(shadow_used),
                "shadow_challengers_left_out": MetadataValue.json({str(k): v for k, v in shadow_failures.items()}),
                "breakers": MetadataValue.json({m: s["state"] for m, s in states.items()}),
            },
        ),
        check_results=[
            AssetCheckResult(
                check_name=BREAKERS_CHECK,
                passed=not not_closed and not gated_days,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "left_out_for_realised_loss": MetadataValue.json(gated_days),
                    "not_closed": MetadataValue.json(
                        {
                            m: {"state": s["state"], "reason": s.get("reason"), "since": s.get("tripped_at")}
                            for m, s in not_closed.items()
                        }
                    ),
                },
            ),
            AssetCheckResult(check_name=LEAKAGE_CHECK, passed=True, metadata={"violations": 0}),
        ],
    )


def _register_weights(conn, payload: dict, weights, day_start, matured: pd.DataFrame) -> int:
    """The weights set of a day as a version of the ensemble, or the class-priors fallback as a
    version of the baseline model kind BASELINE_PRIORS_NAME; the same content is registered once
    (found again by its SHA-256)."""
    model_name = ENSEMBLE_NAME if weights is not None else BASELINE_PRIORS_NAME
    artifact = json.dumps(payload, sort_keys=True).encode()
    digest = registry.sha256_hex(artifact)
    found = conn.execute(
        "SELECT model_id FROM ml_models_metadata WHERE model_name = %s AND artifact_sha256 = %s",
        (model_name, digest),
    ).fetchone()
    if found:
        return int(found[0])
    until = (
        weights.labels_matured_until
        if weights is not None and weights.labels_matured_until is not None
        else (matured["matured_at"].max() if len(matured) else day_start - timedelta(hours=1))
    )
    record = registry.register_model(
        conn,
        model_name=model_name,
        artifact=artifact,
        format="ensemble-weights-json-v1" if weights is not None else "class-priors-json-v1",
        feature_set_id=MODEL_FEATURE_SET_ID,
        label_set_id=LABEL_SET_ID,
        model_version_hash=payload.get("weights_id", "class_priors"),
        params={
            "members": list(weights.members) if weights is not None else [],
            "method": payload.get("method", "class_priors"),
        },
        metrics={"fit_log_loss": payload.get("fit_log_loss"), "fitted_rows": payload.get("fitted_rows", 0)},
        train_start=day_start - timedelta(hours=ensemble.EnsembleParams().lookback_hours),
        train_end=day_start,
        labels_matured_until=pd.Timestamp(until).to_pydatetime(),
    )
    return record.model_id
