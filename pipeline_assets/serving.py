"""In-process predictor: the champion model loaded once (SHA-256 verified against the append-only
artifact ledger), SELL/HOLD/BUY probabilities for one feature row or a batch, with the confidence
and the members used. The numbers equal ``ml_predictions``' for the same inputs (tested).

    predictor = Predictor.from_warehouse(database_url)          # champion of direction_xgb
    predictor.predict({"log_return_1h": ..., ...})              # one row (mapping or 1-D array)
    predictor.predict_batch(frame_or_2d_array)                  # (n, 3) probabilities
    predictor.predict_stored(database_url, symbols, start, end)  # from the warehouse's features

Features read from the warehouse are those of the feature-set version the model was trained on
(``Member.feature_set_id``); if that version has no stored rows for the range, the read raises
``FeatureSetNotMaterialised`` naming the id, the tables and the range.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import xgboost as xgb

from pipeline_assets.ml import direction_xgb
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS, split_complete_rows
from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect
from pipeline_assets.store.feature_sets import FeatureSetNotMaterialised, resolve_model_feature_set
from pipeline_assets.store.warehouse import read_serving_inputs

__all__ = ["FeatureSetNotMaterialised", "Member", "Prediction", "Predictor", "PredictorError"]

CLASSES = ("SELL", "HOLD", "BUY")


class PredictorError(ValueError):
    pass


@dataclass(frozen=True)
class Member:
    name: str
    model_id: int
    feature_set_id: str
    sha256: str
    load_ms: float


@dataclass(frozen=True)
class Prediction:
    probabilities: dict[str, float]
    direction: str
    confidence: float
    members: tuple[tuple[str, int], ...]


class Predictor:
    def __init__(self, booster: xgb.Booster, member: Member, feature_columns: tuple[str, ...], iteration_range=(0, 0)):
        self._booster = booster
        self._iterations = iteration_range
        self.member = member
        self.feature_columns = feature_columns
        self._index = {name: i for i, name in enumerate(feature_columns)}
        self._row = np.empty((1, len(feature_columns)), dtype=np.float64)
        self._members = ((member.name, member.model_id),)

    @classmethod
    def from_warehouse(
        cls, database_url: str, model_name: str = direction_xgb.MODEL_NAME, model_id: int | None = None
    ) -> Predictor:
        """The champion of ``model_name`` (or ``model_id``); its artifact is verified against the
        ledger's SHA-256 before it is deserialised (a corrupt artifact raises)."""
        started = time.perf_counter()
        with connect(database_url) as conn:
            if model_id is None:
                record = registry.champion(conn, model_name)
                if record is None:
                    raise PredictorError(f"no champion {model_name} model in the warehouse; train one first")
                model_id = record.model_id
            record, artifact = registry.load_artifact(conn, model_id)
        columns = tuple(record.params.get("feature_columns") or MODEL_FEATURE_COLUMNS)
        if columns != MODEL_FEATURE_COLUMNS:
            raise PredictorError(
                f"model {model_id} was trained on columns {list(columns)}, "
                f"this code computes {list(MODEL_FEATURE_COLUMNS)}"
            )
        model = direction_xgb.deserialize(artifact)
        try:  # trained with early stopping: predict with the best iteration, as predict_proba does
            iteration_range = (0, int(model.best_iteration) + 1)
        except AttributeError:
            iteration_range = (0, 0)
        member = Member(
            record.model_name,
            record.model_id,
            record.feature_set_id,
            registry.sha256_hex(artifact),
            (time.perf_counter() - started) * 1000.0,
        )
        return cls(model.get_booster(), member, columns, iteration_range)

    def read_stored_inputs(
        self, database_url: str, symbols: Sequence[str], start: datetime, end: datetime
    ) -> pd.DataFrame:
        """The stored feature rows of this model's feature set for [start, end) that have every
        feature (warm-up rows and hours without a sentiment row are left out, as ml_predictions
        does). Raises FeatureSetNotMaterialised when that feature-set version has no rows there."""
        with connect(database_url) as conn:
            inputs = read_serving_inputs(conn, self.member.feature_set_id, symbols, start, end)
            family_ids = {
                f.name: f.feature_set_id for f in resolve_model_feature_set(conn, self.member.feature_set_id).families
            }
        complete, _ = split_complete_rows(inputs, family_ids, self.feature_columns)
        return complete

    def predict_stored(self, database_url: str, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        """symbol, ts, prob_sell, prob_hold, prob_buy for the stored rows of read_stored_inputs."""
        rows = self.read_stored_inputs(database_url, symbols, start, end)
        proba = self.predict_batch(rows) if len(rows) else np.empty((0, 3))
        return pd.DataFrame(
            {
                "symbol": rows["symbol"].to_numpy(),
                "ts": rows["ts"].reset_index(drop=True),
                "prob_sell": proba[:, 0],
                "prob_hold": proba[:, 1],
                "prob_buy": proba[:, 2],
            }
        )

    def predict_batch(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """(n, 3) float64 probabilities (SELL, HOLD, BUY), rows summing to 1."""
        if isinstance(features, pd.DataFrame):
            missing = [c for c in self.feature_columns if c not in features.columns]
            if missing:
                raise PredictorError(f"feature frame lacks column(s) {missing}")
            x = features[list(self.feature_columns)].to_numpy(dtype=np.float64)
        else:
            x = np.asarray(features, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != len(self.feature_columns):
                raise PredictorError(f"expected an (n, {len(self.feature_columns)}) array, got shape {x.shape}")
        return self._proba(x)

    def predict(self, row: Mapping[str, float] | np.ndarray) -> Prediction:
        x = self._row
        if isinstance(row, Mapping):
            missing = [c for c in self.feature_columns if c not in row]
            if missing:
                raise PredictorError(f"feature row lacks {missing}")
            for name, i in self._index.items():
                x[0, i] = row[name]
        else:
            values = np.asarray(row, dtype=np.float64)
            if values.shape != (len(self.feature_columns),):
                raise PredictorError(f"expected {len(self.feature_columns)} features, got shape {values.shape}")
            x[0] = values
        proba = self._proba(x)[0]
        best = int(proba.argmax())
        return Prediction(
            probabilities={c: float(p) for c, p in zip(CLASSES, proba, strict=True)},
            direction=CLASSES[best],
            confidence=float(proba[best]),
            members=self._members,
        )

    def _proba(self, x: np.ndarray) -> np.ndarray:
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise PredictorError(f"feature {self.feature_columns[bad[1]]!r} of row {bad[0]} is not finite")
        # the same call XGBClassifier.predict_proba makes, then ml_predictions' float64 renormalisation
        proba = self._booster.inplace_predict(x, iteration_range=self._iterations).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)
