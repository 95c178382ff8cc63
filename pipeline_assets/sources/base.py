"""What a market data source provides, and how it fails."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import pandas as pd

OHLCV_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
HEADLINE_COLUMNS = ("published_at", "symbol", "source", "headline")


class SourceError(Exception):
    pass


class SourceDataMissing(SourceError):
    pass


class SourceFormatError(SourceError):
    pass


class OhlcvSource(Protocol):
    name: str

    def ohlcv(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Hourly bars with bar-open time ``ts`` (UTC) in [start, end)."""
        ...


class HeadlineSource(Protocol):
    name: str

    def headlines(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Headlines about ``symbol`` with ``published_at`` (UTC) in [start, end)."""
        ...


def require_utc_window(start: datetime, end: datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None:
            raise ValueError(f"{name}={value!r} is naive; pass a UTC datetime")
    start_ts, end_ts = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    if start_ts >= end_ts:
        raise ValueError(f"empty window: start {start_ts.isoformat()} >= end {end_ts.isoformat()}")
    return start_ts, end_ts
