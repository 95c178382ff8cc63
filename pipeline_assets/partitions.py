"""Partitions: daily UTC windows x symbols for per-symbol assets, daily for cross-symbol ones.

Configured from the environment at load time: PIPELINE_PARTITION_START (YYYY-MM-DD) and
PIPELINE_SYMBOLS (comma separated). Today's partition exists (end_offset=1) so hourly
ingestion can fill the current day as bars close.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

from dagster import (
    DailyPartitionsDefinition,
    DimensionPartitionMapping,
    IdentityPartitionMapping,
    MultiPartitionKey,
    MultiPartitionMapping,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
)

DEFAULT_PARTITION_START = "2024-01-01"
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
DATE_DIM = "date"
SYMBOL_DIM = "symbol"
_SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,20}$")


class PartitionConfigError(ValueError):
    pass


def configured_symbols() -> tuple[str, ...]:
    raw = os.environ.get("PIPELINE_SYMBOLS")
    if not raw:
        return DEFAULT_SYMBOLS
    symbols = tuple(s.strip().upper() for s in raw.split(",") if s.strip())
    bad = [s for s in symbols if not _SYMBOL_PATTERN.match(s)]
    if bad or not symbols:
        raise PartitionConfigError(f"PIPELINE_SYMBOLS has invalid symbol(s) {bad or raw!r}")
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
symbol_partitions = StaticPartitionsDefinition(list(SYMBOLS))
daily_symbol_partitions = MultiPartitionsDefinition({DATE_DIM: daily_partitions, SYMBOL_DIM: symbol_partitions})


def same_symbol_days(start_offset: int = 0, end_offset: int = 0) -> MultiPartitionMapping:
    """Same symbol, a window of days around the partition's day (lookback / look-forward)."""
    return MultiPartitionMapping(
        {
            DATE_DIM: DimensionPartitionMapping(
                DATE_DIM, TimeWindowPartitionMapping(start_offset=start_offset, end_offset=end_offset)
            ),
            SYMBOL_DIM: DimensionPartitionMapping(SYMBOL_DIM, IdentityPartitionMapping()),
        }
    )


# A daily cross-symbol asset depends on every symbol's partition of that day.
all_symbols_of_day = MultiToSingleDimensionPartitionMapping(partition_dimension_name=DATE_DIM)


def day_window(date_key: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(date_key, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise PartitionConfigError(f"date partition key {date_key!r} is not YYYY-MM-DD") from exc
    return start, start + timedelta(days=1)


def split_key(partition_key: str | MultiPartitionKey) -> tuple[str, str]:
    """(date, symbol) of a daily x symbol partition key."""
    if not isinstance(partition_key, MultiPartitionKey):
        raise PartitionConfigError(f"expected a date x symbol partition key, got {partition_key!r}")
    dims = partition_key.keys_by_dimension
    return dims[DATE_DIM], dims[SYMBOL_DIM]


def daily_symbol_key(date_key: str, symbol: str) -> MultiPartitionKey:
    return MultiPartitionKey({DATE_DIM: date_key, SYMBOL_DIM: symbol})
