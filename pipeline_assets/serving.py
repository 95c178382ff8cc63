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

``EnsemblePredictor`` serves the ensemble of a predicted day (its members, weights and fallback) the
same way; its numbers equal that day's ``direction_ensemble`` rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import xgboost as xgb

from pipeline_assets.ml import direction_xgb, linear_model, pattern_member
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS, split_complete_rows
from pipeline_assets.ml.ensemble import ENSEMBLE_NAME
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect
from pipeline_assets.store.feature_sets import FeatureSetNotMaterialised, resolve_model_feature_set
from pipeline_assets.store.warehouse import read_active_detections, read_serving_inputs

__all__ = [
    "EnsemblePredictor",
    "FeatureSetNotMaterialised",
    "Member",
    "Prediction",
    "Predictor",
    "PredictorError",
]

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


def _feature_matrix(columns: tuple[str, ...], features: pd.DataFrame | np.ndarray) -> np.ndarray:
    """An (n, len(columns)) float64 matrix from a frame with those columns or a 2-D array."""
    if isinstance(features, pd.DataFrame):
        missing = [c for c in columns if c not in features.columns]
        if missing:
            raise PredictorError(f"feature frame lacks column(s) {missing}")
        return features[list(columns)].to_numpy(dtype=np.float64)
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(columns):
        raise PredictorError(f"expected an (n, {len(columns)}) array, got shape {x.shape}")
    return x


def _fill_row(x: np.ndarray, columns: tuple[str, ...], index: dict[str, int], row: Mapping[str, float] | np.ndarray):
    """One feature row (a mapping of names, or a 1-D array in ``columns`` order) into ``x[0]``."""
    if isinstance(row, Mapping):
        missing = [c for c in columns if c not in row]
        if missing:
            raise PredictorError(f"feature row lacks {missing}")
        for name, i in index.items():
            x[0, i] = row[name]
    else:
        values = np.asarray(row, dtype=np.float64)
        if values.shape != (len(columns),):
            raise PredictorError(f"expected {len(columns)} features, got shape {values.shape}")
        x[0] = values


def _check_finite(columns: tuple[str, ...], x: np.ndarray) -> None:
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise PredictorError(f"feature {columns[bad[1]]!r} of row {bad[0]} is not finite")


def _prediction(proba: np.ndarray, members: tuple[tuple[str, int], ...]) -> Prediction:
    best = int(proba.argmax())
    return Prediction(
        probabilities={c: float(p) for c, p in zip(CLASSES, proba, strict=True)},
        direction=CLASSES[best],
        confidence=float(proba[best]),
        members=members,
    )


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
        with connect(database_url) as conn:
            return cls.from_connection(conn, model_name, model_id)

    @classmethod
    def from_connection(
        cls, conn, model_name: str = direction_xgb.MODEL_NAME, model_id: int | None = None
    ) -> Predictor:
        started = time.perf_counter()
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

    def predict_batch(self, features: pd.DataFrame | np.ndarray, symbols=None, ts=None) -> np.ndarray:
        """(n, 3) float64 probabilities (SELL, HOLD, BUY), rows summing to 1 (``symbols`` and
        ``ts`` are accepted for the ensemble's interface; this member does not use them)."""
        return self._proba(_feature_matrix(self.feature_columns, features))

    def predict(self, row: Mapping[str, float] | np.ndarray) -> Prediction:
        _fill_row(self._row, self.feature_columns, self._index, row)
        return _prediction(self._proba(self._row)[0], self._members)

    def _proba(self, x: np.ndarray) -> np.ndarray:
        _check_finite(self.feature_columns, x)
        # the same call XGBClassifier.predict_proba makes, then ml_predictions' float64 renormalisation
        proba = self._booster.inplace_predict(x, iteration_range=self._iterations).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)


class _LinearMember:
    """The linear member as arrays: train-only scaler statistics (global, or per symbol with the
    scaler's unseen-symbol rule) applied in the model's column order, then the softmax of the
    stored coefficients (the same operations as ml/linear_model.predict_proba)."""

    def __init__(self, model: linear_model.LinearModel, member: Member, feature_columns: tuple[str, ...]):
        if tuple(model.feature_columns) != feature_columns:
            raise PredictorError(
                f"linear model {member.model_id} uses columns {list(model.feature_columns)}, "
                f"the ensemble's other members {list(feature_columns)}"
            )
        scaler = model.scaler
        index = [scaler.columns.index(c) if c in scaler.columns else None for c in feature_columns]

        def arrays(stats) -> tuple[np.ndarray, np.ndarray]:
            center = np.array([stats.center[i] if i is not None else 0.0 for i in index])
            scale = np.array([stats.scale[i] if i is not None else 1.0 for i in index])
            return center, scale

        self.member = member
        self._global = arrays(scaler.global_stats)
        self._per_symbol = {s: arrays(st) for s, st in scaler.symbol_stats.items()} if scaler.per_symbol else None
        self._unseen = scaler.unseen_symbol
        self._coef_t = np.ascontiguousarray(model.coef.T)
        self._intercept = model.intercept

    def _center_scale(self, symbols, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self._per_symbol is None:
            return self._global
        if symbols is None:
            raise PredictorError(f"linear model {self.member.model_id} scales per symbol: pass the rows' symbols")
        symbols = np.broadcast_to(np.asarray(symbols, dtype=object), (n,))
        center, scale = np.empty((n, len(self._global[0]))), np.empty((n, len(self._global[0])))
        for symbol in pd.unique(symbols):
            found = self._per_symbol.get(symbol)
            if found is None:
                if self._unseen == "error":
                    raise PredictorError(f"symbol {symbol} was not in linear model {self.member.model_id}'s training")
                found = self._global
            rows = symbols == symbol
            center[rows], scale[rows] = found
        return center, scale

    def predict_batch(self, x: np.ndarray, symbols=None, ts=None) -> np.ndarray:
        center, scale = self._center_scale(symbols, len(x))
        z = ((x - center) / scale) @ self._coef_t + self._intercept
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


class _PatternMember:
    """The chart-pattern member: the state of the patterns active at each row's (symbol, ts), from
    the ml_patterns detections loaded with the predictor (those detected by the row's bar), looked
    up in the stored table."""

    def __init__(self, model: pattern_member.PatternModel, member: Member, detections: pd.DataFrame):
        self.member = member
        self._model = model
        self._detections = detections

    def predict_batch(self, x: np.ndarray, symbols=None, ts=None) -> np.ndarray:
        if symbols is None or ts is None:
            raise PredictorError(
                f"pattern member {self.member.model_id} needs each row's symbol and ts (the patterns active then)"
            )
        keys = pd.DataFrame(
            {
                "symbol": np.broadcast_to(np.asarray(symbols, dtype=object), (len(x),)),
                "ts": pd.to_datetime(np.broadcast_to(np.asarray(ts, dtype="datetime64[us]"), (len(x),)), utc=True),
            }
        )
        return pattern_member.predict_proba(self._model, keys, self._detections)


class EnsemblePredictor:
    """The ensemble of a predicted day as served: its members' model versions (point-in-time, as
    ``ml_ensemble_predictions`` chose them), the weights set registered for that day, members left
    out that day (breaker or realised loss) absent, or the class priors when the day fell back to
    them. Probabilities equal that day's ``direction_ensemble`` rows for the same inputs (tested).

        predictor = EnsemblePredictor.from_warehouse(url)             # newest day with ensemble rows
        predictor.predict(row, symbol="BTCUSDT", ts=bar_time).probabilities
        predictor.predict_batch(frame)                                # frame with symbol and ts columns

    The pattern member reads the ml_patterns detections known by the end of the served day when
    the predictor is loaded (reload it to see later detections); it needs each row's symbol and ts.
    """

    def __init__(self, members, weights: tuple[float, ...], priors, day: str, weights_model_id: int):
        self.members = tuple(members)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.priors = None if priors is None else np.asarray(priors, dtype=np.float64)
        self.day = day
        self.weights_model_id = weights_model_id
        self.feature_columns = MODEL_FEATURE_COLUMNS
        self._index = {name: i for i, name in enumerate(self.feature_columns)}
        self._row = np.empty((1, len(self.feature_columns)), dtype=np.float64)
        self._used = tuple((m.member.name, m.member.model_id) for m in self.members)
        self.load_ms = sum(m.member.load_ms for m in self.members)
        self._by_name = sorted(zip(self.members, self.weights.tolist(), strict=True), key=lambda p: p[0].member.name)
        self._weight_sum = self.weights.sum()

    @classmethod
    def from_warehouse(cls, database_url: str, day: str | None = None) -> EnsemblePredictor:
        with connect(database_url) as conn:
            return cls.from_connection(conn, day)

    @classmethod
    def from_connection(cls, conn, day: str | None = None) -> EnsemblePredictor:
        if day is None:
            newest = conn.execute("SELECT max(ts) FROM ml_predictions WHERE model_name = %s", (ENSEMBLE_NAME,))
            last = newest.fetchone()[0]
            if last is None:
                raise PredictorError("ml_predictions has no ensemble rows; materialise ml_ensemble_predictions")
            day = pd.Timestamp(last).strftime("%Y-%m-%d")
        start = pd.Timestamp(day, tz="UTC")
        used = conn.execute(
            "SELECT model_name, array_agg(DISTINCT model_id) FROM ml_predictions "
            "WHERE ts >= %s AND ts < %s AND model_name = ANY(%s) GROUP BY model_name",
            (
                start,
                start + pd.Timedelta(days=1),
                [ENSEMBLE_NAME, direction_xgb.MODEL_NAME, linear_model.MODEL_NAME, pattern_member.MODEL_NAME],
            ),
        ).fetchall()
        ids = {name: sorted(v) for name, v in used}
        if ENSEMBLE_NAME not in ids:
            raise PredictorError(f"no ensemble rows for {day}; materialise ml_ensemble_predictions for that day")
        for name, found in ids.items():
            if len(found) > 1:
                raise PredictorError(f"{name} rows of {day} come from several model versions {found}")
        weights_id = ids[ENSEMBLE_NAME][0]
        _, artifact = registry.load_artifact(conn, weights_id)
        payload = json.loads(artifact)
        if "class_priors" in payload:
            return cls((), (), payload["class_priors"], day, weights_id)
        members = []
        for name in payload["members"]:
            if name not in ids:
                raise PredictorError(f"the ensemble of {day} used {name}, which has no rows that day")
            if name == direction_xgb.MODEL_NAME:
                members.append(Predictor.from_connection(conn, name, ids[name][0]))
            elif name in (linear_model.MODEL_NAME, pattern_member.MODEL_NAME):
                started = time.perf_counter()
                record, blob = registry.load_artifact(conn, ids[name][0])
                if name == linear_model.MODEL_NAME:
                    model = linear_model.deserialize(blob)
                else:
                    model = pattern_member.deserialize(blob)
                    detections = read_active_detections(conn, SYMBOLS, start, start + pd.Timedelta(days=1))
                member = Member(
                    record.model_name,
                    record.model_id,
                    record.feature_set_id,
                    registry.sha256_hex(blob),
                    (time.perf_counter() - started) * 1000.0,
                )
                if name == linear_model.MODEL_NAME:
                    members.append(_LinearMember(model, member, MODEL_FEATURE_COLUMNS))
                else:
                    members.append(_PatternMember(model, member, detections))
            else:
                raise PredictorError(f"ensemble member {name} has no in-process predictor")
        return cls(members, tuple(payload["weights"]), None, day, weights_id)

    def predict_batch(self, features: pd.DataFrame | np.ndarray, symbols=None, ts=None) -> np.ndarray:
        """(n, 3) float64 probabilities (SELL, HOLD, BUY). ``symbols`` and ``ts`` (or a frame's
        symbol and ts columns) are needed by members that scale per symbol or read patterns."""
        if isinstance(features, pd.DataFrame):
            if symbols is None and "symbol" in features.columns:
                symbols = features["symbol"].to_numpy(dtype=object)
            if ts is None and "ts" in features.columns:
                ts = features["ts"].to_numpy(dtype="datetime64[us]")
        return self._proba(_feature_matrix(self.feature_columns, features), symbols, ts)

    def predict(self, row: Mapping[str, float] | np.ndarray, symbol: str | None = None, ts=None) -> Prediction:
        _fill_row(self._row, self.feature_columns, self._index, row)
        when = None if ts is None else np.datetime64(pd.Timestamp(ts).tz_convert("UTC").tz_localize(None), "us")
        return _prediction(self._proba(self._row, symbol, when)[0], self._used)

    def _proba(self, x: np.ndarray, symbols, ts) -> np.ndarray:
        _check_finite(self.feature_columns, x)
        if not self.members:  # the day fell back to the class priors
            return np.tile(self.priors, (len(x), 1))
        # ml/ensemble.combine: members' probabilities times their weights, summed in member-name
        # order, divided by the summed weights, renormalised
        total = np.zeros((len(x), 3))
        for member, weight in self._by_name:
            total += member.predict_batch(x, symbols, ts) * weight
        proba = total / self._weight_sum
        return proba / proba.sum(axis=1, keepdims=True)
