"""Feature-family assets built from their declarations (features/families.py): each reads the
family's inputs with its declared lookback, computes the run's days (each day from exactly its
own lookback, so range runs equal one-day runs), writes rows keyed by (symbol, ts,
feature_set_id) in one transaction, and registers the family version in ``feature_sets``."""

import math
from datetime import timedelta

import pandas as pd
from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue

from pipeline_assets.assets._common import (
    add_day_metadata,
    daily_asset,
    frame_metadata,
    missing_symbols_per_day,
    rows_per_day,
    run_metadata,
    run_window,
    stats_metadata,
    symbol_day_table,
    transient_only,
)
from pipeline_assets.assets.derivatives import market_aligned
from pipeline_assets.assets.ingestion import raw_ohlcv
from pipeline_assets.features.families import CROSS_ASSET, DERIVATIVES, MTF, OHLCV_EXT, FeatureFamily
from pipeline_assets.partitions import SYMBOLS, days_window
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store.feature_sets import register_family
from pipeline_assets.store.frames import read_frame, upsert_frame
from pipeline_assets.store.warehouse import read_ohlcv

INPUT_ASSETS = {"raw_ohlcv": raw_ohlcv, "market_aligned": market_aligned}


def _read_inputs(conn, family: FeatureFamily, start, end) -> pd.DataFrame:
    if family.inputs[0] == "market_aligned":
        return read_frame(
            conn,
            "SELECT * FROM market_aligned WHERE symbol = ANY(%s) AND ts >= %s AND ts < %s ORDER BY symbol, ts",
            (list(SYMBOLS), start, end),
        )
    return read_ohlcv(conn, list(SYMBOLS), start, end)


def family_asset(family: FeatureFamily):
    lookback_days = math.ceil(family.lookback_hours / 24)

    @daily_asset(
        name=family.table,
        group_name="features",
        kinds={"postgres", "numba"},
        tags={"layer": "features", "family": family.name},
        deps=[
            AssetDep(INPUT_ASSETS[i], partition_mapping=days_window(start_offset=-lookback_days)) for i in family.inputs
        ],
        metadata={
            "feature_set_id": family.feature_set_id,
            "lookback_hours": family.lookback_hours,
            "columns": MetadataValue.json(list(family.columns)),
            "params": MetadataValue.json(family.params),
        },
        description=family.description,
    )
    @transient_only
    def _asset(context: AssetExecutionContext, warehouse: WarehouseResource):
        window = run_window(context)
        with warehouse.transaction() as conn:
            bars = _read_inputs(conn, family, window.start - timedelta(hours=family.lookback_hours), window.end)
        if not (bars["ts"] >= window.start).any():
            raise Failure(
                f"{family.table} {window.label}: no {family.inputs[0]} rows for any symbol; materialise "
                f"{family.inputs[0]}",
                allow_retries=False,
            )
        rows = family.compute_days(bars, window.days, list(SYMBOLS))
        rows.insert(2, "feature_set_id", family.feature_set_id)
        rows = rows[["symbol", "ts", "feature_set_id", *family.sql_columns]]
        with warehouse.transaction() as conn:
            register_family(conn, family)
            stats = upsert_frame(conn, family.table, rows, ["symbol", "ts", "feature_set_id"], changed_by_day="ts")
        missing = missing_symbols_per_day(rows, window.days, SYMBOLS)
        day_rows = rows_per_day(rows, window.days)
        incomplete = rows[list(family.columns)].isna().any(axis=1)
        incomplete_per_day = rows_per_day(rows[incomplete], window.days) if len(rows) else dict.fromkeys(window.days, 0)
        add_day_metadata(
            context,
            {
                day: {
                    "rows": MetadataValue.int(day_rows[day]),
                    "rows_with_nan": MetadataValue.int(incomplete_per_day[day]),
                    "symbols_without_bars": MetadataValue.json(missing[day]),
                }
                for day in window.days
            },
        )
        return MaterializeResult(
            metadata=run_metadata(
                context,
                window,
                {
                    **frame_metadata(rows),
                    **stats_metadata(stats),
                    "feature_set_id": family.feature_set_id,
                    "rows_with_nan": MetadataValue.int(int(incomplete.sum())),
                    **(
                        {
                            "nan_by_column": MetadataValue.json(
                                {
                                    column: {"rows": int(rows[column].isna().sum()), "reason": reason}
                                    for column, reason in family.nan_reasons
                                    if rows[column].isna().any()
                                }
                            )
                        }
                        if family.nan_reasons
                        else {}
                    ),
                    "symbol_days_without_bars": symbol_day_table(missing),
                },
            )
        )

    return _asset


ml_features_mtf = family_asset(MTF)
ml_features_cross_asset = family_asset(CROSS_ASSET)
ml_features_ohlcv_ext = family_asset(OHLCV_EXT)
ml_features_derivatives = family_asset(DERIVATIVES)
FAMILY_ASSETS = [ml_features_ohlcv_ext, ml_features_mtf, ml_features_cross_asset, ml_features_derivatives]
__all__ = [
    "FAMILY_ASSETS",
    "family_asset",
    "ml_features_cross_asset",
    "ml_features_derivatives",
    "ml_features_mtf",
    "ml_features_ohlcv_ext",
]
