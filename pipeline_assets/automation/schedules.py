"""Schedules where time is the trigger: hourly ingestion, daily retraining, challenger review and
warehouse checks.
Everything downstream of ingestion follows by declarative automation (automation/conditions.py)."""

from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from pipeline_assets.assets.models import RETRAINED_MODELS, retrain_run_config
from pipeline_assets.automation.jobs import challenger_review_job, ingestion_job, retrain_job, warehouse_checks_job
from pipeline_assets.ml.labels import HORIZON_HOURS

# In the first hours of a day, yesterday is re-run too: its last bars close after midnight
# and its last labels mature HORIZON_HOURS + 1 hours into today.
CATCH_UP_HOURS = HORIZON_HOURS + 2


def _days_to_refresh(context: ScheduleEvaluationContext) -> list[str]:
    now = context.scheduled_execution_time
    days = []
    if now.hour < CATCH_UP_HOURS:
        days.append((now - timedelta(days=1)).strftime("%Y-%m-%d"))
    if now.hour >= 1:  # before 01:00 no bar of today has closed, so today has nothing to ingest
        days.append(now.strftime("%Y-%m-%d"))
    return days


@schedule(cron_schedule="5 * * * *", job=ingestion_job, execution_timezone="UTC")
def hourly_ingestion_schedule(context: ScheduleEvaluationContext):
    """Every hour, five minutes past: re-ingest today's partition (every symbol inside; idempotent
    upserts pick up the bars that closed since the last run), and yesterday's in the first hours."""
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H")
    for day in _days_to_refresh(context):
        yield RunRequest(run_key=f"ingest|{day}|{stamp}", partition_key=day)


@schedule(cron_schedule="30 0 * * *", job=retrain_job, execution_timezone="UTC")
def daily_retrain_schedule(context: ScheduleEvaluationContext):
    """Daily retrain on everything matured by the scheduled time."""
    when = context.scheduled_execution_time
    return RunRequest(
        run_key=f"retrain|{when.strftime('%Y-%m-%d')}",
        run_config=retrain_run_config(when, models=RETRAINED_MODELS),
    )


@schedule(cron_schedule="45 1 * * *", job=challenger_review_job, execution_timezone="UTC")
def daily_challenger_review_schedule(context: ScheduleEvaluationContext):
    """Daily, after yesterday's last hours were predicted (shadow rows included) and before the
    next retrain: challengers are judged on every label matured by then."""
    return RunRequest(run_key=f"challenger-review|{context.scheduled_execution_time.strftime('%Y-%m-%d')}")


@schedule(cron_schedule="15 2 * * *", job=warehouse_checks_job, execution_timezone="UTC")
def daily_warehouse_checks_schedule(context: ScheduleEvaluationContext):
    """Daily whole-table contract and leakage scans."""
    return RunRequest(run_key=f"checks|{context.scheduled_execution_time.strftime('%Y-%m-%d')}")
