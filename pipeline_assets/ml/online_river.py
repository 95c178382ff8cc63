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
    """Prequential pass over ``rows`` (sorted by ts) that respects the label delay: the prediction
    for bar t is made at t + 1h, when only labels with matured_at <= t + 1h are known, so the
    model learns a row only once its label has matured *relative to the row being predicted*
    (pending rows wait in time order), predicts, and the row joins the queue. Rows still pending at
    the end have matured by now (they come from ml_labels) and are learned. Returns this batch's
    prequential accuracy. Learning each row right after predicting it would use labels from the
    future (bar t's label is known only at t + horizon + 1h)."""
    if rows.empty:
        return {"batch_rows": 0, "batch_accuracy": None}
    missing = [c for c in (*MODEL_FEATURE_COLUMNS, "direction", "ts", "matured_at") if c not in rows.columns]
    if missing:
        raise ValueError(f"online rows lack column(s) {missing}")
    batch_accuracy = metrics.Accuracy()
    features = rows[list(MODEL_FEATURE_COLUMNS)].to_dict(orient="records")
    predicted_at = (rows["ts"] + pd.Timedelta(hours=1)).to_numpy()
    matured_at = rows["matured_at"].to_numpy()
    labels = rows["direction"].astype(int).to_numpy()
    pending: list[int] = []  # row indices in ts order; matured_at increases with ts for one horizon

    def learn(index: int) -> None:
        state.pipeline.learn_one(features[index], int(labels[index]))
        state.rows_learned += 1

    for i, x in enumerate(features):
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in x.values()):
            raise ValueError(f"online rows must have complete features (row at {rows['ts'].iloc[i]})")
        still = []
        for j in pending:
            if matured_at[j] <= predicted_at[i]:
                learn(j)
            else:
                still.append(j)
        pending = still
        if state.rows_learned:
            proba = state.pipeline.predict_proba_one(x)
            if proba:
                predicted = max(proba, key=proba.get)
                state.accuracy.update(int(labels[i]), predicted)
                batch_accuracy.update(int(labels[i]), predicted)
                state.cross_entropy.update(int(labels[i]), proba)
        pending.append(i)
    for j in pending:
        learn(j)
    return {"batch_rows": int(len(rows)), "batch_accuracy": float(batch_accuracy.get())}


def serialize(state: OnlineState) -> bytes:
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def deserialize(artifact: bytes) -> OnlineState:
    # Only called on bytes whose sha256 the registry has verified against our own record.
    state = pickle.loads(artifact)  # noqa: S301
    if not isinstance(state, OnlineState):
        raise TypeError(f"artifact holds {type(state).__name__}, expected OnlineState")
    return state
