"""Model registry: models are rows with artifact bytes, sha256, lineage, metrics and status."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from pipeline_assets.store.frames import StoreError


class ArtifactIntegrityError(StoreError):
    """The stored artifact bytes do not match their recorded sha256."""


class ModelNotFoundError(StoreError):
    pass


@dataclass(frozen=True)
class ModelRecord:
    model_id: int
    model_name: str
    version: int
    format: str
    artifact_sha256: str
    feature_set_id: str
    label_set_id: str
    model_version_hash: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    train_start: datetime | None
    train_end: datetime | None
    labels_matured_until: datetime
    status: str
    created_at: datetime
    promoted_at: datetime | None


_RECORD_COLUMNS = (
    "model_id, model_name, version, format, artifact_sha256, feature_set_id, label_set_id, "
    "model_version_hash, params, metrics, train_start, train_end, labels_matured_until, status, "
    "created_at, promoted_at"
)


def sha256_hex(artifact: bytes) -> str:
    return hashlib.sha256(artifact).hexdigest()


def register_model(
    conn: psycopg.Connection,
    *,
    model_name: str,
    artifact: bytes,
    format: str,
    feature_set_id: str,
    label_set_id: str,
    model_version_hash: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    train_start: datetime | None,
    train_end: datetime | None,
    labels_matured_until: datetime,
    status: str = "candidate",
) -> ModelRecord:
    """Insert a new version (max + 1 per model name) inside the caller's transaction."""
    if not artifact:
        raise StoreError(f"refusing to register {model_name} with an empty artifact")
    if status == "champion":
        raise StoreError("register as candidate, then promote_model(), so the old champion is retired")
    # Versions are allocated under a per-model-name lock so concurrent runs don't collide.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"model:{model_name}",))
    (version,) = conn.execute(
        "SELECT coalesce(max(version), 0) + 1 FROM ml_models_metadata WHERE model_name = %s", (model_name,)
    ).fetchone()
    (model_id,) = conn.execute(
        """
        INSERT INTO ml_models_metadata (model_name, version, format, artifact, artifact_sha256,
            feature_set_id, label_set_id, model_version_hash, params, metrics, train_start, train_end,
            labels_matured_until, status)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s)
        RETURNING model_id
        """,
        (
            model_name,
            version,
            format,
            artifact,
            sha256_hex(artifact),
            feature_set_id,
            label_set_id,
            model_version_hash,
            json.dumps(params, sort_keys=True),
            json.dumps(metrics, sort_keys=True),
            train_start,
            train_end,
            labels_matured_until,
            status,
        ),
    ).fetchone()
    conn.execute(
        "INSERT INTO model_artifact_ledger (model_id, model_name, version, artifact_sha256) VALUES (%s, %s, %s, %s)",
        (model_id, model_name, version, sha256_hex(artifact)),
    )
    return get_model(conn, model_id)


def promote_model(conn: psycopg.Connection, model_id: int) -> ModelRecord:
    """Make ``model_id`` the champion of its name; the previous champion is retired."""
    record = get_model(conn, model_id)
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"model:{record.model_name}",))
    conn.execute(
        "UPDATE ml_models_metadata SET status = 'retired' "
        "WHERE model_name = %s AND status = 'champion' AND model_id <> %s",
        (record.model_name, model_id),
    )
    conn.execute(
        "UPDATE ml_models_metadata SET status = 'champion', promoted_at = coalesce(promoted_at, now()) "
        "WHERE model_id = %s",
        (model_id,),
    )
    return get_model(conn, model_id)


def make_challenger(conn: psycopg.Connection, model_id: int) -> ModelRecord:
    """A registered model that was not promoted becomes a challenger: it predicts in the shadow
    (ml_shadow_predictions) until challenger_review promotes or retires it."""
    record = get_model(conn, model_id)
    if record.status != "candidate":
        raise StoreError(f"model {record.model_name} v{record.version} is {record.status}, not a candidate")
    conn.execute("UPDATE ml_models_metadata SET status = 'challenger' WHERE model_id = %s", (model_id,))
    return get_model(conn, model_id)


def challengers(conn: psycopg.Connection, model_name: str, trained_before: datetime | None = None) -> list[ModelRecord]:
    """Active challengers of ``model_name``, oldest first; with ``trained_before``, only those whose
    training labels all matured before that time (the ones allowed to predict hours from then on)."""
    query = f"SELECT {_RECORD_COLUMNS} FROM ml_models_metadata WHERE model_name = %s AND status = 'challenger'"
    params: list = [model_name]
    if trained_before is not None:
        query += " AND labels_matured_until < %s"
        params.append(trained_before)
    return [_record(row) for row in conn.execute(query + " ORDER BY version", params).fetchall()]


def challenger_names(conn: psycopg.Connection) -> list[str]:
    """Model names (kinds) that have at least one active challenger."""
    rows = conn.execute(
        "SELECT DISTINCT model_name FROM ml_models_metadata WHERE status = 'challenger' ORDER BY model_name"
    ).fetchall()
    return [r[0] for r in rows]


def record_decision(
    conn: psycopg.Connection,
    *,
    model_name: str,
    candidate_id: int,
    champion_id: int | None,
    decision: Any,
    basis: str,
    action: str,
) -> int:
    """One row of model_promotion_decisions: ``decision`` is an ml.promotion.PromotionDecision;
    ``basis`` 'held_out' or 'realised_shadow'; ``action`` what it did to the candidate."""
    (decision_id,) = conn.execute(
        "INSERT INTO model_promotion_decisions (model_name, candidate_id, champion_id, promoted, reason, "
        "compared_rows, level, candidate_log_loss, champion_log_loss, difference, ci_low, ci_high, basis, action) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING decision_id",
        (
            model_name,
            candidate_id,
            champion_id,
            decision.promote,
            decision.reason,
            decision.rows,
            decision.level,
            decision.candidate_log_loss,
            decision.champion_log_loss,
            decision.difference,
            decision.ci_low,
            decision.ci_high,
            basis,
            action,
        ),
    ).fetchone()
    return int(decision_id)


def _record(row: tuple) -> ModelRecord:
    return ModelRecord(*row)


def get_model(conn: psycopg.Connection, model_id: int) -> ModelRecord:
    row = conn.execute(f"SELECT {_RECORD_COLUMNS} FROM ml_models_metadata WHERE model_id = %s", (model_id,)).fetchone()
    if row is None:
        raise ModelNotFoundError(f"no model with model_id={model_id}")
    return _record(row)


def champion(conn: psycopg.Connection, model_name: str) -> ModelRecord | None:
    row = conn.execute(
        f"SELECT {_RECORD_COLUMNS} FROM ml_models_metadata WHERE model_name = %s AND status = 'champion'",
        (model_name,),
    ).fetchone()
    return _record(row) if row else None


def latest_model(conn: psycopg.Connection, model_name: str) -> ModelRecord | None:
    row = conn.execute(
        f"SELECT {_RECORD_COLUMNS} FROM ml_models_metadata WHERE model_name = %s ORDER BY version DESC LIMIT 1",
        (model_name,),
    ).fetchone()
    return _record(row) if row else None


def model_for_prediction(conn: psycopg.Connection, model_name: str, first_prediction_ts: datetime) -> ModelRecord:
    """The newest model that was ever promoted and whose training labels all matured before the
    first prediction time: point-in-time correct for backfills as well as for live hours."""
    row = conn.execute(
        f"""
        SELECT {_RECORD_COLUMNS} FROM ml_models_metadata
        WHERE model_name = %s AND promoted_at IS NOT NULL AND labels_matured_until < %s
        ORDER BY labels_matured_until DESC, version DESC LIMIT 1
        """,
        (model_name, first_prediction_ts),
    ).fetchone()
    if row is None:
        earliest = conn.execute(
            "SELECT min(labels_matured_until) FROM ml_models_metadata "
            "WHERE model_name = %s AND promoted_at IS NOT NULL",
            (model_name,),
        ).fetchone()[0]
        detail = (
            f"the earliest promoted model's labels matured at {earliest.isoformat()}"
            if earliest
            else "no model has been promoted yet"
        )
        raise ModelNotFoundError(
            f"no promoted {model_name} model whose training labels all matured before "
            f"{first_prediction_ts.isoformat()}; {detail}"
        )
    return _record(row)


def load_artifact(conn: psycopg.Connection, model_id: int) -> tuple[ModelRecord, bytes]:
    """Artifact bytes of a model, verified against the append-only ledger (and the row's own hash)
    before anything deserialises them: a pickle is never opened unless its bytes are the ones
    recorded when the model was registered."""
    record = get_model(conn, model_id)
    (artifact,) = conn.execute("SELECT artifact FROM ml_models_metadata WHERE model_id = %s", (model_id,)).fetchone()
    ledger = conn.execute(
        "SELECT artifact_sha256 FROM model_artifact_ledger WHERE model_id = %s", (model_id,)
    ).fetchone()
    artifact = bytes(artifact)
    actual = sha256_hex(artifact)
    name = f"model {record.model_name} v{record.version} (model_id={model_id})"
    if ledger is None:
        raise ArtifactIntegrityError(f"{name}: no entry in model_artifact_ledger; refusing to load")
    if actual != ledger[0] or actual != record.artifact_sha256:
        raise ArtifactIntegrityError(
            f"{name}: artifact sha256 {actual[:12]} does not match the ledger's {ledger[0][:12]} "
            f"(row says {record.artifact_sha256[:12]}); refusing to load. Retire it with "
            f"`python -m pipeline_assets.cli.models retire --model-id {model_id} --reason ...`"
        )
    return record, artifact


def verify_artifact(conn: psycopg.Connection, model_id: int) -> str | None:
    """None when the model's artifact passes load_artifact's checks, else the reason it does not."""
    try:
        load_artifact(conn, model_id)
    except ArtifactIntegrityError as exc:
        return str(exc)
    return None


def retire_model(conn: psycopg.Connection, model_id: int, reason: str) -> ModelRecord | None:
    """Take ``model_id`` out of service with ``reason``. If it was the champion, the newest earlier
    version whose artifact verifies becomes champion again (returned); None when there is none,
    so the caller can say plainly that no model of that name is in service."""
    record = get_model(conn, model_id)
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"model:{record.model_name}",))
    conn.execute(
        "UPDATE ml_models_metadata SET status = 'retired', retired_reason = %s WHERE model_id = %s",
        (reason, model_id),
    )
    # Rows only this (online) version learned are learned again by the version that takes over.
    conn.execute("DELETE FROM online_model_learned_rows WHERE model_id = %s", (model_id,))
    if record.status != "champion":
        return champion(conn, record.model_name)
    for (candidate_id,) in conn.execute(
        "SELECT model_id FROM ml_models_metadata WHERE model_name = %s AND model_id <> %s AND promoted_at IS NOT NULL "
        "AND retired_reason IS NULL ORDER BY version DESC",
        (record.model_name, model_id),
    ).fetchall():
        if verify_artifact(conn, candidate_id) is None:
            return promote_model(conn, candidate_id)
    return None
