"""`python -m pipeline_assets.checks.ci`: the whole graph on a small window, every asset check the
UI shows, failing on ERROR-severity failures only."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline_assets.store.db import connect


def _run(url: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "DAGSTER_"))}
    env["PIPELINE_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "pipeline_assets.checks.ci", "--days", "12", "--symbols", "BTCUSDT,ETHUSDT"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_check_runs_and_only_error_failures_fail(fresh_database, tmp_path):
    clean = _run(fresh_database, tmp_path)
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    lines = clean.stdout.splitlines()
    assert lines[-1].endswith("0 ERROR-severity failure(s)")
    for check in (
        "raw_ohlcv.no_nan",
        "ml_predictions.model_trained_before_prediction_time",
        "warehouse.raw_ohlcv_contract_scan",
        "warehouse.ml_predictions_freshness",
    ):
        assert any(line.startswith(check) and line.endswith("passed") for line in lines), check
    # WARN-severity failures are shown with their metadata and do not fail the command
    assert any("full_lookback" in line and "WARN     FAILED" in line for line in lines)

    # a corrupt bar restored from a backup, outside the window the command re-materialises: the
    # whole-table scan is an ERROR failure, named in the output
    with connect(fresh_database) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO raw_ohlcv (symbol, ts, open, high, low, close, volume, source) "
            "VALUES ('ETHUSDT', '2024-02-20T05:00Z', 10, 9, 11, 10, 1, 'restore')"
        )
    dirty = _run(fresh_database, tmp_path)
    assert dirty.returncode == 1
    assert any(
        line.startswith("warehouse.raw_ohlcv_contract_scan") and "FAILED" in line for line in dirty.stdout.splitlines()
    )
