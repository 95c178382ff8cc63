"""Small helpers shared by the asset modules: run windows, clocks, metadata, retries."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
from dagster import AssetExecutionContext, Backoff, Failure, Jitter, MetadataValue, RetryPolicy

from pipeline_assets.partitions import days_between

PREVIEW_ROWS = 8

# Transient failures (connection lost, serialization failure, deadlock, exchange 5xx) are
# retried with backoff; contract violations raise dagster.Failure(allow_retries=False) instead.
TRANSIENT_RETRY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

# psycopg: connection lost or refused, serialization failure, deadlock, lock timeout.
_TRANSIENT_DB_ERRORS = (
    psycopg.OperationalError,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.LockNotAvailable,
)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the database or the exchange may answer next time. Query cancellations
    (statement timeout) and everything else are not: the same input would fail the same way."""
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return False
    if isinstance(exc, (*_TRANSIENT_DB_ERRORS, ConnectionError, TimeoutError)):
        return True
    try:
        import ccxt  # the exchange source's errors: timeouts, 5xx, 429 are NetworkError subclasses
    except ImportError:  # pragma: no cover - ccxt is a dependency
        return False
    return isinstance(exc, ccxt.NetworkError)


def transient_only(fn: Callable) -> Callable:
    """Let TRANSIENT_RETRY retry only transient failures: any other exception becomes a
    Failure(allow_retries=False) naming the asset, so a contract violation or a bug fails once."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Failure:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise
            raise Failure(f"{fn.__name__}: {type(exc).__name__}: {exc}", allow_retries=False) from exc

    return wrapper


# Concurrency pool of every step that writes the warehouse (limit in dagster.yaml `concurrency`).
WAREHOUSE_POOL = "warehouse"

OWNERS = ["team:market-data"]
ML_OWNERS = ["team:quant-ml"]


@dataclass(frozen=True)
class RunWindow:
    """The days one run materialises: a single partition or a range (backfill policy)."""

    start: datetime
    end: datetime
    days: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.days[0] if len(self.days) == 1 else f"{self.days[0]}..{self.days[-1]}"


def run_window(context: AssetExecutionContext) -> RunWindow:
    window = context.partition_time_window
    start = window.start.astimezone(UTC)
    end = window.end.astimezone(UTC)
    return RunWindow(start, end, tuple(days_between(start, end)))


def utc_now() -> datetime:
    return datetime.now(UTC)


def closed_bars_end(window_end: datetime, now: datetime | None = None) -> datetime:
    """End of the range of hourly bars that have closed: a bar opening at t closes at t + 1h,
    so bars with open time < floor_hour(now) are final. Never ingest a bar still forming."""
    now = now or utc_now()
    return min(window_end, now.replace(minute=0, second=0, microsecond=0))


def frame_metadata(frame: pd.DataFrame, ts_column: str = "ts") -> dict:
    # "rows_in_run": each day's own event carries "rows" (add_day_metadata); a run-level "rows"
    # would be copied onto every day's event of a range run.
    metadata: dict = {"rows_in_run": MetadataValue.int(len(frame))}
    if len(frame) and ts_column in frame.columns:
        metadata["first_ts"] = MetadataValue.text(frame[ts_column].min().isoformat())
        metadata["last_ts"] = MetadataValue.text(frame[ts_column].max().isoformat())
        metadata["preview"] = MetadataValue.md(frame.head(PREVIEW_ROWS).to_markdown(index=False, floatfmt=".6g"))
    return metadata


def stats_metadata(stats) -> dict:
    return {k: MetadataValue.int(v) for k, v in stats.as_metadata().items()}


def hours_in(start: datetime, end: datetime) -> int:
    return max(0, int((end - start) / timedelta(hours=1)))


def rows_per_day(frame: pd.DataFrame, days: Iterable[str], ts_column: str = "ts") -> dict[str, int]:
    """Row count per UTC day key (0 for days without rows)."""
    counts = dict.fromkeys(days, 0)
    if len(frame):
        per_day = frame[ts_column].dt.strftime("%Y-%m-%d").value_counts()
        for day, count in per_day.items():
            if day in counts:
                counts[day] = int(count)
    return counts


BULKY_METADATA_CHARS = 200


def run_metadata(context: AssetExecutionContext, window: RunWindow, metadata: Mapping) -> dict:
    """Run-level metadata for a MaterializeResult. Dagster copies run-level metadata onto every
    partition's event of a range run; bulky values (previews, tables) are attached to the last
    day's event only, so a year's backfill does not store 365 copies of them."""
    if len(window.days) == 1:
        return dict(metadata)
    light, bulky = {}, {}
    for key, value in metadata.items():
        raw = value.value if isinstance(value, MetadataValue) else value
        (bulky if len(str(raw)) > BULKY_METADATA_CHARS else light)[key] = value
    if bulky:
        context.add_asset_metadata(bulky, partition_key=window.days[-1])
    return light


def missing_symbols_per_day(frame: pd.DataFrame, days: Iterable[str], symbols: Iterable[str]) -> dict[str, list[str]]:
    """Per day key, the symbols without a row in ``frame`` (symbol, ts) that day."""
    present = set(zip(frame["ts"].dt.strftime("%Y-%m-%d"), frame["symbol"], strict=True)) if len(frame) else set()
    symbols = list(symbols)
    return {day: [s for s in symbols if (day, s) not in present] for day in days}


def add_day_metadata(context: AssetExecutionContext, per_day: Mapping[str, Mapping]) -> None:
    """Per-partition metadata inside a range run: each day's materialisation event carries its
    own figures (the run-level metadata is shared by all of them)."""
    for day, metadata in per_day.items():
        context.add_asset_metadata(dict(metadata), partition_key=day)


def symbol_day_table(missing: Mapping[str, list[str]], limit: int = 40) -> MetadataValue:
    """Markdown table of (day -> symbols) for missing data reports."""
    rows = [{"day": day, "symbols": ", ".join(symbols)} for day, symbols in sorted(missing.items()) if symbols]
    if not rows:
        return MetadataValue.md("none")
    more = f"\n\n(+{len(rows) - limit} more days)" if len(rows) > limit else ""
    return MetadataValue.md(pd.DataFrame(rows[:limit]).to_markdown(index=False) + more)


def daily_asset(*, automated: bool = True, **kwargs):
    """@asset for the range-first daily assets: daily partitions with every symbol inside, the
    single-run backfill policy, transient-only retries, the warehouse pool and (unless
    ``automated`` is False or a condition is given) the correction-aware automation condition."""
    from dagster import asset

    from pipeline_assets.automation.conditions import correction_aware
    from pipeline_assets.partitions import daily_partitions, range_backfill_policy

    settings = {
        "partitions_def": daily_partitions,
        "backfill_policy": range_backfill_policy,
        "kinds": {"postgres"},
        "code_version": "2",
        "owners": ML_OWNERS,
        "retry_policy": TRANSIENT_RETRY,
        "pool": WAREHOUSE_POOL,
    }
    if automated and "automation_condition" not in kwargs:
        settings["automation_condition"] = correction_aware()
    return asset(**{**settings, **kwargs})
