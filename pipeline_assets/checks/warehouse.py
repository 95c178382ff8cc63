"""Whole-table asset checks, runnable on their own (UI, schedule, CI) without re-materialising.

The per-partition blocking checks run inside the materialising run; these scan everything
already stored, so out-of-band writes, old partitions and restored backups are covered too."""

from datetime import UTC, datetime

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from pipeline_assets.assets.inference import ml_predictions
from pipeline_assets.assets.ingestion import raw_ohlcv
from pipeline_assets.contracts.ohlcv import rule_violations
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store.warehouse import read_leaking_predictions, read_ohlcv, read_symbols

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
SAMPLE_ROWS = 10


@asset_check(asset=raw_ohlcv, description="Every stored bar of every symbol satisfies the OHLCV contract.")
def raw_ohlcv_contract_scan(warehouse: WarehouseResource) -> AssetCheckResult:
    counts: dict[str, int] = {}
    samples, rows, symbols = [], 0, []
    with warehouse.transaction() as conn:
        symbols = read_symbols(conn, "raw_ohlcv")
        for symbol in symbols:  # one symbol at a time keeps memory bounded by the longest history
            stored = read_ohlcv(conn, [symbol], EARLIEST, LATEST)
            rows += len(stored)
            masks = rule_violations(stored, symbol)
            any_rule = pd.Series(False, index=stored.index)
            for rule, mask in masks.items():
                counts[rule] = counts.get(rule, 0) + int(mask.sum())
                any_rule |= mask
            if any_rule.any():
                samples.append(stored[any_rule].head(SAMPLE_ROWS))
    violations = sum(counts.values())
    metadata = {"rows_scanned": rows, "symbols": MetadataValue.json(symbols), "violations_by_rule": counts}
    if samples:
        metadata["first_violations"] = MetadataValue.md(pd.concat(samples).head(SAMPLE_ROWS).to_markdown(index=False))
    return AssetCheckResult(passed=violations == 0, severity=AssetCheckSeverity.ERROR, metadata=metadata)


@asset_check(
    asset=ml_predictions,
    description="No stored prediction comes from a model whose training labels matured at or after its hour.",
)
def ml_predictions_leakage_scan(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.transaction() as conn:
        leaks = read_leaking_predictions(conn, EARLIEST, LATEST)
        (rows,) = conn.execute("SELECT count(*) FROM ml_predictions").fetchone()
    metadata = {"rows_scanned": rows, "violations": len(leaks)}
    if len(leaks):
        metadata["first_violations"] = MetadataValue.md(leaks.head(SAMPLE_ROWS).to_markdown(index=False))
    return AssetCheckResult(passed=leaks.empty, severity=AssetCheckSeverity.ERROR, metadata=metadata)


WAREHOUSE_CHECKS = [raw_ohlcv_contract_scan, ml_predictions_leakage_scan]
