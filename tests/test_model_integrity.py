"""Model artifacts: verified against an append-only ledger before any deserialisation; a corrupt
champion is retired (by the next retrain or the CLI) instead of blocking every retrain."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import psycopg
import pytest
from dagster_helpers import count, ingest_days, metadata_of, run_assets

import pipeline_assets.ml.online_river as online_river
from pipeline_assets.assets.models import retrain_run_config
from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect

DAYS = [f"2024-03-{d:02d}" for d in range(1, 11)]


def _register(conn, name: str, artifact: bytes, matured: datetime) -> registry.ModelRecord:
    return registry.register_model(
        conn,
        model_name=name,
        artifact=artifact,
        format="test",
        feature_set_id="f",
        label_set_id="l",
        model_version_hash="h",
        params={},
        metrics={},
        train_start=None,
        train_end=None,
        labels_matured_until=matured,
    )


def _tamper(conn, model_id: int, artifact: bytes) -> None:
    """An attacker (or a bad restore) replaces both the bytes and the row's own hash."""
    conn.execute(
        "UPDATE ml_models_metadata SET artifact = %s, artifact_sha256 = %s WHERE model_id = %s",
        (artifact, registry.sha256_hex(artifact), model_id),
    )


def test_replacing_bytes_and_row_hash_is_caught_before_unpickling(warehouse_url, monkeypatch):
    opened = []
    monkeypatch.setattr(online_river, "deserialize", lambda data: opened.append(data))
    with connect(warehouse_url) as conn:
        record = _register(conn, "direction_river", b"genuine state", datetime(2024, 3, 1, tzinfo=UTC))
        registry.promote_model(conn, record.model_id)
        _tamper(conn, record.model_id, b"cos\nsystem\n(S'echo owned'\ntR.")  # a hostile pickle
        with pytest.raises(registry.ArtifactIntegrityError, match="does not match the ledger"):
            registry.load_artifact(conn, record.model_id)
        conn.commit()
    result = run_assets(["online_model_river"], warehouse_url, raise_on_error=False)
    assert not result.success and opened == []  # refused before online_river.deserialize was reached
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "refusing to load" in failure and "cli.models retire" in failure


def test_the_ledger_is_append_only(warehouse_url):
    with connect(warehouse_url) as conn:
        record = _register(conn, "m", b"bytes", datetime(2024, 3, 1, tzinfo=UTC))
        conn.commit()
        for statement in (
            "UPDATE model_artifact_ledger SET artifact_sha256 = 'x'",
            "DELETE FROM model_artifact_ledger",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
            conn.rollback()
    assert (
        count(warehouse_url, "SELECT count(*) FROM model_artifact_ledger WHERE model_id = %s", (record.model_id,)) == 1
    )


def test_a_corrupt_champion_is_retired_by_the_next_retrain(warehouse_url):
    ingest_days(warehouse_url, DAYS)
    config = retrain_run_config("2024-03-08T00:00:00+00:00", train_days=8, min_rows=200)
    first = metadata_of(
        run_assets(["training_dataset", "direction_model_xgboost"], warehouse_url, run_config=config),
        "direction_model_xgboost",
    )
    with connect(warehouse_url) as conn:
        _tamper(conn, first["model_id"], b"not a model")
        conn.commit()
    config = retrain_run_config("2024-03-10T00:00:00+00:00", train_days=9, min_rows=200)
    second = run_assets(["training_dataset", "direction_model_xgboost"], warehouse_url, run_config=config)
    meta = metadata_of(second, "direction_model_xgboost")
    assert meta["status"] == "champion"
    with connect(warehouse_url) as conn:
        old = registry.get_model(conn, first["model_id"])
        reason = conn.execute(
            "SELECT retired_reason FROM ml_models_metadata WHERE model_id = %s", (first["model_id"],)
        ).fetchone()[0]
    assert old.status == "retired" and "artifact failed verification at retrain" in reason


def _cli(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIPELINE_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "pipeline_assets.cli.models", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_lists_verifies_and_retires_a_corrupt_champion(warehouse_url):
    with connect(warehouse_url) as conn:
        v1 = _register(conn, "direction_xgboost", b"v1", datetime(2024, 3, 1, tzinfo=UTC))
        registry.promote_model(conn, v1.model_id)
        v2 = _register(conn, "direction_xgboost", b"v2", datetime(2024, 3, 2, tzinfo=UTC))
        registry.promote_model(conn, v2.model_id)
        _tamper(conn, v2.model_id, b"v2 replaced")
        conn.commit()
    verify = _cli(warehouse_url, "verify")
    assert verify.returncode == 1 and f"model_id={v2.model_id}" in verify.stdout and "1 corrupt" in verify.stdout
    listing = _cli(warehouse_url, "list", "--model-name", "direction_xgboost")
    assert "CORRUPT" in listing.stdout and listing.returncode == 0
    retired = _cli(warehouse_url, "retire", "--model-name", "direction_xgboost", "--reason", "replaced out of band")
    assert retired.returncode == 0, retired.stderr
    assert f"champion is now direction_xgboost v1 (model_id={v1.model_id})" in retired.stdout
    with connect(warehouse_url) as conn:
        assert registry.champion(conn, "direction_xgboost").model_id == v1.model_id
    assert _cli(warehouse_url, "retire", "--model-id", "999999", "--reason", "x").returncode == 2
