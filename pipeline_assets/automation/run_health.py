"""Runs whose process died are marked failed.

With the default run launcher (runs as subprocesses of the code server on the daemon's machine),
Dagster's run monitoring cannot see a run worker that was killed (`kill -9`, OOM killer): the run
stays STARTED forever and blocks the queue's concurrency slots. This sensor reads the pid the
run worker reported when it started and, when that process no longer exists, reports the run
failed. It acts only under the default launcher: container launchers (dagster-k8s, docker) have
run monitoring of their own (`run_monitoring` in deploy/dagster-postgres.yaml).
Jobs also carry `dagster/max_runtime`, which run monitoring enforces for a run still alive.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.launcher import DefaultRunLauncher

from pipeline_assets.automation.alerts import send_alert

STARTED = [DagsterRunStatus.STARTED]


LAUNCHER_PID_TAG = "pipeline_assets/launcher_pid"
LAUNCHER_HOST_TAG = "pipeline_assets/launcher_host"


def run_worker_pid(instance, run) -> int | None:
    """The pid the run worker reported in its 'Started process for run' engine event, or, for runs
    executed in process by the backfill command on this host, that command's pid (a run tag)."""
    if run.tags.get(LAUNCHER_HOST_TAG) == socket.gethostname() and LAUNCHER_PID_TAG in run.tags:
        return int(run.tags[LAUNCHER_PID_TAG])
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = data.metadata.get("pid") if data and data.metadata else None
        if pid is not None:
            return int(pid.value)
    return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@sensor(default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def dead_run_sensor(context: SensorEvaluationContext):
    """Mark STARTED runs whose worker process is gone as FAILURE (default run launcher only)."""
    instance = context.instance
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return SkipReason(f"{type(instance.run_launcher).__name__} has run monitoring of its own")
    failed = []
    for run in instance.get_runs(filters=RunsFilter(statuses=STARTED), limit=200):
        pid = run_worker_pid(instance, run)
        if pid is None or process_alive(pid):
            continue
        message = (
            f"run worker process {pid} no longer exists (killed or out of memory); marked failed by "
            f"dead_run_sensor at {datetime.now(UTC).isoformat()}"
        )
        instance.report_run_failed(run, message)
        failed.append(run.run_id)
        send_alert("run_died", f"run {run.run_id[:8]} of {run.job_name} died", message, run_id=run.run_id)
    return SkipReason(f"marked {len(failed)} dead run(s) failed: {failed}" if failed else "every started run is alive")
