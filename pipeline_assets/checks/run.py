"""Run the whole-warehouse asset checks and exit non-zero if any fails (for CI and cron).

PIPELINE_DATABASE_URL=... python -m pipeline_assets.checks.run
"""

import os
import sys

from dagster import DagsterInstance


def main(argv: list[str] | None = None) -> int:
    from pipeline_assets.definitions import defs

    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    result = defs.resolve_job_def("warehouse_checks_job").execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    evaluations = result.get_asset_check_evaluations()
    failed = 0
    for evaluation in evaluations:
        status = "passed" if evaluation.passed else "FAILED"
        failed += not evaluation.passed
        details = {k: v.value for k, v in evaluation.metadata.items() if k != "first_violations"}
        print(f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}: {status} {details}")
    if not result.success or not evaluations:
        print("warehouse_checks_job did not complete", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
