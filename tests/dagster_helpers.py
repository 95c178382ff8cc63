"""Shared helpers for tests that run Dagster assets against the test database."""

from __future__ import annotations

from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pipeline_assets.definitions import ASSETS
from pipeline_assets.resources import MarketDataResource, WarehouseResource
from pipeline_assets.store.db import connect

ASSETS_BY_NAME = {a.key.to_user_string(): a for a in ASSETS if hasattr(a, "op")}
INGEST = ["raw_ohlcv", "raw_sentiment", "ml_features_ohlcv", "ml_features_sentiment", "ml_labels"]


def resources(database_url: str, market: MarketDataResource | None = None) -> dict:
    return {
        "warehouse": WarehouseResource(database_url=database_url),
        "market": market or MarketDataResource(),
    }


def run_assets(
    names,
    database_url,
    partition_key=None,
    instance=None,
    market=None,
    run_config=None,
    raise_on_error=True,
    partition_range: tuple[str, str] | None = None,
):
    """Materialise ``names`` for one day (``partition_key``) or a range of days in one run
    (``partition_range``, as a single-run backfill executes it)."""
    tags = None
    if partition_range is not None:
        tags = {ASSET_PARTITION_RANGE_START_TAG: partition_range[0], ASSET_PARTITION_RANGE_END_TAG: partition_range[1]}
    return materialize(
        [ASSETS_BY_NAME[n] for n in names],
        partition_key=partition_key,
        resources=resources(database_url, market),
        instance=instance or DagsterInstance.ephemeral(),
        run_config=run_config,
        raise_on_error=raise_on_error,
        selection=list(names),
        tags=tags,
    )


def ingest_days(database_url, days, symbols=None, instance=None):
    """Ingest, featurise and label ``days`` (every configured symbol) in one range run, then
    re-label the last day once more when it is not the range's end (labels mature with the next day)."""
    return run_assets(INGEST, database_url, instance=instance, partition_range=(days[0], days[-1]))


def count(database_url: str, query: str, params=None) -> int:
    with connect(database_url) as conn:
        return conn.execute(query, params).fetchone()[0]


def metadata_of(result, asset_name: str, partition: str | None = None) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset_name]
    if partition is not None:
        events = [e for e in events if e.partition == partition]
    assert events, f"{asset_name} was not materialised"
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}
