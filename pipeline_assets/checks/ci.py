"""Every asset check the UI shows, executed as users run them, on a small window of the whole graph.

    python -m pipeline_assets.checks.ci [--days 12] [--end 2024-03-12] [--symbols ...]

Materialises the graph as one asset backfill (the demo's), then runs the whole-warehouse checks
with freshness judged at the window's end, prints every check evaluation (per-partition checks
from the materialising runs and whole-table checks) and exits 1 if any ERROR-severity check
failed, naming it with its metadata. WARN-severity failures (gaps, a model that loses to its
baseline, drift) are printed and do not fail the command.
Uses PIPELINE_DATABASE_URL, else the embedded PostgreSQL (with TimescaleDB when built).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from datetime import date, datetime, timedelta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--end", default="2024-03-12", help="last day of the window (fixed, past)")
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    last = date.fromisoformat(args.end)
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    url = os.environ.get("PIPELINE_DATABASE_URL")
    if not url:
        from pipeline_assets.local_db import database_url

        url, _server = database_url()
    home = tempfile.TemporaryDirectory(prefix="pipeline_ci_checks_") if not os.environ.get("DAGSTER_HOME") else None
    if home is not None:
        os.environ["DAGSTER_HOME"] = home.name
    window_end = datetime.combine(last + timedelta(days=1), datetime.min.time()).isoformat() + "+00:00"
    os.environ["PIPELINE_FRESHNESS_AS_OF"] = window_end

    from pipeline_assets.demo import run_demo

    run_demo(args.days, symbols, last, url, echo=lambda line: None)

    from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter

    from pipeline_assets.definitions import defs

    instance = DagsterInstance.get()
    defs.resolve_job_def("warehouse_checks_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    )
    with (
        warnings.catch_warnings()
    ):  # get_event_records is deprecated for 2.0; 1.13 has no other reader of all evaluations
        warnings.simplefilter("ignore", DeprecationWarning)
        records = instance.get_event_records(
            EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION), ascending=True
        )
    failed_errors = 0
    print(f"{'check':<62} {'severity':<8} result")
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        severity = evaluation.severity.value
        result = "passed" if evaluation.passed else "FAILED"
        print(f"{name:<62} {severity:<8} {result}")
        if not evaluation.passed:
            details = {k: str(v.value)[:200] for k, v in evaluation.metadata.items()}
            print(f"    {details}")
            failed_errors += severity == "ERROR"
    print(f"{len(records)} check evaluations, {failed_errors} ERROR-severity failure(s)")
    return 1 if failed_errors or not records else 0


if __name__ == "__main__":
    raise SystemExit(main())
