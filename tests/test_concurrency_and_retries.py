"""Transient failures are retried with no partial partition; overlapping online updates never
forget or invent learned rows."""

from __future__ import annotations

import threading

from dagster import DagsterEventType, DagsterInstance
from dagster_helpers import count, ingest_days, run_assets

import pipeline_assets.assets.ingestion as ingestion
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect


def test_a_connection_killed_mid_write_is_retried_and_leaves_no_partial_partition(warehouse_url, monkeypatch):
    calls = {"n": 0, "rows_seen_by_retry": None}
    original = ingestion.record_watermarks

    def kill_then_write(conn, asset_name, rows):
        calls["n"] += 1
        if calls["n"] == 1:
            # The bars are already upserted in this transaction; the server now drops the connection.
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        else:
            calls["rows_seen_by_retry"] = count(warehouse_url, "SELECT count(*) FROM raw_ohlcv")
        return original(conn, asset_name, rows)

    monkeypatch.setattr(ingestion, "record_watermarks", kill_then_write)
    instance = DagsterInstance.ephemeral()
    result = run_assets(["raw_ohlcv"], warehouse_url, "2024-03-05", instance)
    assert result.success and calls["n"] == 2
    assert calls["rows_seen_by_retry"] == 0  # the killed attempt committed nothing
    retries = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == 1
    assert count(warehouse_url, "SELECT count(*) FROM raw_ohlcv") == 24 * len(SYMBOLS)
    assert count(warehouse_url, "SELECT count(*) FROM partition_watermarks") == len(SYMBOLS)


def test_a_contract_or_code_error_is_not_retried(warehouse_url, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("close")

    monkeypatch.setattr(ingestion, "validate_ohlcv", broken)
    result = run_assets(["raw_ohlcv"], warehouse_url, "2024-03-05", raise_on_error=False)
    assert not result.success
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "raw_ohlcv: KeyError: 'close'" in failure


def test_overlapping_online_updates_learn_each_row_exactly_once(warehouse_url):
    ingest_days(warehouse_url, ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05", "2024-03-06"])
    results, errors = [], []

    def update():
        instance = DagsterInstance.ephemeral()  # one per thread, like one per run process
        try:
            results.append(run_assets(["online_model_river"], warehouse_url, instance=instance))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            instance.dispose()

    threads = [threading.Thread(target=update) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors and len(results) == 3 and all(r.success for r in results)
    with connect(warehouse_url) as conn:
        champion = registry.champion(conn, "direction_river")
        learned = conn.execute(
            "SELECT count(*), count(DISTINCT (symbol, ts)) FROM online_model_learned_rows"
        ).fetchone()
        versions = conn.execute(
            "SELECT count(*) FROM ml_models_metadata WHERE model_name = 'direction_river'"
        ).fetchone()
    # one run learned everything, the others found nothing new; the champion saw every learned row
    assert learned[0] == learned[1] == champion.metrics["rows_learned"] > 0
    assert versions[0] == 1
