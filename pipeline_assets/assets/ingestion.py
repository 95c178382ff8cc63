"""Ingestion: raw bars and scored headlines, one (day, symbol) partition per run."""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from pipeline_assets.assets._common import closed_bars_end, frame_metadata, hours_in, stats_metadata
from pipeline_assets.contracts.headlines import validate_headlines
from pipeline_assets.contracts.ohlcv import rule_violations, validate_ohlcv
from pipeline_assets.features.sentiment import score_headlines
from pipeline_assets.partitions import daily_symbol_partitions, day_window, split_key
from pipeline_assets.resources import MarketDataResource, WarehouseResource
from pipeline_assets.sources.base import SourceError
from pipeline_assets.store.frames import upsert_frame
from pipeline_assets.store.quarantine import replace_quarantine
from pipeline_assets.store.warehouse import read_ohlcv
from pipeline_assets.store.watermarks import record_watermark

# Blocking: a failure stops downstream assets of the same run from using the partition.
OHLCV_CONTRACT_CHECKS = {
    "no_nan": ("no_nan", "No NaN in open/high/low/close/volume."),
    "high_gte_low": ("high_gte_low", "high >= low on every bar."),
    "positive_prices": ("positive_prices", "open, high, low and close are > 0."),
    "unique_monotonic_utc_ts": (
        ("unique_monotonic_ts", "hour_aligned_ts"),
        "Timestamps are unique, strictly increasing, UTC and on the hour.",
    ),
}
COMPLETE_DAY_CHECK = "complete_day"

OHLCV_COLUMNS_STORED = ["symbol", "ts", "open", "high", "low", "close", "volume", "source"]


def _contract_check_results(stored: pd.DataFrame, symbol: str) -> list[AssetCheckResult]:
    masks = rule_violations(stored, symbol)
    results = []
    for check_name, (rules, _description) in OHLCV_CONTRACT_CHECKS.items():
        rule_names = (rules,) if isinstance(rules, str) else rules
        mask = pd.Series(False, index=stored.index)
        for rule in rule_names:
            mask |= masks[rule]
        bad = stored[mask]
        metadata = {"violations": MetadataValue.int(len(bad)), "rows_checked": MetadataValue.int(len(stored))}
        if len(bad):
            metadata["first_violation_ts"] = MetadataValue.text(str(bad["ts"].iloc[0]))
            metadata["violating_rows"] = MetadataValue.md(bad.head(10).to_markdown(index=False))
        results.append(
            AssetCheckResult(
                asset_key="raw_ohlcv",
                check_name=check_name,
                passed=bad.empty,
                severity=AssetCheckSeverity.ERROR,
                metadata=metadata,
            )
        )
    return results


@asset(
    partitions_def=daily_symbol_partitions,
    group_name="ingestion",
    kinds={"postgres"},
    check_specs=[
        *(
            AssetCheckSpec(name, asset="raw_ohlcv", blocking=True, description=description)
            for name, (_rules, description) in OHLCV_CONTRACT_CHECKS.items()
        ),
        AssetCheckSpec(
            COMPLETE_DAY_CHECK,
            asset="raw_ohlcv",
            description="Every closed hour of the day has a bar (warns on gaps).",
        ),
    ],
)
def raw_ohlcv(context: AssetExecutionContext, warehouse: WarehouseResource, market: MarketDataResource):
    """Hourly OHLCV bars of one symbol for one UTC day, validated against the OHLCV contract.
    Bars that break it go to `quarantine` with the reason; the stored partition is then
    re-read and checked by blocking asset checks."""
    date_key, symbol = split_key(context.partition_key)
    start, day_end = day_window(date_key)
    end = closed_bars_end(day_end)
    if end <= start:
        raise Failure(f"raw_ohlcv {symbol} {date_key}: no bar of this day has closed yet")
    source = market.ohlcv()
    try:
        bars = source.ohlcv(symbol, start, end)
    except SourceError as exc:
        raise Failure(f"raw_ohlcv {symbol} {date_key}: source {source.name} failed: {exc}") from exc
    contract = validate_ohlcv(bars, symbol, start, end)
    if contract.valid.empty:
        with warehouse.transaction() as conn:  # keep the refused rows and their reasons even so
            replace_quarantine(conn, "raw_ohlcv", str(context.partition_key), contract.rejected)
        raise Failure(
            f"raw_ohlcv {symbol} {date_key}: source {source.name} returned no valid bars "
            f"({len(bars)} rows, rejected: {contract.reasons})"
        )
    rows = contract.valid.assign(source=source.name)[OHLCV_COLUMNS_STORED]
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "raw_ohlcv", rows, ["symbol", "ts"])
        quarantined = replace_quarantine(conn, "raw_ohlcv", str(context.partition_key), contract.rejected)
        record_watermark(conn, "raw_ohlcv", str(context.partition_key), start, end, len(rows))
        stored = read_ohlcv(conn, [symbol], start, day_end)
    if quarantined:
        context.log.warning(f"{symbol} {date_key}: quarantined {quarantined} bars: {contract.reasons}")
    expected_hours = hours_in(start, end)
    missing_hours = expected_hours - len(stored)
    checks = _contract_check_results(stored, symbol)
    checks.append(
        AssetCheckResult(
            asset_key="raw_ohlcv",
            check_name=COMPLETE_DAY_CHECK,
            passed=missing_hours == 0,
            severity=AssetCheckSeverity.WARN,
            metadata={"expected_hours": expected_hours, "missing_hours": missing_hours},
        )
    )
    return MaterializeResult(
        metadata={
            **frame_metadata(stored),
            **stats_metadata(stats),
            "source": source.name,
            "quarantined_rows": MetadataValue.int(quarantined),
            "quarantine_reasons": MetadataValue.json(contract.reasons),
            "missing_hours": MetadataValue.int(missing_hours),
        },
        check_results=checks,
    )


@asset(partitions_def=daily_symbol_partitions, group_name="ingestion", kinds={"postgres"})
def raw_sentiment(context: AssetExecutionContext, warehouse: WarehouseResource, market: MarketDataResource):
    """Headlines about one symbol published during one UTC day, scored with VADER."""
    date_key, symbol = split_key(context.partition_key)
    start, day_end = day_window(date_key)
    end = closed_bars_end(day_end)
    if end <= start:
        raise Failure(f"raw_sentiment {symbol} {date_key}: the day has not started yet")
    try:
        headlines = market.headlines().headlines(symbol, start, end)
    except SourceError as exc:
        raise Failure(f"raw_sentiment {symbol} {date_key}: headline source failed: {exc}") from exc
    contract = validate_headlines(headlines, symbol, start, end)
    scored = score_headlines(contract.valid)
    rejected = contract.rejected.rename(columns={"published_at": "ts"})
    columns = [
        "symbol",
        "published_at",
        "headline_id",
        "source",
        "headline",
        "compound",
        "positive",
        "neutral",
        "negative",
    ]
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "raw_sentiment", scored[columns], ["symbol", "published_at", "headline_id"])
        quarantined = replace_quarantine(conn, "raw_sentiment", str(context.partition_key), rejected)
        record_watermark(conn, "raw_sentiment", str(context.partition_key), start, end, len(scored))
    return MaterializeResult(
        metadata={
            **frame_metadata(scored[columns], ts_column="published_at"),
            **stats_metadata(stats),
            "quarantined_rows": MetadataValue.int(quarantined),
            "quarantine_reasons": MetadataValue.json(contract.reasons),
            "mean_compound": MetadataValue.float(float(scored["compound"].mean()) if len(scored) else 0.0),
        }
    )
