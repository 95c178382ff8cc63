"""Alerts to a webhook: failed runs, failed asset checks, drift.

PIPELINE_ALERT_WEBHOOK_URL names an HTTP(S) endpoint that receives one JSON POST per alert
({"kind", "title", "detail", "run_id"?, "asset"?, "check"?, "sent_at"}); unset = alerts only in
the Dagster UI and logs. Slack/Teams/Opsgenie incoming webhooks accept such posts through their
own adapters; the payload is deliberately flat.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime

from dagster import (
    DagsterEventType,
    DefaultSensorStatus,
    EventRecordsFilter,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

WEBHOOK_ENV = "PIPELINE_ALERT_WEBHOOK_URL"
TIMEOUT_SECONDS = 10


class AlertDeliveryError(RuntimeError):
    pass


def send_alert(kind: str, title: str, detail: str, url: str | None = None, **fields) -> bool:
    """POST one alert; returns False when no webhook is configured. Raises AlertDeliveryError
    (naming the URL's host and the HTTP status) when the endpoint refuses it."""
    url = url or os.environ.get(WEBHOOK_ENV)
    if not url:
        return False
    payload = {
        "kind": kind,
        "title": title,
        "detail": detail[:4000],
        "sent_at": datetime.now(UTC).isoformat(),
        **fields,
    }
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            if response.status >= 300:
                raise AlertDeliveryError(f"alert webhook {request.host} answered HTTP {response.status}")
    except urllib.error.URLError as exc:
        raise AlertDeliveryError(f"alert webhook {request.host} unreachable: {exc}") from exc
    return True


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def failed_run_alert_sensor(context: RunFailureSensorContext):
    """Every failed run of the code location posts an alert (no-op without a webhook)."""
    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    send_alert("run_failure", f"run {run.run_id[:8]} of {run.job_name} failed", message, run_id=run.run_id)


@sensor(default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=60)
def failed_check_alert_sensor(context: SensorEvaluationContext):
    """Every failed asset check evaluation (ERROR or WARN severity) posts an alert; the cursor is
    the event storage id, so each evaluation alerts once."""
    after = int(context.cursor) if context.cursor else None
    records = context.instance.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=after), ascending=True, limit=500
    )
    if not records:
        return SkipReason("no new check evaluations")
    sent = 0
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            severity = evaluation.severity.value
            send_alert(
                "check_failure",
                f"{severity} check {evaluation.asset_key.to_user_string()}.{evaluation.check_name} failed",
                json.dumps({k: str(v.value)[:300] for k, v in evaluation.metadata.items()}),
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                severity=severity,
                run_id=record.event_log_entry.run_id,
            )
            sent += 1
    context.update_cursor(str(records[-1].storage_id))
    return SkipReason(f"{sent} alert(s) sent for {len(records)} evaluation(s)")
