"""Shared helpers for tests that run Dagster assets against the test database."""

from __future__ import annotations

from dagster import DagsterInstance, materialize

from pipeline_assets.definitions import ASSETS
from pipeline_assets.partitions import daily_symbol_key
from pipeline_assets.resources import MarketDataResource, WarehouseResource
from pipeline_assets.store.db import connect

ASSETS_BY_NAME = {a.key.to_user_string(): a for a in ASSETS}
PER_SYMBOL_INGEST = ["raw_ohlcv", "raw_sentiment", "ml_features_ohlcv", "ml_features_sentiment", "ml_labels"]


def resources(database_url: str, market: MarketDataResource | None = None) -> dict:
    return {
        "warehouse": WarehouseResource(database_url=database_url),
        "market": market or MarketDataResource(),
    }


def run_assets(
    names, database_url, partition_key=None, instance=None, market=None, run_config=None, raise_on_error=True
):
    return materialize(
        [ASSETS_BY_NAME[n] for n in names],
        partition_key=partition_key,
        resources=resources(database_url, market),
        instance=instance or DagsterInstance.ephemeral(),
        run_config=run_config,
        raise_on_error=raise_on_error,
        selection=list(names),
    )


def ingest_days(database_url, days, symbols, instance=None):
    """Ingest, featurise and label each (day, symbol); re-label the previous day so its
    last labels mature, as the hourly schedule does."""
    for index, day in enumerate(days):
        for symbol in symbols:
            run_assets(PER_SYMBOL_INGEST, database_url, daily_symbol_key(day, symbol), instance)
            if index:
                run_assets(["ml_labels"], database_url, daily_symbol_key(days[index - 1], symbol), instance)


def count(database_url: str, query: str, params=None) -> int:
    with connect(database_url) as conn:
        return conn.execute(query, params).fetchone()[0]


def metadata_of(result, asset_name: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset_name]
    assert events, f"{asset_name} was not materialised"
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}
