from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

from dagster import DagsterInstance
from dagster_helpers import run_assets

from pipeline_assets.definitions import defs
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect


def _run_checks() -> dict:
    result = defs.resolve_job_def("warehouse_checks_job").execute_in_process(instance=DagsterInstance.ephemeral())
    assert result.success
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _cli(url: str, as_of: str = "2024-03-06T00:30:00Z") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env["PIPELINE_DATABASE_URL"] = url
    env["PIPELINE_FRESHNESS_AS_OF"] = as_of
    return subprocess.run(
        [sys.executable, "-m", "pipeline_assets.checks.run"], env=env, capture_output=True, text=True, timeout=300
    )


def test_scans_pass_on_clean_data_and_catch_out_of_band_rows(warehouse_url):
    run_assets(["raw_ohlcv"], warehouse_url, "2024-03-05")
    clean = _run_checks()
    assert clean["raw_ohlcv_contract_scan"].passed and clean["ml_predictions_leakage_scan"].passed
    assert clean["raw_ohlcv_contract_scan"].metadata["rows_scanned"].value == 24 * len(SYMBOLS)
    cli = _cli(warehouse_url)
    assert "warehouse.raw_ohlcv_contract_scan: passed" in cli.stdout
    assert "warehouse.raw_ohlcv_freshness: passed" in cli.stdout
    # no prediction was ever made: stale, and the command says so with a non-zero exit
    assert "warehouse.ml_predictions_freshness: FAILED" in cli.stdout and cli.returncode == 1

    with connect(warehouse_url) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO raw_ohlcv (symbol, ts, open, high, low, close, volume, source) VALUES "
            "('XRPUSDT', '2024-03-05T00:00Z', 'NaN', 1, 1, 1, 1, 'restore'),"
            "('XRPUSDT', '2024-03-05T01:00Z', 2, 1, 3, 2, 1, 'restore'),"
            "('XRPUSDT', '2024-03-05T02:30Z', 2, 3, 1, 2, 1, 'restore')"
        )
        model = registry.register_model(
            conn,
            model_name="direction_xgboost",
            artifact=b"x",
            format="test",
            feature_set_id="f",
            label_set_id="l",
            model_version_hash="h",
            params={},
            metrics={},
            train_start=None,
            train_end=None,
            labels_matured_until=datetime(2024, 3, 6, tzinfo=UTC),
        )
        conn.execute(
            "INSERT INTO ml_predictions (symbol, ts, model_name, model_id, prob_sell, prob_hold, prob_buy, "
            "predicted_direction) VALUES ('BTCUSDT', '2024-03-05T05:00Z', 'direction_xgboost', %s, 0.2, 0.3, 0.5, 2)",
            (model.model_id,),
        )
    dirty = _run_checks()
    scan = dirty["raw_ohlcv_contract_scan"]
    assert not scan.passed
    counts = scan.metadata["violations_by_rule"].value
    assert (counts["no_nan"], counts["high_gte_low"], counts["hour_aligned_ts"]) == (1, 1, 1)
    assert scan.metadata["rows_scanned"].value == 24 * len(SYMBOLS) + 3
    leak = dirty["ml_predictions_leakage_scan"]
    assert not leak.passed and leak.metadata["violations"].value == 1

    cli = _cli(warehouse_url)
    assert cli.returncode == 1
    assert "warehouse.raw_ohlcv_contract_scan: FAILED" in cli.stdout
    assert "warehouse.ml_predictions_leakage_scan: FAILED" in cli.stdout


def test_freshness_is_judged_against_the_last_closed_hour(warehouse_url):
    from pipeline_assets.checks.warehouse import freshness_result

    run_assets(["raw_ohlcv"], warehouse_url, "2024-03-05")
    latest = dict.fromkeys(SYMBOLS, datetime(2024, 3, 5, 23, tzinfo=UTC))
    # 00:30 on the 6th: the bar 23:00 closed at 00:00 and is there
    assert freshness_result(latest, datetime(2024, 3, 6, 0, 30, tzinfo=UTC), 0, "bars").passed
    # 02:10 with one hour of tolerance: 00:00 is the oldest allowed, 23:00 is stale
    stale = freshness_result(latest, datetime(2024, 3, 6, 2, 10, tzinfo=UTC), 1, "bars")
    assert not stale.passed and set(stale.metadata["stale_symbols"].value) == set(SYMBOLS)
    missing = freshness_result({}, datetime(2024, 3, 6, 0, 30, tzinfo=UTC), 1, "bars")
    assert missing.metadata["stale_symbols"].value == dict.fromkeys(SYMBOLS, "never")
    cli = _cli(warehouse_url, as_of="2024-03-06T05:00:00Z")
    assert "warehouse.raw_ohlcv_freshness: FAILED" in cli.stdout and cli.returncode == 1
