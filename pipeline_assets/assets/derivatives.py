"""Raw derivatives feeds as assets, one per feed and table, partitioned like the bars: funding,
open interest, liquidations and long/short ratio of the perpetual of each configured coin.

From the synthetic market they are generated consistently with its bars for any past day; from an
exchange (PIPELINE_MARKET_SOURCE=exchange) funding, open interest and long/short ratio come from
the perpetual of each coin through ccxt (exchanges keep about 30 days of open interest and
long/short history; older hours are missing and reported), liquidations have no public history:
they are collected forward from the exchange's websocket (``python -m pipeline_assets
liquidations``, sources/liquidation_stream.py) and the asset reads what was collected for its
hours, reporting per day the hours the stream watched and those it did not (not fatal). The
synthetic source records full coverage (liquidation_watch) for the hours it generates. A CSV
source has no derivatives feeds: those runs store nothing and say so. Rows that break their
contract go to quarantine with the reason; a blocking check re-validates what was stored."""

from datetime import timedelta

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, Failure, MaterializeResult, MetadataValue

from pipeline_assets.assets._common import (
    OWNERS,
    add_day_metadata,
    closed_bars_end,
    daily_asset,
    run_metadata,
    run_window,
    transient_only,
    utc_now,
)
from pipeline_assets.assets.ingestion import raw_ohlcv
from pipeline_assets.contracts.derivatives import DERIVATIVE_CONTRACTS, validate_feed
from pipeline_assets.features import aligned
from pipeline_assets.features.watch_coverage import UNWATCHED_REASON, unwatched_runs, watched_hours
from pipeline_assets.partitions import SYMBOLS, symbol_day_key
from pipeline_assets.resources import MarketDataResource, WarehouseResource
from pipeline_assets.sources.base import SourceDataMissing, SourceError
from pipeline_assets.sources.derivatives import ExchangeDerivatives, SyntheticDerivatives
from pipeline_assets.store import liquidations as liquidation_store
from pipeline_assets.store.frames import read_frame, upsert_frame
from pipeline_assets.store.quarantine import replace_quarantine_many
from pipeline_assets.store.warehouse import read_ohlcv

CONTRACT_CHECK = "contract"
# feeds published on a fixed grid: hours of it without a value are reported missing with a reason
CADENCE_HOURS = {"funding": 8, "open_interest": 1, "long_short_ratio": 1}
EXCHANGE_HISTORY_DAYS = 30


def _missing_reason(source: str, first_gap: pd.Timestamp) -> str:
    if source == "exchange" and first_gap < pd.Timestamp(utc_now()) - pd.Timedelta(days=EXCHANGE_HISTORY_DAYS):
        return f"older than the exchange's history (about {EXCHANGE_HISTORY_DAYS} days for this feed)"
    return "not returned by the source"


def derivative_asset(feed: str):
    contract = DERIVATIVE_CONTRACTS[feed]
    columns = [c.name for c in contract.columns]

    @daily_asset(
        name=contract.table,
        automated=False,
        group_name="ingestion",
        owners=OWNERS,
        tags={"layer": "raw", "domain": "derivatives", "feed": feed},
        metadata={"contract": MetadataValue.json(contract.describe())},
        check_specs=[
            AssetCheckSpec(
                CONTRACT_CHECK,
                asset=contract.table,
                blocking=True,
                description="Every stored row of the run's days satisfies the feed's contract: "
                + " ".join(r.description for r in contract.rules),
            )
        ],
    )
    @transient_only
    def _asset(context: AssetExecutionContext, warehouse: WarehouseResource, market: MarketDataResource):
        window = run_window(context)
        end = closed_bars_end(window.end)
        if market.ohlcv_source == "csv" or end <= window.start:
            note = (
                f"no {feed} source for ohlcv_source='csv'"
                if market.ohlcv_source == "csv"
                else "no hour of the range has closed yet"
            )
            return MaterializeResult(
                metadata={"rows_in_run": MetadataValue.int(0), "note": MetadataValue.text(note)},
                check_results=[AssetCheckResult(check_name=CONTRACT_CHECK, passed=True, metadata={"note": note})],
            )
        if market.ohlcv_source == "exchange" and feed == "liquidations":
            # nothing to fetch: the websocket collector stored the events and its coverage
            return _collected_liquidations(context, warehouse, window, end, f"{market.exchange_id}:swap")
        if market.ohlcv_source == "exchange":
            source = ExchangeDerivatives(market.exchange("swap"))
            source_name, venue = source.source.name, source.venue
        else:
            source = SyntheticDerivatives(market.ohlcv(), seed=market.synthetic_seed)
            source_name, venue = source.market.name, "synthetic"
        fetch = getattr(source, feed)
        valid, rejected_by_key, absent, missing = [], {}, {}, {}
        for symbol in SYMBOLS:
            try:
                frame = fetch(symbol, window.start, end).assign(source=source_name)
            except SourceDataMissing as exc:
                absent[symbol] = str(exc)
                continue
            except SourceError as exc:
                raise Failure(f"{contract.table} {symbol} {window.label}: {exc}", allow_retries=False) from exc
            result = validate_feed(contract, frame, window.start, end)
            valid.append(result.valid)
            if feed in CADENCE_HOURS:
                expected = pd.date_range(window.start, end, freq=f"{CADENCE_HOURS[feed]}h", inclusive="left")
                gaps = expected.difference(pd.DatetimeIndex(result.valid["ts"]))
                if len(gaps):
                    missing[symbol] = {
                        "hours": len(gaps),
                        "first": gaps[0].isoformat(),
                        "last": gaps[-1].isoformat(),
                        "reason": _missing_reason(market.ohlcv_source, gaps[0]),
                    }
            for day in window.days:
                day_rows = result.rejected[result.rejected["ts"].dt.strftime("%Y-%m-%d") == day]
                rejected_by_key[symbol_day_key(day, symbol)] = day_rows.rename(columns={})
        rows = pd.concat(valid, ignore_index=True)[columns] if valid else pd.DataFrame(columns=columns)
        with warehouse.transaction() as conn:
            stats = upsert_frame(conn, contract.table, rows, list(contract.key), changed_by_day="ts")
            quarantined = sum(replace_quarantine_many(conn, contract.table, rejected_by_key).values())
            if feed == "liquidations":
                # the synthetic market generates every hour of the run: all of them are watched
                liquidation_store.write_coverage(
                    conn,
                    pd.DataFrame(
                        {"symbol": list(SYMBOLS), "venue": venue, "market_type": "synthetic",
                         "watched_from": window.start, "watched_until": end, "ended_by": "generated",
                         "source": source_name}
                    ),
                )  # fmt: skip
            stored = read_frame(
                conn,
                f"SELECT {', '.join(columns)} FROM {contract.table} WHERE ts >= %s AND ts < %s ORDER BY symbol, ts",
                (window.start, window.end + timedelta(hours=1)),
            )
        broken = {name: int(mask.sum()) for name, mask in contract.violations(stored).items() if mask.any()}
        per_day = rows["ts"].dt.strftime("%Y-%m-%d").value_counts() if len(rows) else {}
        add_day_metadata(context, {d: {"rows": MetadataValue.int(int(per_day.get(d, 0)))} for d in window.days})
        return MaterializeResult(
            metadata=run_metadata(
                context,
                window,
                {
                    "rows_in_run": MetadataValue.int(len(rows)),
                    "rows_changed": MetadataValue.int(stats.inserted + stats.updated),
                    "quarantined_rows_in_run": MetadataValue.int(quarantined),
                    "venue": venue,
                    "symbols_without_data": MetadataValue.json(absent),
                    "hours_missing": MetadataValue.json(missing),
                },
            ),
            check_results=[_contract_result(broken)],
        )

    return _asset


def _contract_result(broken: dict) -> AssetCheckResult:
    """The blocking contract check of a derivatives feed: violations counted per rule."""
    return AssetCheckResult(
        check_name=CONTRACT_CHECK, passed=not broken, metadata={"violations": MetadataValue.json(broken)}
    )


def _collected_liquidations(context, warehouse, window, end, venue: str) -> MaterializeResult:
    """raw_liquidations on an exchange: the events the websocket collector stored for the run's
    hours, and per day and symbol the hours it watched; unwatched hours are reported with the
    reason (their liquidation values are missing downstream), never fatal, never invented."""
    contract = DERIVATIVE_CONTRACTS["liquidations"]
    hours = pd.date_range(window.start, end, freq="h", inclusive="left")
    with warehouse.transaction() as conn:
        events = liquidation_store.read_events(conn, list(SYMBOLS), window.start, end, venue)
        coverage = liquidation_store.read_coverage(conn, list(SYMBOLS), window.start, end)
    coverage = coverage[coverage["venue"] == venue]
    day_of_hour = hours.strftime("%Y-%m-%d")
    event_days = events["ts"].dt.strftime("%Y-%m-%d") if len(events) else pd.Series([], dtype=str)
    per_day = {d: {"watched": {}, "unwatched": {}} for d in window.days}
    unwatched_by_symbol = {}
    for symbol in SYMBOLS:
        watched = watched_hours(coverage[coverage["symbol"] == symbol], hours)
        for day in window.days:
            in_day = day_of_hour == day
            per_day[day]["watched"][symbol] = int(watched[in_day].sum())
            if (~watched[in_day]).any():
                runs = unwatched_runs(hours[in_day], watched[in_day])
                per_day[day]["unwatched"][symbol] = {
                    "hours": int((~watched[in_day]).sum()), "runs": runs, "reason": UNWATCHED_REASON,
                }  # fmt: skip
        if (~watched).any():
            unwatched_by_symbol[symbol] = {"hours": int((~watched).sum()), "reason": UNWATCHED_REASON}
    add_day_metadata(
        context,
        {
            d: {
                "rows": MetadataValue.int(int((event_days == d).sum())),
                "watched_hours": MetadataValue.json(per_day[d]["watched"]),
                "unwatched_hours": MetadataValue.json(per_day[d]["unwatched"]),
            }
            for d in window.days
        },
    )
    broken = {name: int(mask.sum()) for name, mask in contract.violations(events).items() if mask.any()}
    note = (
        "exchanges publish no liquidation history: events are collected forward from the websocket "
        "(python -m pipeline_assets liquidations); this run reads what was collected for its hours"
    )
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                "rows_in_run": MetadataValue.int(len(events)),
                "rows_changed": MetadataValue.int(0),
                "venue": venue,
                "hours_unwatched": MetadataValue.json(unwatched_by_symbol),
                "note": MetadataValue.text(note),
            },
        ),
        check_results=[_contract_result(broken)],
    )


raw_funding_rates = derivative_asset("funding")
raw_open_interest = derivative_asset("open_interest")
raw_liquidations = derivative_asset("liquidations")
raw_long_short_ratio = derivative_asset("long_short_ratio")
DERIVATIVE_ASSETS = [raw_funding_rates, raw_open_interest, raw_liquidations, raw_long_short_ratio]


@daily_asset(
    group_name="features",
    tags={"layer": "features", "family": "aligned"},
    deps=[raw_ohlcv, *DERIVATIVE_ASSETS],
    metadata={
        "max_staleness_hours": MetadataValue.json({feed: spec[2] for feed, spec in aligned.FEEDS.items()}),
    },
)
@transient_only
def market_aligned(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Per symbol and closed hour: the bar and every derivatives feed as known at the bar's close,
    with staleness; stale values are missing, not carried forward; hours without a bar are rows
    marked bar_missing."""
    window = run_window(context)
    end = closed_bars_end(window.end)
    hours = pd.date_range(window.start, end, freq="h", inclusive="left")
    if len(hours) == 0:
        return MaterializeResult(metadata={"rows_in_run": MetadataValue.int(0)})
    lookback = timedelta(hours=aligned.LOOKBACK_HOURS + 1)
    with warehouse.transaction() as conn:
        bars = read_ohlcv(conn, list(SYMBOLS), window.start, end)
        feeds = {
            feed: read_frame(
                conn,
                f"SELECT symbol, ts, available_at, {spec[0]} FROM {DERIVATIVE_CONTRACTS[feed].table} "
                "WHERE ts >= %s AND ts < %s AND available_at <= %s ORDER BY symbol, ts",
                (window.start - lookback, end, end),
            )
            for feed, spec in aligned.FEEDS.items()
        }
        liquidations = read_frame(
            conn,
            "SELECT symbol, ts, available_at, side, size, price FROM raw_liquidations "
            "WHERE ts >= %s AND ts < %s ORDER BY symbol, ts",
            (window.start, end),
        )
        coverage = liquidation_store.read_coverage(conn, list(SYMBOLS), window.start, end)
    frames = []
    unwatched = {}
    for symbol in SYMBOLS:
        watched = watched_hours(coverage[coverage["symbol"] == symbol], hours)
        if (~watched).any():
            unwatched[symbol] = {"hours": int((~watched).sum()), "reason": UNWATCHED_REASON}
        frames.append(
            aligned.align(
                symbol,
                hours,
                bars[bars["symbol"] == symbol],
                {feed: f[f["symbol"] == symbol] for feed, f in feeds.items()},
                liquidations[liquidations["symbol"] == symbol],
                watched,
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "market_aligned", rows, ["symbol", "ts"], changed_by_day="ts")
    by_day = rows.groupby(rows["ts"].dt.strftime("%Y-%m-%d"))["bar_missing"]
    missing, per_day = by_day.sum(), by_day.size()
    unwatched_per_day = rows["liq_count"].isna().groupby(rows["ts"].dt.strftime("%Y-%m-%d")).sum()
    add_day_metadata(
        context,
        {
            d: {
                "rows": MetadataValue.int(int(per_day.get(d, 0))),
                "hours_without_bar": MetadataValue.int(int(missing.get(d, 0))),
                "liquidation_hours_unwatched": MetadataValue.int(int(unwatched_per_day.get(d, 0))),
            }
            for d in window.days
        },
    )
    stale = {v: int(rows[v].isna().sum()) for v, _, _ in aligned.FEEDS.values()}
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                "rows_in_run": MetadataValue.int(len(rows)),
                "rows_changed": MetadataValue.int(stats.inserted + stats.updated),
                "hours_without_bar": MetadataValue.int(int(rows["bar_missing"].sum())),
                "missing_or_stale_values": MetadataValue.json(stale),
                # liquidation values of these hours are NULL: the stream did not watch all of the hour
                "liquidation_unwatched_by_symbol": MetadataValue.json(unwatched),
            },
        )
    )
