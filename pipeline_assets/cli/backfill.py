"""Asset backfills driven from the command line, recorded in the Dagster instance like a UI backfill.

    python -m pipeline_assets backfill --start 2019-04-01 --end 2019-06-30 \
        [--symbols BTCUSD,ETHUSD] [--source synthetic|exchange|csv [--csv-dir DIR]]
        [--select raw_ohlcv,ml_features_ohlcv,...]

The backfill is created with Dagster's own `PartitionBackfill` (so `make dev` shows it under
Backfills with its runs, per-partition materialisations and check results) and executed by
Dagster's own backfill logic (`execute_backfill_iteration`, the daemon's loop body) in this
process, with runs executed in process: no daemon needs to be running, and each asset's
`BackfillPolicy` decides how many runs there are (single run per asset group for the range).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import psycopg

from pipeline_assets.store.migrate import MigrationError

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCATION_NAME = "pipeline_assets"  # same as workspace.yaml, so the UI links the runs to its code
IN_PROCESS_OVERRIDES = {
    # Runs execute synchronously in this process; queued coordinators would wait for a daemon.
    "run_launcher": {
        "module": "dagster._core.launcher.sync_in_memory_run_launcher",
        "class": "SyncInMemoryRunLauncher",
    },
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
}


class BackfillError(RuntimeError):
    pass


@dataclass
class BackfillOutcome:
    backfill_id: str
    status: str
    runs: int
    failed_runs: list[str]
    seconds: float
    per_asset: dict[str, int] = field(default_factory=dict)
    # One line per failed step: "asset: cause" (the Failure's own message, no traceback).
    failures: list[str] = field(default_factory=list)


QUIET_RUNS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def failure_lines(instance, run_id: str) -> list[str]:
    """The first line of each failed step's error: what a user needs, without Dagster's stack."""
    from dagster import DagsterEventType

    lines = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        error = entry.dagster_event.step_failure_data.error
        while (
            error is not None
            and error.cause is not None
            and "DagsterExecutionStepExecutionError" in (error.cls_name or "")
        ):
            error = error.cause
        message = (error.message if error else entry.message or "").strip().splitlines()
        lines.append(f"{entry.dagster_event.step_key}: {message[0] if message else 'failed'}")
    return lines


def configure_environment(
    *,
    symbols: Sequence[str] | None,
    partition_start: str | None,
    source: str | None = None,
    csv_dir: str | None = None,
    database_url: str | None = None,
) -> None:
    """Set the variables the code location reads at import time (before it is imported)."""
    if symbols:
        os.environ["PIPELINE_SYMBOLS"] = ",".join(symbols)
    if partition_start:
        os.environ["PIPELINE_PARTITION_START"] = partition_start
    if source == "csv":
        if not csv_dir:
            raise BackfillError("--source csv needs --csv-dir DIR")
        directory = Path(csv_dir)
        if not directory.is_dir():
            raise BackfillError(f"--csv-dir {directory} is not a directory")
        os.environ["PIPELINE_CSV_DIR"] = str(directory.resolve())
        os.environ["PIPELINE_MARKET_SOURCE"] = "csv"
    elif source in ("synthetic", "exchange"):
        os.environ.pop("PIPELINE_CSV_DIR", None)
        os.environ["PIPELINE_MARKET_SOURCE"] = source
    if database_url:
        os.environ["PIPELINE_DATABASE_URL"] = database_url
    loaded = sys.modules.get("pipeline_assets.partitions")
    if loaded is not None:
        wanted_symbols = tuple(os.environ["PIPELINE_SYMBOLS"].split(",")) if symbols else loaded.SYMBOLS
        if tuple(loaded.SYMBOLS) != wanted_symbols or (
            partition_start and loaded.daily_partitions.start.date().isoformat() != partition_start
        ):
            raise BackfillError(
                "pipeline_assets.partitions was imported with other symbols or start date; run in a fresh process"
            )


def open_instance():
    """The instance of DAGSTER_HOME, with runs launched in this process."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise BackfillError("DAGSTER_HOME is not set; the backfill must be recorded in a Dagster instance")
    Path(home).mkdir(parents=True, exist_ok=True)
    if not (Path(home) / "dagster.yaml").exists():
        from pipeline_assets.dagster_home import prepare

        prepare(Path(home))  # the project's instance config (telemetry off, storage from the environment)
    return DagsterInstance.from_ref(InstanceRef.from_dir(home, overrides=IN_PROCESS_OVERRIDES))


HEARTBEAT_FRESH_SECONDS = 90


def backfill_daemon_alive(instance) -> bool:
    """True when a dagster-daemon with a backfill daemon heartbeated recently on this instance:
    then it executes the backfill (with the instance's own run launcher) and this process must not
    run iterations too, or both would launch runs for the same partitions."""
    from dagster._time import get_current_timestamp

    heartbeat = instance.get_daemon_heartbeats().get("BACKFILL")
    return heartbeat is not None and get_current_timestamp() - heartbeat.timestamp < HEARTBEAT_FRESH_SECONDS


def run_asset_backfill(
    instance,
    targets: Mapping[str, Sequence[str] | None],
    *,
    title: str,
    run_config: Mapping | None = None,
    echo: Callable[[str], None] = print,
    poll_seconds: float = 0.0,
) -> BackfillOutcome:
    """Create an asset backfill of ``targets`` (asset name -> day keys, or None for an
    unpartitioned asset) and run Dagster's backfill iterations until it is done."""
    # Dagster's own backfill machinery (the daemon's loop body); internal modules, pinned by the
    # dagster version range in pyproject.toml and exercised by tests/test_backfill_cli.py.
    from dagster import AssetKey
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.utils import make_new_backfill_id
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster._time import get_current_timestamp

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable, module_name="pipeline_assets.definitions", working_directory=str(REPO_ROOT)
        ),
        location_name=LOCATION_NAME,
    )
    logger = logging.getLogger("pipeline_assets.backfill")
    # Dagster's in-process run context leaves an event loop's async generators unawaited on exit.
    warnings.filterwarnings("ignore", message="coroutine 'BaseEventLoop.shutdown_asyncgens' was never awaited")
    started = time.monotonic()
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace:
        asset_graph = workspace.create_request_context().asset_graph
        partitions_by_key: dict = {}
        unpartitioned = set()
        for name, days in targets.items():
            key = AssetKey(name)
            if not asset_graph.has(key):
                raise BackfillError(f"no asset named {name!r} in the code location")
            partitions_def = asset_graph.get(key).partitions_def
            if partitions_def is None:
                unpartitioned.add(key)
                continue
            if not days:
                raise BackfillError(f"asset {name} is partitioned; give it days")
            partitions_by_key[key] = partitions_def.subset_with_partition_keys(list(days))
        subset = AssetGraphSubset(
            partitions_subsets_by_asset_key=partitions_by_key, non_partitioned_asset_keys=unpartitioned
        )
        backfill = PartitionBackfill.from_asset_graph_subset(
            backfill_id=make_new_backfill_id(),
            backfill_timestamp=get_current_timestamp(),
            tags={
                "pipeline_assets/launched_by": "cli",
                # Lets dead_run_sensor fail these runs if this process is killed mid-backfill.
                "pipeline_assets/launcher_pid": str(os.getpid()),
                "pipeline_assets/launcher_host": socket.gethostname(),
            },
            dynamic_partitions_store=instance,
            asset_graph_subset=subset,
            title=title,
            description=f"{title} (pipeline_assets CLI)",
            run_config=run_config,
        )
        instance.add_backfill(backfill)
        delegated = backfill_daemon_alive(instance)
        echo(
            f"backfill {backfill.backfill_id}: {title}"
            + (" (a running dagster-daemon executes it; waiting)" if delegated else "")
        )
        seen_runs: set[str] = set()
        while True:
            if delegated:
                time.sleep(max(poll_seconds, 2.0))
            else:
                for _ in execute_backfill_iteration(workspace, logger):
                    pass
            current = instance.get_backfill(backfill.backfill_id)
            runs = instance.get_runs(filters=_backfill_filter(backfill.backfill_id))
            for run in sorted(runs, key=lambda r: r.run_id):
                if run.run_id in seen_runs or not run.is_finished:
                    continue
                seen_runs.add(run.run_id)
                stats = instance.get_run_stats(run.run_id)
                elapsed = (stats.end_time or 0) - (stats.launch_time or stats.start_time or 0)
                partition_range = _run_partitions(run)
                status = run.status.value
                echo(f"  run {run.run_id[:8]} {status:<8} {elapsed:6.1f}s  {partition_range}")
                for asset, (rows, seconds) in _stage_figures(instance, run.run_id).items():
                    echo(f"      {asset:<26} {rows:>10,} rows {seconds:7.1f}s")
            if current.status not in (BulkActionStatus.REQUESTED,):
                break
            if poll_seconds:
                time.sleep(poll_seconds)
        runs = instance.get_runs(filters=_backfill_filter(backfill.backfill_id))
        failed = [r.run_id for r in runs if r.status.value != "SUCCESS"]
        failures = [line for run_id in failed for line in failure_lines(instance, run_id)]
    return BackfillOutcome(
        failures=failures,
        backfill_id=backfill.backfill_id,
        status=current.status.value,
        runs=len(runs),
        failed_runs=failed,
        seconds=round(time.monotonic() - started, 1),
    )


def _stage_figures(instance, run_id: str) -> dict[str, tuple[int, float]]:
    """Per asset of a finished run: rows (summed over its per-day materialisations) and step seconds."""
    from dagster import DagsterEventType

    figures: dict[str, list] = {}
    started: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started[event.step_key] = entry.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS and event.step_key in started:
            figures.setdefault(event.step_key, [0, 0.0])[1] = entry.timestamp - started[event.step_key]
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            rows = materialization.metadata.get("rows")
            key = event.step_key or materialization.asset_key.to_user_string()
            figures.setdefault(key, [0, 0.0])[0] += int(rows.value) if rows is not None else 0
    return {k: (v[0], v[1]) for k, v in figures.items()}


def _backfill_filter(backfill_id: str):
    from dagster import RunsFilter
    from dagster._core.storage.tags import BACKFILL_ID_TAG

    return RunsFilter(tags={BACKFILL_ID_TAG: backfill_id})


def _run_partitions(run) -> str:
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
        PARTITION_NAME_TAG,
    )

    tags = run.tags
    if ASSET_PARTITION_RANGE_START_TAG in tags:
        return f"{tags[ASSET_PARTITION_RANGE_START_TAG]}..{tags[ASSET_PARTITION_RANGE_END_TAG]}"
    return tags.get(PARTITION_NAME_TAG, "(unpartitioned)")


def day_keys(first: date, last: date) -> list[str]:
    if last < first:
        raise BackfillError(f"--end {last} is before --start {first}")
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline_assets backfill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", required=True, type=date.fromisoformat, help="last day, YYYY-MM-DD")
    parser.add_argument("--symbols", help="comma separated (default: PIPELINE_SYMBOLS or the built-in four)")
    parser.add_argument(
        "--source",
        choices=["synthetic", "csv", "exchange"],
        help="bar source (default: PIPELINE_MARKET_SOURCE, else csv when PIPELINE_CSV_DIR is set, else synthetic); "
        "exchange reads PIPELINE_EXCHANGE and PIPELINE_MARKET_TYPE",
    )
    parser.add_argument("--csv-dir", help="directory with SYMBOL.csv or SYMBOL/*.csv (with --source csv)")
    parser.add_argument("--select", help="comma separated asset names (default: every daily asset)")
    parser.add_argument("--database-url", help="warehouse (default: PIPELINE_DATABASE_URL, else the embedded one)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        days = day_keys(args.start, args.end)
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
        partition_start = min(args.start, date.fromisoformat(os.environ.get("PIPELINE_PARTITION_START", "9999-12-31")))
        # Everything the user typed is checked before a database server is started.
        configure_environment(
            symbols=symbols, partition_start=partition_start.isoformat(), source=args.source, csv_dir=args.csv_dir
        )
        database_url = args.database_url or os.environ.get("PIPELINE_DATABASE_URL")
        server = None
        if not database_url:
            from pipeline_assets.local_db import database_url as embedded_url

            database_url, server = embedded_url()
        configure_environment(symbols=None, partition_start=None, database_url=database_url)
        from pipeline_assets.definitions import DAILY_ASSET_NAMES

        names = [n.strip() for n in args.select.split(",")] if args.select else list(DAILY_ASSET_NAMES)
        instance = open_instance()
        outcome = run_asset_backfill(
            instance, {n: days for n in names}, title=f"backfill {days[0]}..{days[-1]}", run_config=QUIET_RUNS
        )
    except BackfillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, MigrationError, psycopg.OperationalError) as exc:
        # Configuration and connection problems: one line naming the setting, not a traceback.
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"backfill {outcome.backfill_id}: {outcome.status}, {outcome.runs} runs in {outcome.seconds}s")
    for line in outcome.failures:
        print(f"error: {line}", file=sys.stderr)
    if server is not None:
        print(f"warehouse: {database_url}")
    return 0 if not outcome.failed_runs and outcome.status == "COMPLETED_SUCCESS" else 1
