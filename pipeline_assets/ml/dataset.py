"""The model input frame: which columns a model sees and which rows are usable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.features.families import FAMILIES, MODEL_FAMILIES, model_feature_columns

# Derived from the family declarations (features/families.py); with the OHLCV and sentiment
# families this is the id models were stored with before families were declared.
MODEL_FEATURE_COLUMNS: tuple[str, ...] = model_feature_columns(MODEL_FAMILIES)
MODEL_FEATURE_SET_ID = content_id(
    "inputs-v1",
    {**{name: FAMILIES[name].feature_set_id for name in MODEL_FAMILIES}, "columns": MODEL_FEATURE_COLUMNS},
)


class DatasetError(ValueError):
    pass


def check_feature_sets(frame: pd.DataFrame, family_ids: Mapping[str, str] | None = None) -> None:
    """Refuse rows computed by another feature-set version than ``family_ids`` (family name ->
    family feature-set id; default the current code's): mixing them would train or predict on
    features that mean something else."""
    family_ids = family_ids or {name: FAMILIES[name].feature_set_id for name in MODEL_FAMILIES}
    expected = {f"{name}_feature_set_id": wanted for name, wanted in family_ids.items()}
    for column, wanted in expected.items():
        if column not in frame.columns:
            raise DatasetError(f"model input frame lacks {column}")
        present = frame[column].dropna()
        stale = present[present != wanted]
        if len(stale):
            rows = frame.loc[stale.index]
            raise DatasetError(
                f"{len(stale)} rows carry {column}={stale.iloc[0]!r}, expected {wanted!r} "
                f"(symbols {sorted(rows['symbol'].unique())}, ts {rows['ts'].min().isoformat()} .. "
                f"{rows['ts'].max().isoformat()}); re-materialise those feature partitions"
            )


def split_complete_rows(
    frame: pd.DataFrame, family_ids: Mapping[str, str] | None = None, columns: Sequence[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows with every model feature present, rows missing some: warm-up bars or no sentiment row).
    ``family_ids`` / ``columns``: the model's feature set (default the current code's)."""
    check_feature_sets(frame, family_ids)
    columns = list(columns or MODEL_FEATURE_COLUMNS)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DatasetError(f"model input frame lacks feature column(s) {missing}")
    complete = frame[columns].notna().all(axis=1)
    return frame[complete].reset_index(drop=True), frame[~complete].reset_index(drop=True)
