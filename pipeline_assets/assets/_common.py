"""Small helpers shared by the asset modules: clocks, metadata, failures."""

from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import MetadataValue

PREVIEW_ROWS = 8


def utc_now() -> datetime:
    return datetime.now(UTC)


def closed_bars_end(window_end: datetime, now: datetime | None = None) -> datetime:
    """End of the range of hourly bars that have closed: a bar opening at t closes at t + 1h,
    so bars with open time < floor_hour(now) are final. Never ingest a bar still forming."""
    now = now or utc_now()
    return min(window_end, now.replace(minute=0, second=0, microsecond=0))


def frame_metadata(frame: pd.DataFrame, ts_column: str = "ts") -> dict:
    metadata: dict = {"rows": MetadataValue.int(len(frame))}
    if len(frame) and ts_column in frame.columns:
        metadata["first_ts"] = MetadataValue.text(frame[ts_column].min().isoformat())
        metadata["last_ts"] = MetadataValue.text(frame[ts_column].max().isoformat())
        metadata["preview"] = MetadataValue.md(frame.head(PREVIEW_ROWS).to_markdown(index=False, floatfmt=".6g"))
    return metadata


def stats_metadata(stats) -> dict:
    return {k: MetadataValue.int(v) for k, v in stats.as_metadata().items()}


def hours_in(start: datetime, end: datetime) -> int:
    return max(0, int((end - start) / timedelta(hours=1)))
