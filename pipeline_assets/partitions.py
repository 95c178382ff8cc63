"""Partitions: one daily UTC partition per day, with every configured symbol inside.

Why daily with all symbols inside (not date x symbol): Dagster gives a single backfill run for
a multi-partitioned asset only when the selection is a full date x symbol rectangle, and
partitioned-job backfills ignore asset backfill policies. With one daily dimension every
partitioned asset shares one `PartitionsDefinition` and one `BackfillPolicy`, so an asset
backfill over months of the whole graph becomes a handful of runs (see README, "Backfills").
Symbols are configuration (PIPELINE_SYMBOLS); a symbol that has no data for a day (it started
later, an exchange outage) is reported per day and symbol, never a failure of the others.

Configured from the environment at load time: PIPELINE_PARTITION_START (YYYY-MM-DD) and
PIPELINE_SYMBOLS (comma separated). Today's partition exists (end_offset=1) so hourly
ingestion can fill the current day as bars close.

Inside the warehouse, per-symbol bookkeeping (quarantine, watermarks) keeps a per
(day, symbol) key, ``symbol_day_key(day, symbol)`` = ``"YYYY-MM-DD|SYMBOL"``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from dagster import BackfillPolicy, DailyPartitionsDefinition, TimeWindowPartitionMapping

DEFAULT_PARTITION_START = "2024-01-01"
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
_SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,20}$")


class PartitionConfigError(ValueError):
    pass


def configured_symbols() -> tuple[str, ...]:
    """PIPELINE_SYMBOLS, or the defaults when the variable is unset. Set but empty is an error:
    silently falling back to the defaults would ingest symbols the user did not ask for."""
    raw = os.environ.get("PIPELINE_SYMBOLS")
    if raw is None:
        return DEFAULT_SYMBOLS
    symbols = tuple(s.strip().upper() for s in raw.split(",") if s.strip())
    if not symbols:
        raise PartitionConfigError(
            f"PIPELINE_SYMBOLS={raw!r} names no symbol; unset it for the defaults {','.join(DEFAULT_SYMBOLS)}"
        )
    bad = [s for s in symbols if not _SYMBOL_PATTERN.match(s)]
    if bad:
        raise PartitionConfigError(f"PIPELINE_SYMBOLS has invalid symbol(s) {bad} (2-20 letters or digits)")
    if len(set(symbols)) != len(symbols):
        raise PartitionConfigError(f"PIPELINE_SYMBOLS repeats a symbol: {raw!r}")
    return symbols


def configured_start() -> str:
    start = os.environ.get("PIPELINE_PARTITION_START", DEFAULT_PARTITION_START)
    try:
        datetime.strptime(start, "%Y-%m-%d")
    except ValueError as exc:
        raise PartitionConfigError(f"PIPELINE_PARTITION_START={start!r} is not YYYY-MM-DD") from exc
    return start


SYMBOLS = configured_symbols()
daily_partitions = DailyPartitionsDefinition(start_date=configured_start(), timezone="UTC", end_offset=1)

# Every partitioned asset shares this policy, so parents and children of a backfill over the
# same days run together in one run (Dagster groups assets with equal partitions and policy).
range_backfill_policy = BackfillPolicy.single_run()


def days_window(start_offset: int = 0, end_offset: int = 0) -> TimeWindowPartitionMapping:
    """A window of days around the partition's day (lookback / look-forward)."""
    return TimeWindowPartitionMapping(start_offset=start_offset, end_offset=end_offset)


def day_window(date_key: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(date_key, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise PartitionConfigError(f"date partition key {date_key!r} is not YYYY-MM-DD") from exc
    return start, start + timedelta(days=1)


def days_between(start: datetime, end: datetime) -> list[str]:
    """Day keys of the UTC days overlapping [start, end)."""
    first = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    while first < end:
        days.append(first.strftime("%Y-%m-%d"))
        first += timedelta(days=1)
    return days


def symbol_day_key(date_key: str, symbol: str) -> str:
    """Per (day, symbol) bookkeeping key used by quarantine and watermarks."""
    return f"{date_key}|{symbol}"


def symbol_day_keys(date_keys: Iterable[str], symbols: Iterable[str]) -> list[str]:
    symbols = list(symbols)
    return [symbol_day_key(d, s) for d in date_keys for s in symbols]
