"""Ingestion: raw bars and scored headlines for every configured symbol, one or many days per run.

A run covers the partition range Dagster hands it (one day, or a whole backfill range under the
single-run backfill policy): the source is read once per symbol for the whole range, validated
against the contract, and written in one transaction covering whole days. Per (day, symbol) the
quarantine and the watermark are replaced, so re-running any range is idempotent.
"""

from collections import defaultdict

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableColumnConstraints,
    TableSchema,
)

from pipeline_assets.assets._common import (
    OWNERS,
    add_day_metadata,
    closed_bars_end,
    daily_asset,
    frame_metadata,
    hours_in,
    rows_per_day,
    run_metadata,
    run_window,
    stats_metadata,
    symbol_day_table,
    transient_only,
)
from pipeline_assets.contracts.headlines import validate_headlines
from pipeline_assets.contracts.ohlcv import rule_violations, validate_ohlcv
from pipeline_assets.contracts.spec import HEADLINE_CONTRACT, OHLCV_CONTRACT, ContractSpec
from pipeline_assets.features.sentiment import score_headlines
from pipeline_assets.partitions import SYMBOLS, day_window, symbol_day_key
from pipeline_assets.resources import MarketDataResource, WarehouseResource
from pipeline_assets.sources.base import SourceDataMissing, SourceError
from pipeline_assets.store.frames import upsert_frame
from pipeline_assets.store.quarantine import replace_quarantine_many
from pipeline_assets.store.revisions import stamp_and_archive, stamp_and_archive_headlines
from pipeline_assets.store.warehouse import read_ohlcv
from pipeline_assets.store.watermarks import record_watermarks

# Blocking: a failure stops downstream assets of the same run from using the partition.
# Blocking checks re-run the contract's rules on the stored rows (descriptions from the contract).
_CHECK_RULES = {
    "no_nan": ("no_nan",),
    "high_gte_low": ("high_gte_low",),
    "positive_prices": ("positive_prices",),
    "unique_monotonic_utc_ts": ("unique_monotonic_ts", "hour_aligned_ts"),
}
OHLCV_CONTRACT_CHECKS = {
    check: (rules, " ".join(OHLCV_CONTRACT.rule(r).description for r in rules)) for check, rules in _CHECK_RULES.items()
}
COMPLETE_DAY_CHECK = "complete_day"

OHLCV_COLUMNS_STORED = ["symbol", "ts", "open", "high", "low", "close", "volume", "source", "vendor_filled"]
VENDOR_FILLED_CHECK = "no_vendor_filled_bars"


def table_schema(contract: ContractSpec) -> TableSchema:
    """The UI's column schema, from the contract's declaration."""
    return TableSchema(
        columns=[
            TableColumn(
                c.name,
                c.sql_type,
                description=f"{c.description}{f' ({c.unit})' if c.unit else ''}",
                constraints=TableColumnConstraints(nullable=c.nullable),
            )
            for c in contract.columns
        ]
    )


RAW_OHLCV_SCHEMA = table_schema(OHLCV_CONTRACT)
RAW_SENTIMENT_SCHEMA = table_schema(HEADLINE_CONTRACT)


def _by_day(frame: pd.DataFrame, ts_column: str, default_day: str) -> dict[str, pd.DataFrame]:
    """Split rows by the UTC day of ``ts_column``; rows without a usable time go to ``default_day``."""
    if frame.empty:
        return {}
    days = frame[ts_column].dt.strftime("%Y-%m-%d").fillna(default_day)
    return {day: group for day, group in frame.groupby(days, sort=True)}


def _contract_check_results(stored: pd.DataFrame) -> list[AssetCheckResult]:
    masks: dict[str, pd.Series] = {}
    for symbol, group in stored.groupby("symbol", sort=True):
        for rule, mask in rule_violations(group, str(symbol)).items():
            masks[rule] = pd.concat([masks[rule], mask]) if rule in masks else mask
    results = []
    for check_name, (rules, _description) in OHLCV_CONTRACT_CHECKS.items():
        rule_names = (rules,) if isinstance(rules, str) else rules
        mask = pd.Series(False, index=stored.index)
        for rule in rule_names:
            if rule in masks:
                mask |= masks[rule].reindex(stored.index, fill_value=False)
        bad = stored[mask]
        metadata = {"violations": MetadataValue.int(len(bad)), "rows_checked": MetadataValue.int(len(stored))}
        if len(bad):
            metadata["first_violation"] = MetadataValue.text(f"{bad['symbol'].iloc[0]} {bad['ts'].iloc[0]}")
            metadata["violating_rows"] = MetadataValue.md(bad.head(10).to_markdown(index=False))
            metadata["violating_days"] = MetadataValue.json(sorted(set(bad["ts"].dt.strftime("%Y-%m-%d"))))
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


@daily_asset(
    automated=False,
    group_name="ingestion",
    owners=OWNERS,
    tags={"layer": "raw", "domain": "market-data"},
    metadata={
        "dagster/column_schema": RAW_OHLCV_SCHEMA,
        "contract": MetadataValue.json(OHLCV_CONTRACT.describe()),
    },
    check_specs=[
        *(
            AssetCheckSpec(name, asset="raw_ohlcv", blocking=True, description=description)
            for name, (_rules, description) in OHLCV_CONTRACT_CHECKS.items()
        ),
        AssetCheckSpec(
            COMPLETE_DAY_CHECK,
            asset="raw_ohlcv",
            description="Every closed hour of every day has a bar for every symbol (warns on gaps and "
            "symbols without data).",
        ),
        AssetCheckSpec(
            VENDOR_FILLED_CHECK,
            asset="raw_ohlcv",
            description="No bar looks vendor-filled (zero volume, open = high = low = close); such bars are "
            "stored with vendor_filled = true (warns).",
        ),
    ],
)
@transient_only
def raw_ohlcv(context: AssetExecutionContext, warehouse: WarehouseResource, market: MarketDataResource):
    """Hourly OHLCV bars of every configured symbol for the run's days, validated against the
    OHLCV contract. Bars that break it go to `quarantine` with the reason; the stored range is
    then re-read and checked by blocking asset checks. A symbol without data for some days is
    reported (complete_day check), never a failure of the other symbols."""
    window = run_window(context)
    end = closed_bars_end(window.end)
    if end <= window.start:
        raise Failure(f"raw_ohlcv {window.label}: no bar of this range has closed yet", allow_retries=False)
    source = market.ohlcv()
    valid_frames: list[pd.DataFrame] = []
    rejected_by_key: dict[str, pd.DataFrame] = {}
    absent: dict[str, str] = {}
    reasons: dict[str, int] = defaultdict(int)
    for symbol in SYMBOLS:
        try:
            bars = source.ohlcv(symbol, window.start, end)
        except SourceDataMissing as exc:
            absent[symbol] = str(exc)
            continue
        except SourceError as exc:
            raise Failure(
                f"raw_ohlcv {symbol} {window.label}: source {source.name} failed: {exc}", allow_retries=False
            ) from exc
        refused = pd.DataFrame()
        if "reject_reason" in bars.columns:  # rows the source could not read as bars (CSV)
            unreadable = bars["reject_reason"].notna()
            refused = bars[unreadable].rename(columns={"reject_reason": "reason"}).assign(symbol=symbol)
            bars = bars[~unreadable].drop(columns=["placed_at", "reject_reason"])
        contract = validate_ohlcv(bars, symbol, window.start, end)
        valid_frames.append(contract.valid)
        for reason, count in contract.reasons.items():
            reasons[reason] += count
        if len(refused):
            reasons["unreadable rows (reasons in quarantine)"] += len(refused)
        by_day = _by_day(contract.rejected, "ts", window.days[0])
        for day, group in _by_day(refused, "placed_at", window.days[0]).items():
            by_day[day] = pd.concat([by_day[day], group], ignore_index=True) if day in by_day else group
        for day, group in by_day.items():
            rejected_by_key[symbol_day_key(day, symbol)] = group
    present = [s for s in SYMBOLS if s not in absent]
    valid = pd.concat(valid_frames, ignore_index=True) if valid_frames else pd.DataFrame(columns=OHLCV_COLUMNS_STORED)
    keys = [symbol_day_key(day, symbol) for day in window.days for symbol in present]
    to_quarantine = {key: rejected_by_key.get(key, pd.DataFrame()) for key in keys}
    if valid.empty:
        with warehouse.transaction() as conn:  # keep the refused rows and their reasons even so
            replace_quarantine_many(conn, "raw_ohlcv", to_quarantine)
        raise Failure(
            f"raw_ohlcv {window.label}: source {source.name} returned no valid bar for any symbol "
            f"(rejected: {dict(reasons)}; without data: {absent or 'none'})",
            allow_retries=False,
        )
    with warehouse.transaction() as conn:
        quarantined = sum(replace_quarantine_many(conn, "raw_ohlcv", to_quarantine).values())
        rows = valid.assign(source=source.name)[OHLCV_COLUMNS_STORED]
        # a first version became known when its bar closed; a restated bar now (the previous
        # version moves to raw_ohlcv_history, for point-in-time reads)
        rows, restated = stamp_and_archive(conn, rows, rows["ts"] + pd.Timedelta(hours=1))
        stats = upsert_frame(conn, "raw_ohlcv", rows, ["symbol", "ts"])
        per_key_rows = rows.groupby([rows["ts"].dt.strftime("%Y-%m-%d"), rows["symbol"]]).size().to_dict()
        watermarks = []
        for day in window.days:
            day_start, day_end = day_window(day)
            covered = min(day_end, end)
            if covered <= day_start:
                continue
            for symbol in present:
                watermarks.append((symbol_day_key(day, symbol), day_start, covered, per_key_rows.get((day, symbol), 0)))
        record_watermarks(conn, "raw_ohlcv", watermarks)
        stored = read_ohlcv(conn, list(SYMBOLS), window.start, window.end)
    if quarantined:
        context.log.warning(f"raw_ohlcv {window.label}: quarantined {quarantined} bars: {dict(reasons)}")
    expected_per_day = {day: hours_in(day_window(day)[0], min(day_window(day)[1], end)) for day in window.days}
    stored_counts = stored.groupby([stored["ts"].dt.strftime("%Y-%m-%d"), stored["symbol"]]).size().to_dict()
    missing: dict[str, list[str]] = {}
    missing_hours_per_day: dict[str, int] = {}
    for day, expected in expected_per_day.items():
        short = [s for s in SYMBOLS if stored_counts.get((day, s), 0) < expected]
        missing[day] = short
        missing_hours_per_day[day] = sum(expected - stored_counts.get((day, s), 0) for s in SYMBOLS)
    missing_hours = sum(missing_hours_per_day.values())
    checks = _contract_check_results(stored)
    checks.append(
        AssetCheckResult(
            asset_key="raw_ohlcv",
            check_name=COMPLETE_DAY_CHECK,
            passed=missing_hours == 0,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "expected_hours": sum(expected_per_day.values()) * len(SYMBOLS),
                "missing_hours": missing_hours,
                "days_with_gaps": MetadataValue.int(sum(1 for v in missing.values() if v)),
                "gaps": symbol_day_table(missing),
                "symbols_without_data": MetadataValue.json(absent),
            },
        )
    )
    filled = rows[rows["vendor_filled"]]
    checks.append(
        AssetCheckResult(
            asset_key="raw_ohlcv",
            check_name=VENDOR_FILLED_CHECK,
            passed=filled.empty,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "vendor_filled_bars": len(filled),
                "by_symbol": MetadataValue.json(filled.groupby("symbol").size().astype(int).to_dict()),
                "first": MetadataValue.text(
                    f"{filled['symbol'].iloc[0]} {filled['ts'].iloc[0]}" if len(filled) else ""
                ),
            },
        )
    )
    day_rows = rows_per_day(stored, window.days)
    quarantined_per_day: dict[str, int] = defaultdict(int)
    for key, frame in rejected_by_key.items():
        quarantined_per_day[key.split("|")[0]] += len(frame)
    add_day_metadata(
        context,
        {
            day: {
                "rows": MetadataValue.int(day_rows[day]),
                "missing_hours": MetadataValue.int(missing_hours_per_day[day]),
                "quarantined_rows": MetadataValue.int(quarantined_per_day.get(day, 0)),
                "symbols_with_gaps": MetadataValue.json(missing[day]),
            }
            for day in window.days
        },
    )
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                **frame_metadata(stored),
                **stats_metadata(stats),
                "bars_restated": MetadataValue.int(restated),
                "days_in_run": MetadataValue.int(len(window.days)),
                "source": source.name,
                "quarantined_rows_in_run": MetadataValue.int(quarantined),
                "quarantine_reasons": MetadataValue.json(dict(reasons)),
                "missing_hours_in_run": MetadataValue.int(missing_hours),
            },
        ),
        check_results=checks,
    )


SENTIMENT_COLUMNS = [
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


@daily_asset(
    automated=False,
    group_name="ingestion",
    owners=OWNERS,
    tags={"layer": "raw", "domain": "news"},
    metadata={
        "dagster/column_schema": RAW_SENTIMENT_SCHEMA,
        "contract": MetadataValue.json(HEADLINE_CONTRACT.describe()),
    },
)
@transient_only
def raw_sentiment(context: AssetExecutionContext, warehouse: WarehouseResource, market: MarketDataResource):
    """Headlines about each configured symbol published during the run's days, scored with VADER."""
    window = run_window(context)
    end = closed_bars_end(window.end)
    if end <= window.start:
        raise Failure(f"raw_sentiment {window.label}: the range has not started yet", allow_retries=False)
    source = market.headlines()
    scored_frames, rejected_by_key = [], {}
    for symbol in SYMBOLS:
        try:
            headlines = source.headlines(symbol, window.start, end)
        except SourceError as exc:
            raise Failure(
                f"raw_sentiment {symbol} {window.label}: headline source failed: {exc}", allow_retries=False
            ) from exc
        contract = validate_headlines(headlines, symbol, window.start, end)
        scored_frames.append(score_headlines(contract.valid))
        rejected = contract.rejected.rename(columns={"published_at": "ts"})
        for day, group in _by_day(rejected, "ts", window.days[0]).items():
            rejected_by_key[symbol_day_key(day, symbol)] = group
    unreadable = source.unreadable() if hasattr(source, "unreadable") else pd.DataFrame()
    if len(unreadable):
        # lines of a headline file that could not be read belong to no time or symbol: quarantined
        # under the run's first day and '*', with the reason and the line
        rejected_by_key[symbol_day_key(window.days[0], "*")] = unreadable.assign(
            symbol="*", ts=pd.Timestamp(window.start)
        )[["symbol", "ts", "reason", "file", "raw"]]
    scored = pd.concat(scored_frames, ignore_index=True)[SENTIMENT_COLUMNS]
    # a headline is known when published; a revision (same source id, new text) when ingested
    per_key = scored.groupby([scored["published_at"].dt.strftime("%Y-%m-%d"), scored["symbol"]]).size().to_dict()
    with warehouse.transaction() as conn:
        scored, revised = stamp_and_archive_headlines(conn, scored, scored["published_at"])
        stats = upsert_frame(conn, "raw_sentiment", scored, ["symbol", "published_at", "headline_id"])
        keys = [symbol_day_key(day, symbol) for day in window.days for symbol in (*SYMBOLS, "*")]
        to_quarantine = {key: rejected_by_key.get(key, pd.DataFrame()) for key in keys}
        quarantined = sum(replace_quarantine_many(conn, "raw_sentiment", to_quarantine).values())
        watermarks = []
        for day in window.days:
            day_start, day_end = day_window(day)
            covered = min(day_end, end)
            for symbol in SYMBOLS:
                if covered > day_start:
                    watermarks.append((symbol_day_key(day, symbol), day_start, covered, per_key.get((day, symbol), 0)))
        record_watermarks(conn, "raw_sentiment", watermarks)
    day_rows = rows_per_day(scored, window.days, ts_column="published_at")
    add_day_metadata(context, {day: {"rows": MetadataValue.int(n)} for day, n in day_rows.items()})
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                **frame_metadata(scored, ts_column="published_at"),
                **stats_metadata(stats),
                "days_in_run": MetadataValue.int(len(window.days)),
                "quarantined_rows_in_run": MetadataValue.int(quarantined),
                "headlines_revised": MetadataValue.int(revised),
                "mean_compound": MetadataValue.float(float(scored["compound"].mean()) if len(scored) else 0.0),
            },
        )
    )
