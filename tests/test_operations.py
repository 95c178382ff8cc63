"""Operating the pipeline: alerts reach a webhook, dead runs are failed by the daemon's sensor,
deployment configuration loads with the installed Dagster packages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance, DagsterRunStatus, build_run_status_sensor_context, build_sensor_context
from dagster_helpers import run_assets

from pipeline_assets.automation.alerts import (
    AlertDeliveryError,
    failed_check_alert_sensor,
    failed_run_alert_sensor,
    send_alert,
)
from pipeline_assets.resources import MarketDataResource
from pipeline_assets.sources.csv_dir import write_csv
from pipeline_assets.sources.synthetic import SyntheticMarket

REPO = Path(__file__).resolve().parents[1]


class _Collector(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(monkeypatch):
    _Collector.received = []
    _Collector.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/alerts"
    monkeypatch.setenv("PIPELINE_ALERT_WEBHOOK_URL", url)
    try:
        yield _Collector
    finally:
        server.shutdown()


def test_alerts_post_json_and_refusals_are_loud(webhook):
    assert send_alert("drift", "model 3 drifted", "log loss 1.2 > 1.1", run_id="r1") is True
    assert webhook.received[-1]["kind"] == "drift" and webhook.received[-1]["run_id"] == "r1"
    webhook.status = 500
    with pytest.raises(AlertDeliveryError, match="answered HTTP 500|unreachable"):
        send_alert("drift", "x", "y")


def test_no_webhook_configured_sends_nothing(monkeypatch):
    monkeypatch.delenv("PIPELINE_ALERT_WEBHOOK_URL", raising=False)
    assert send_alert("drift", "x", "y") is False


def test_failed_runs_and_failed_checks_alert_once(webhook, warehouse_url, tmp_path):
    instance = DagsterInstance.ephemeral()
    bars = SyntheticMarket().ohlcv("BTCUSDT", datetime(2024, 3, 5, tzinfo=UTC), datetime(2024, 3, 6, tzinfo=UTC))
    write_csv(bars.assign(close=np.nan), tmp_path / "BTCUSDT.csv")
    market = MarketDataResource(ohlcv_source="csv", csv_directory=str(tmp_path))
    failed = run_assets(["raw_ohlcv"], warehouse_url, "2024-03-05", instance, market=market, raise_on_error=False)
    assert not failed.success
    run = instance.get_run_by_id(failed.run_id)
    failure_event = instance.all_logs(failed.run_id)[-1].dagster_event
    context = build_run_status_sensor_context(
        sensor_name="failed_run_alert_sensor", dagster_event=failure_event, dagster_instance=instance, dagster_run=run
    ).for_run_failure()
    failed_run_alert_sensor(context)
    assert webhook.received[-1]["kind"] == "run_failure" and webhook.received[-1]["run_id"] == failed.run_id

    # a run whose complete_day check fails (only one symbol has bars): one alert per failed evaluation
    write_csv(bars, tmp_path / "BTCUSDT.csv")
    run_assets(["raw_ohlcv"], warehouse_url, "2024-03-05", instance, market=market)
    sensor_context = build_sensor_context(instance=instance)
    failed_check_alert_sensor(sensor_context)
    checks = [a for a in webhook.received if a["kind"] == "check_failure"]
    assert [a["check"] for a in checks] == ["complete_day"] and checks[0]["severity"] == "WARN"
    failed_check_alert_sensor(build_sensor_context(instance=instance, cursor=sensor_context.cursor))
    assert len([a for a in webhook.received if a["kind"] == "check_failure"]) == 1


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_the_daemon_fails_a_run_whose_process_was_killed(warehouse_url, tmp_path):
    """kill -9 of a backfill command in the middle of its run leaves the run STARTED; once the
    daemon runs, dead_run_sensor marks it FAILURE instead of leaving it started forever."""
    from pipeline_assets.automation.run_health import LAUNCHER_PID_TAG
    from pipeline_assets.dagster_home import prepare
    from pipeline_assets.store.locks import exclusive

    home = tmp_path / "home"
    home.mkdir()
    prepare(home, environ={})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "PIPELINE_"))}
    env.update({"DAGSTER_HOME": str(home), "PIPELINE_DATABASE_URL": warehouse_url})
    daemon = None
    # raw_ohlcv's writer lock for BTCUSDT: the backfill's run blocks inside its write.
    with exclusive(warehouse_url, "raw_ohlcv:BTCUSDT"):
        backfill = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline_assets",
                "backfill",
                "--start",
                "2024-03-05",
                "--end",
                "2024-03-05",
                "--select",
                "raw_ohlcv",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with DagsterInstance.from_config(str(home)) as instance:

                def started():
                    runs = instance.get_runs(limit=1)
                    return runs[0] if runs and runs[0].status == DagsterRunStatus.STARTED else None

                run = _wait_for(started, 120, "the backfill's run to start")
                assert run.tags[LAUNCHER_PID_TAG] == str(backfill.pid)
                backfill.send_signal(signal.SIGKILL)
                backfill.wait(timeout=30)
                time.sleep(2)
                assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # stuck
                daemon = subprocess.Popen(
                    [sys.executable, "-m", "dagster._daemon", "run", "-w", str(REPO / "workspace.yaml")],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                _wait_for(
                    lambda: instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE,
                    150,
                    "dead_run_sensor to fail the run",
                )
                messages = [e.message for e in instance.all_logs(run.run_id) if e.message]
                assert any(f"run worker process {backfill.pid} no longer exists" in m for m in messages), messages[-4:]
        finally:
            if backfill.poll() is None:
                backfill.kill()
            if daemon is not None:
                os.killpg(daemon.pid, signal.SIGTERM)
                daemon.wait(timeout=60)
