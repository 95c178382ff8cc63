"""The model input frame: which columns a model sees and which rows are usable."""

from __future__ import annotations

import pandas as pd

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.features.ohlcv_features import FEATURE_COLUMNS as OHLCV_FEATURE_COLUMNS
from pipeline_assets.features.ohlcv_features import FEATURE_SET_ID as OHLCV_FEATURE_SET_ID
from pipeline_assets.features.sentiment import SENTIMENT_FEATURE_COLUMNS, SENTIMENT_FEATURE_SET_ID

MODEL_FEATURE_COLUMNS: tuple[str, ...] = (*OHLCV_FEATURE_COLUMNS, *SENTIMENT_FEATURE_COLUMNS)
MODEL_FEATURE_SET_ID = content_id(
    "inputs-v1",
    {"ohlcv": OHLCV_FEATURE_SET_ID, "sentiment": SENTIMENT_FEATURE_SET_ID, "columns": MODEL_FEATURE_COLUMNS},
)


class DatasetError(ValueError):
    pass


def check_feature_sets(frame: pd.DataFrame) -> None:
    """Refuse rows computed by another feature-set version: mixing them would train or predict
    on features that mean something else."""
    expected = {
        "ohlcv_feature_set_id": OHLCV_FEATURE_SET_ID,
        "sentiment_feature_set_id": SENTIMENT_FEATURE_SET_ID,
    }
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


def split_complete_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows with every model feature present, rows missing some: warm-up bars or no sentiment row)."""
    check_feature_sets(frame)
    missing = [c for c in MODEL_FEATURE_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"model input frame lacks feature column(s) {missing}")
    complete = frame[list(MODEL_FEATURE_COLUMNS)].notna().all(axis=1)
    return frame[complete].reset_index(drop=True), frame[~complete].reset_index(drop=True)
