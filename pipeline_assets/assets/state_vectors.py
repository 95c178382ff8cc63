"""Order-book snapshots and the state vector as assets.

``ml_state_vectors`` stores one un-normalised raw row per closed hour (the layout's compact raw
row, with its layout id); a vector is the window of stored rows that ends at its hour, normalised
on read (``store.state_vectors.read_vectors``), so a year costs 8,760 raw rows, not 8,760 x 168 x
768 floats. Its blocking check reads every vector of the run back from the warehouse and checks
shape, dtype and finiteness."""

import math
import time
from datetime import timedelta

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from pipeline_assets.assets._common import (
    add_day_metadata,
    closed_bars_end,
    daily_asset,
    run_metadata,
    run_window,
    transient_only,
    utc_now,
)
from pipeline_assets.assets.ingestion import raw_ohlcv
from pipeline_assets.features.mtf import MTF_LOOKBACK_HOURS
from pipeline_assets.partitions import SYMBOLS, days_window
from pipeline_assets.resources import MarketDataResource, WarehouseResource
from pipeline_assets.sources.base import SourceDataMissing, SourceError
from pipeline_assets.sources.orderbook import synthetic_snapshots
from pipeline_assets.state_vector import WIDTH, StateVectorBuilder, StateVectorConfig
from pipeline_assets.state_vector.builder import GRID_EXTENSION_HOURS
from pipeline_assets.state_vector.layout import OFF_BOOK, OFF_FILLED
from pipeline_assets.store.state_vectors import (
    read_orderbook,
    read_vectors,
    register_layout,
    write_orderbook,
    write_rows,
)
from pipeline_assets.store.warehouse import read_ohlcv

# Bars a day's rows need: the 30-day MTF warm-up before the day that starts the grid extension.
STATE_LOOKBACK_DAYS = math.ceil((MTF_LOOKBACK_HOURS + GRID_EXTENSION_HOURS) / 24) + 1
VECTORS_CHECK = "vectors_valid"


def state_vector_config() -> StateVectorConfig:
    return StateVectorConfig(symbols=list(SYMBOLS), use_cache=False, log_build_time=False)


@daily_asset(
    automated=False,
    group_name="ingestion",
    tags={"layer": "raw", "domain": "market-data", "feed": "orderbook"},
    metadata={"levels": 10},
)
@transient_only
def raw_orderbook(context: AssetExecutionContext, warehouse: WarehouseResource, market: MarketDataResource):
    """Order-book snapshots (10 levels a side) for the closed hours of the run's days, one per
    symbol and hour, taken just after each bar's close. From the synthetic market, books are
    consistent with its bars for any past day; from a CSV source there is no book (the state
    vector's book columns say absent)."""
    window = run_window(context)
    end = closed_bars_end(window.end)
    snapshot_start = window.start + timedelta(hours=1)
    snapshot_end = end + timedelta(hours=1)
    if market.ohlcv_source == "exchange":
        return _collect_exchange_books(context, warehouse, market, window, snapshot_start, snapshot_end)
    if market.ohlcv_source != "synthetic":
        with warehouse.transaction() as conn:
            existing = conn.execute(
                "SELECT count(*) FROM raw_orderbook WHERE snapshot_at >= %s AND snapshot_at < %s",
                (snapshot_start, snapshot_end),
            ).fetchone()[0]
        return MaterializeResult(
            metadata={
                "rows_in_run": MetadataValue.int(0),
                "snapshots_already_stored": MetadataValue.int(int(existing)),
                "note": MetadataValue.text(
                    f"no order-book source for ohlcv_source={market.ohlcv_source!r}: hours without a snapshot have "
                    "book.present = 0 in the state vector"
                ),
            }
        )
    source = market.ohlcv()
    frames, absent = [], {}
    for symbol in SYMBOLS:
        try:
            bars = source.ohlcv(symbol, window.start, end) if end > window.start else pd.DataFrame()
        except SourceDataMissing as exc:
            absent[symbol] = str(exc)
            continue
        except SourceError as exc:
            raise Failure(f"raw_orderbook {symbol} {window.label}: source failed: {exc}", allow_retries=False) from exc
        frames.append(synthetic_snapshots(bars, symbol, seed=market.synthetic_seed))
    snapshots = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    with warehouse.transaction() as conn:
        written = write_orderbook(conn, snapshots, snapshot_start, snapshot_end, source="synthetic")
    per_day = (
        snapshots["snapshot_at"].sub(pd.Timedelta(hours=1)).dt.strftime("%Y-%m-%d").value_counts() if written else {}
    )
    add_day_metadata(context, {day: {"rows": MetadataValue.int(int(per_day.get(day, 0)))} for day in window.days})
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {"rows_in_run": MetadataValue.int(written), "symbols_without_data": MetadataValue.json(absent)},
        )
    )


def _collect_exchange_books(context, warehouse, market, window, snapshot_start, snapshot_end) -> MaterializeResult:
    """The exchange's current book per symbol, when the run's days include the present: exchanges
    publish no order-book history, so books exist from the first collection on and earlier hours
    have none (said in the metadata; book.present = 0 there)."""
    now = utc_now()
    if not snapshot_start <= now < snapshot_end:
        return MaterializeResult(
            metadata={
                "rows_in_run": MetadataValue.int(0),
                "note": MetadataValue.text(
                    f"{market.exchange_id} publishes no order-book history: snapshots are collected going forward "
                    f"by the hourly run; {window.label} has only what was collected while it was current"
                ),
            }
        )
    source = market.exchange()
    rows, absent = [], {}
    for symbol in SYMBOLS:
        try:
            book = source.order_book(symbol, limit=10)
        except SourceDataMissing as exc:
            absent[symbol] = str(exc)
            continue
        except SourceError as exc:
            raise Failure(f"raw_orderbook {symbol}: {exc}") from exc
        bids, asks = np.asarray(book["bids"], dtype=float), np.asarray(book["asks"], dtype=float)
        if len(bids) == 0 or len(asks) == 0:
            absent[symbol] = f"{source.name} returned an empty side for {symbol}"
            continue
        rows.append(
            {
                "symbol": symbol,
                "venue": f"{market.exchange_id}:{market.market_type}",
                "snapshot_at": pd.Timestamp(book["timestamp"]),
                "bid_prices": bids[:, 0],
                "bid_sizes": bids[:, 1],
                "ask_prices": asks[:, 0],
                "ask_sizes": asks[:, 1],
            }
        )
    with warehouse.transaction() as conn:
        written = write_orderbook(conn, pd.DataFrame(rows), snapshot_start, snapshot_end, source.name, replace=False)
    return MaterializeResult(
        metadata={"rows_in_run": MetadataValue.int(written), "symbols_without_book": MetadataValue.json(absent)}
    )


@daily_asset(
    group_name="features",
    kinds={"postgres", "numba"},
    tags={"layer": "features", "family": "state_vector"},
    deps=[
        AssetDep(raw_ohlcv, partition_mapping=days_window(start_offset=-STATE_LOOKBACK_DAYS)),
        AssetDep(raw_orderbook),
    ],
    metadata={"window_hours": 168, "width": WIDTH, "lookback_days": STATE_LOOKBACK_DAYS},
    check_specs=[
        AssetCheckSpec(
            VECTORS_CHECK,
            asset="ml_state_vectors",
            blocking=True,
            description="Every vector of the run's hours that has a full window of stored rows, read back from "
            "the warehouse, has shape (168, 768), dtype float32 and only finite values.",
        )
    ],
)
@transient_only
def ml_state_vectors(context: AssetExecutionContext, warehouse: WarehouseResource):
    """The state vector's raw row for every closed hour of the run's days (bars, the OHLCV and
    multi-timeframe families, cross-asset values, order-book bands); vectors are assembled from
    these rows on read. Missing bars are filled per the builder's rules and flagged per hour."""
    window = run_window(context)
    try:
        builder = StateVectorBuilder(state_vector_config())
    except ValueError as exc:
        raise Failure(f"ml_state_vectors: {exc}", allow_retries=False) from exc
    started = time.perf_counter()
    with warehouse.transaction() as conn:
        bars = read_ohlcv(conn, list(SYMBOLS), window.start - timedelta(days=STATE_LOOKBACK_DAYS), window.end)
        books = read_orderbook(conn, list(SYMBOLS), window.start, window.end + timedelta(hours=1))
    in_run = bars[bars["ts"] >= window.start]
    if in_run.empty:
        raise Failure(
            f"ml_state_vectors {window.label}: no raw_ohlcv bars for any symbol; materialise raw_ohlcv",
            allow_retries=False,
        )
    data = {}
    for symbol in SYMBOLS:
        group = bars[bars["symbol"] == symbol]
        data[symbol] = pd.DataFrame(
            {c: group[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}
            | {"timestamp": pd.DatetimeIndex(group["ts"]).as_unit("us")}
        )
    start_hour = int(pd.Timestamp(window.start).value // 3_600_000_000_000)
    end_hour = int(in_run["ts"].max().value // 3_600_000_000_000)
    rows, info = builder.raw_rows(data, start_hour, end_hour, orderbook_data=books)
    spec = builder.layout_spec
    filled = rows[:, [spec.raw_symbol_offset(i) + OFF_FILLED for i in range(len(SYMBOLS))]] > 0
    booked = rows[:, [spec.raw_symbol_offset(i) + OFF_BOOK for i in range(len(SYMBOLS))]] > 0
    missing_symbols = [[s for s, f in zip(SYMBOLS, row, strict=True) if f] for row in filled]
    book_symbols = [[s for s, b in zip(SYMBOLS, row, strict=True) if b] for row in booked]
    hours = np.arange(start_hour, end_hour + 1)
    compute_s = time.perf_counter() - started
    with warehouse.transaction() as conn:
        register_layout(conn, builder)
        written = write_rows(conn, builder.layout_id, hours, rows, missing_symbols, book_symbols)
    check, assembly = _check_vectors(warehouse, builder, window)
    days = pd.to_datetime(hours * 3600, unit="s", utc=True).strftime("%Y-%m-%d")
    per_day = {}
    for day in window.days:
        mask = days == day
        per_day[day] = {
            "rows": MetadataValue.int(int(mask.sum())),
            "missing_symbol_hours": MetadataValue.int(int(filled[mask].sum())),
            "hours_with_book": MetadataValue.int(int(booked[mask].any(axis=1).sum())),
        }
    add_day_metadata(context, per_day)
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                "rows_in_run": MetadataValue.int(written),
                "layout_id": builder.layout_id,
                "raw_width": MetadataValue.int(spec.raw_width),
                "filled_values": MetadataValue.int(int(info["filled_values"])),
                "missing_hours": MetadataValue.json(info["missing_hours"]),
                "book_rows": MetadataValue.int(int(info.get("book_rows", 0))),
                "compute_seconds": MetadataValue.float(round(compute_s, 3)),
                "ms_per_row": MetadataValue.float(round(1000 * compute_s / max(1, written), 4)),
                **assembly,
            },
        ),
        check_results=[check],
    )


def _check_vectors(warehouse: WarehouseResource, builder: StateVectorBuilder, window) -> tuple[AssetCheckResult, dict]:
    """Read every vector of the run's hours back (a day per query) and check it."""
    window_hours = builder.config.window_hours
    with warehouse.transaction() as conn:
        (earliest,) = conn.execute(
            "SELECT min(ts) FROM ml_state_vector_rows WHERE layout_id = %s", (builder.layout_id,)
        ).fetchone()
    first_full = pd.Timestamp(earliest) + pd.Timedelta(hours=window_hours - 1)
    checked = skipped = bad = 0
    problems: list[str] = []
    read_s = 0.0
    for day in window.days:
        day_start = pd.Timestamp(day, tz="UTC")
        start = max(day_start, first_full)
        end = min(day_start + pd.Timedelta(days=1), pd.Timestamp(window.end))
        skipped += max(0, int((min(start, end) - day_start) / pd.Timedelta(hours=1)))
        if start >= end:
            continue
        began = time.perf_counter()
        with warehouse.transaction() as conn:
            hours, vectors = read_vectors(conn, builder, start.to_pydatetime(), end.to_pydatetime())
        read_s += time.perf_counter() - began
        expected = (len(hours), window_hours, WIDTH)
        finite = np.isfinite(vectors).all(axis=(1, 2))
        checked += len(hours)
        if vectors.shape != expected or vectors.dtype != np.float32 or not finite.all():
            bad += int((~finite).sum()) or len(hours)
            problems.append(
                f"{day}: shape {vectors.shape} (want {expected}), dtype {vectors.dtype}, "
                f"non-finite vectors {int((~finite).sum())}"
            )
    metadata = {
        "vectors_checked": MetadataValue.int(checked),
        "hours_without_full_window": MetadataValue.int(skipped),
        "ms_per_vector_read_and_assembled": MetadataValue.float(round(1000 * read_s / max(1, checked), 3)),
    }
    return (
        AssetCheckResult(
            check_name=VECTORS_CHECK,
            passed=bad == 0,
            metadata={**metadata, "problems": MetadataValue.json(problems[:20])},
        ),
        metadata,
    )
