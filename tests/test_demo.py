"""`make demo`'s program, run as a user runs it (a fresh process), on a throwaway database."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline_assets.store.db import connect


def test_demo_materialises_the_whole_graph_and_prints_a_summary(fresh_database, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "DAGSTER_"))}
    env["PIPELINE_DATABASE_URL"] = fresh_database
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline_assets.demo",
            "--days",
            "12",
            "--end",
            "2024-03-12",
            "--symbols",
            "BTCUSDT,ETHUSDT",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    assert "ingesting 12 days x 2 symbols (2024-03-01 .. 2024-03-12)" in out
    assert "predicting 4 out-of-sample days" in out
    assert "direction_xgboost v1 (champion)" in out and "quarantined rows: 0" in out
    assert "class_priors" in out and "persistence" in out and "verdict: the model" in out
    for member in ("direction_linear v1 (champion)", "direction_patterns v1 (champion)"):
        line = next(row for row in out.splitlines() if row.startswith(member))
        assert "held-out log loss" in line and "vs class priors" in line and "baselines" in line, line
    # the forward-return member beside its baselines, per horizon, with a verdict
    assert "return_ridge v1 (champion)" in out, out[-3000:]
    assert " 1h zero_return" in out and " 4h persistence" in out and " 4h training_mean" in out
    assert " 1h model squared error minus persistence:" in out
    assert "overall: the return model " in out
    # the demo is one asset backfill: ingestion range, model, inference range, plus the online update
    assert "== demo summary: one asset backfill, 4 Dagster runs in" in out, out[-2000:]
    assert out.count(" SUCCESS ") == 3
    with connect(fresh_database) as conn:
        bars = conn.execute("SELECT count(*), count(DISTINCT symbol) FROM raw_ohlcv").fetchone()
        dashboard = conn.execute("SELECT min(ts)::date::text, max(ts)::date::text FROM dashboard_data").fetchone()
        learned = conn.execute("SELECT count(*) FROM online_model_learned_rows").fetchone()[0]
    assert bars == (12 * 24 * 2, 2)
    assert dashboard == ("2024-03-09", "2024-03-12")
    assert learned > 0


def test_demo_refuses_too_short_a_window():
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline_assets.demo", "--days", "5"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2 and "--days must be at least 12" in completed.stderr
