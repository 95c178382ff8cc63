"""Whole-warehouse asset checks, runnable on their own (UI, schedule, `make checks`, CI) without
re-materialising anything.

The per-partition blocking checks run inside the materialising run; these scan everything
already stored, so out-of-band writes, old partitions and restored backups are covered too, and
the freshness checks judge what the warehouse holds now. They target the `warehouse` asset (an
external asset standing for the warehouse as a whole), not raw_ohlcv or ml_predictions: Dagster
runs every check of an asset inside each materialisation of it, and a scan of every stored bar
does not belong in each hourly ingestion run.

Freshness is relative to PIPELINE_FRESHNESS_AS_OF (ISO-8601, default now): a check run on a past
window, as in CI, passes that window's end.
"""

import os
from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetSpec, MetadataValue, asset_check

from pipeline_assets.contracts.ohlcv import WARNING_RULES, rule_violations
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store.warehouse import (
    latest_ts_by_symbol,
    read_leaking_predictions,
    read_leaking_return_predictions,
    read_ohlcv,
    read_symbols,
)

warehouse_tables = AssetSpec(
    "warehouse",
    group_name="monitoring",
    description="The warehouse as a whole (every table). Its checks scan all stored rows and judge freshness; "
    "they run on daily_warehouse_checks_schedule, from the UI, or with `make checks`.",
    kinds={"postgres"},
    owners=["team:market-data"],
)
FRESHNESS_TOLERANCE_ENV = "PIPELINE_FRESHNESS_TOLERANCE_HOURS"
FRESHNESS_AS_OF_ENV = "PIPELINE_FRESHNESS_AS_OF"

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
SAMPLE_ROWS = 10


@asset_check(asset=warehouse_tables.key, description="Every stored bar of every symbol satisfies the OHLCV contract.")
def raw_ohlcv_contract_scan(warehouse: WarehouseResource) -> AssetCheckResult:
    counts: dict[str, int] = {}
    flagged: dict[str, int] = {}
    samples, rows, symbols = [], 0, []
    with warehouse.transaction() as conn:
        symbols = read_symbols(conn, "raw_ohlcv")
        for symbol in symbols:  # one symbol at a time keeps memory bounded by the longest history
            stored = read_ohlcv(conn, [symbol], EARLIEST, LATEST)
            rows += len(stored)
            masks = rule_violations(stored, symbol)
            any_rule = pd.Series(False, index=stored.index)
            for rule, mask in masks.items():
                if rule in WARNING_RULES:  # flagged, not a violation (vendor-filled bars)
                    flagged[rule] = flagged.get(rule, 0) + int(mask.sum())
                    continue
                counts[rule] = counts.get(rule, 0) + int(mask.sum())
                any_rule |= mask
            if any_rule.any():
                samples.append(stored[any_rule].head(SAMPLE_ROWS))
    violations = sum(counts.values())
    metadata = {
        "rows_scanned": rows,
        "symbols": MetadataValue.json(symbols),
        "violations_by_rule": counts,
        "flagged_by_rule": flagged,
    }
    if samples:
        metadata["first_violations"] = MetadataValue.md(pd.concat(samples).head(SAMPLE_ROWS).to_markdown(index=False))
    return AssetCheckResult(passed=violations == 0, severity=AssetCheckSeverity.ERROR, metadata=metadata)


@asset_check(
    asset=warehouse_tables.key,
    description="No stored prediction (ml_predictions with its shadow challenger rows, ml_return_predictions) "
    "comes from a model whose training "
    "labels matured at or after its hour.",
)
def ml_predictions_leakage_scan(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.transaction() as conn:
        found = {
            "ml_predictions": read_leaking_predictions(conn, EARLIEST, LATEST),
            "ml_return_predictions": read_leaking_return_predictions(conn, EARLIEST, LATEST),
        }
        scanned = {
            "ml_predictions": conn.execute(
                "SELECT (SELECT count(*) FROM ml_predictions) + (SELECT count(*) FROM ml_shadow_predictions)"
            ).fetchone()[0],
            "ml_return_predictions": conn.execute("SELECT count(*) FROM ml_return_predictions").fetchone()[0],
        }
    leaks = pd.concat([frame.assign(table=table) for table, frame in found.items() if len(frame)] or [pd.DataFrame()])
    metadata = {
        "rows_scanned": sum(scanned.values()),
        "rows_scanned_by_table": MetadataValue.json(scanned),
        "violations": len(leaks),
        "violations_by_table": MetadataValue.json({table: len(frame) for table, frame in found.items()}),
    }
    if len(leaks):
        metadata["first_violations"] = MetadataValue.md(leaks.head(SAMPLE_ROWS).to_markdown(index=False))
    return AssetCheckResult(passed=leaks.empty, severity=AssetCheckSeverity.ERROR, metadata=metadata)


def freshness_reference() -> tuple[datetime, int]:
    """(as-of time, tolerated lag in hours) from the environment."""
    raw = os.environ.get(FRESHNESS_AS_OF_ENV)
    as_of = pd.Timestamp(raw).to_pydatetime() if raw else datetime.now(UTC)
    if as_of.tzinfo is None:
        raise ValueError(f"{FRESHNESS_AS_OF_ENV}={raw!r} has no UTC offset; write e.g. 2024-03-12T00:00:00Z")
    tolerance = int(os.environ.get(FRESHNESS_TOLERANCE_ENV, "1"))
    if tolerance < 0:
        raise ValueError(f"{FRESHNESS_TOLERANCE_ENV} must be >= 0, got {tolerance}")
    return as_of.astimezone(UTC), tolerance


def freshness_result(latest: dict[str, datetime], as_of: datetime, tolerance_hours: int, what: str) -> AssetCheckResult:
    """Pass when every configured symbol has a row for the last closed hour (bar opening at
    floor(as_of) - 1h), allowing ``tolerance_hours`` of lag for the hourly schedule to run."""
    last_closed = as_of.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    oldest_allowed = last_closed - timedelta(hours=tolerance_hours)
    stale = {
        s: (latest[s].isoformat() if s in latest else "never")
        for s in SYMBOLS
        if latest.get(s) is None or latest[s] < oldest_allowed
    }
    return AssetCheckResult(
        passed=not stale,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "as_of": as_of.isoformat(),
            "last_closed_hour": last_closed.isoformat(),
            "tolerance_hours": tolerance_hours,
            "latest_by_symbol": MetadataValue.json({s: t.isoformat() for s, t in sorted(latest.items())}),
            "stale_symbols": MetadataValue.json(stale),
            "what": what,
        },
    )


@asset_check(
    asset=warehouse_tables.key,
    description="raw_ohlcv holds the last closed hour for every configured symbol (within the tolerated lag).",
)
def raw_ohlcv_freshness(warehouse: WarehouseResource) -> AssetCheckResult:
    as_of, tolerance = freshness_reference()
    with warehouse.transaction() as conn:
        latest = latest_ts_by_symbol(conn, "raw_ohlcv", SYMBOLS, as_of)
    return freshness_result(latest, as_of, tolerance, "raw_ohlcv bars")


@asset_check(
    asset=warehouse_tables.key,
    description="ml_predictions holds today's closed hours for every configured symbol (within the tolerated lag).",
)
def ml_predictions_freshness(warehouse: WarehouseResource) -> AssetCheckResult:
    as_of, tolerance = freshness_reference()
    with warehouse.transaction() as conn:
        latest = latest_ts_by_symbol(conn, "ml_predictions", SYMBOLS, as_of)
    return freshness_result(latest, as_of, tolerance, "ml_predictions rows")


WAREHOUSE_CHECKS = [raw_ohlcv_contract_scan, ml_predictions_leakage_scan, raw_ohlcv_freshness, ml_predictions_freshness]
