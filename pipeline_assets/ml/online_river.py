"""Online direction model (River): learns each matured labelled row once, in time order.

Its prequential metrics (predict first, then learn) are carried inside the state, so every
registered version reports how the model did on rows it had not seen yet.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field

import pandas as pd
from river import compose, linear_model, metrics, multiclass, optim, preprocessing

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS, MODEL_FEATURE_SET_ID
from pipeline_assets.ml.labels import LABEL_SET_ID

MODEL_NAME = "direction_river"
ARTIFACT_FORMAT = "river-pickle"
ONLINE_PARAMS = {
    "learning_rate": 0.02,
    "l2": 1e-4,
    "scaler": "StandardScaler",
    "strategy": "one-vs-rest-logreg",
}
ONLINE_VERSION_HASH = content_id(
    "river", {"params": ONLINE_PARAMS, "features": MODEL_FEATURE_SET_ID, "labels": LABEL_SET_ID}
)


def new_pipeline() -> compose.Pipeline:
    return preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(
        linear_model.LogisticRegression(optimizer=optim.SGD(ONLINE_PARAMS["learning_rate"]), l2=ONLINE_PARAMS["l2"])
    )


@dataclass
class OnlineState:
    pipeline: compose.Pipeline = field(default_factory=new_pipeline)
    accuracy: metrics.Accuracy = field(default_factory=metrics.Accuracy)
    cross_entropy: metrics.CrossEntropy = field(default_factory=metrics.CrossEntropy)
    rows_learned: int = 0

    def summary(self) -> dict:
        return {
            "rows_learned": self.rows_learned,
            "prequential_accuracy": float(self.accuracy.get()) if self.rows_learned else None,
            "prequential_cross_entropy": float(self.cross_entropy.get()) if self.rows_learned else None,
        }


def learn_rows(state: OnlineState, rows: pd.DataFrame) -> dict:
    """Predict-then-learn over ``rows`` (sorted by ts). Returns this batch's prequential accuracy."""
    if rows.empty:
        return {"batch_rows": 0, "batch_accuracy": None}
    missing = [c for c in (*MODEL_FEATURE_COLUMNS, "direction") if c not in rows.columns]
    if missing:
        raise ValueError(f"online rows lack column(s) {missing}")
    batch_accuracy = metrics.Accuracy()
    features = rows[list(MODEL_FEATURE_COLUMNS)].to_dict(orient="records")
    for x, y in zip(features, rows["direction"].astype(int), strict=True):
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in x.values()):
            raise ValueError("online rows must have complete features")
        if state.rows_learned:
            proba = state.pipeline.predict_proba_one(x)
            if proba:
                predicted = max(proba, key=proba.get)
                state.accuracy.update(y, predicted)
                batch_accuracy.update(y, predicted)
                state.cross_entropy.update(y, proba)
        state.pipeline.learn_one(x, y)
        state.rows_learned += 1
    return {"batch_rows": int(len(rows)), "batch_accuracy": float(batch_accuracy.get())}


def serialize(state: OnlineState) -> bytes:
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def deserialize(artifact: bytes) -> OnlineState:
    # Only called on bytes whose sha256 the registry has verified against our own record.
    state = pickle.loads(artifact)  # noqa: S301
    if not isinstance(state, OnlineState):
        raise TypeError(f"artifact holds {type(state).__name__}, expected OnlineState")
    return state
