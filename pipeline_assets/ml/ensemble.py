"""Ensemble of member probability tables, weighted point-in-time.

Members give rows keyed (symbol, ts) with ``prob_sell, prob_hold, prob_buy`` (the ``ml_predictions``
columns, order SELL, HOLD, BUY).

Method: **linear opinion pool** ``p(y) = sum_m w_m p_m(y)`` with weights on the simplex
(w_m > 0, sum w_m = 1), fitted by maximising the log-likelihood of the matured labels (that is,
minimising log loss) with the EM algorithm for mixture proportions, under a symmetric Dirichlet
prior worth ``prior_rows`` pseudo-rows per member that pulls towards equal weights when evidence
is thin. The objective is concave in w, so EM's monotone updates reach the global optimum; the
prior keeps every weight strictly positive. Linear pooling was chosen over log-linear (geometric)
pooling because a subset of members, renormalised, is still a valid mixture (rows with a missing
member), and it never becomes more confident than its most confident member.

Point-in-time: weights for predicting bar ``prediction_hour`` are fitted only on labels whose
``matured_at`` is strictly before that hour (the same rule as the ``ml_predictions`` leakage check),
optionally within ``lookback_hours``. Rows are used only where every member has a prediction
(complete cases); matured rows missing some member are counted in ``incomplete_rows``. With fewer
than ``min_rows`` complete rows the weights are equal (``method="uniform_insufficient_history"``).

Weights are identified by a content hash (``weights_id``) of members, weights, method and
parameters. Each combined row records the members used and the weights id; members missing for
a row are left out and the remaining weights renormalised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.ml.labels import BUY, HOLD, SELL

ENSEMBLE_NAME = "direction_ensemble"  # model name of the ensemble's rows and weights sets
PROBABILITY_COLUMNS = ("prob_sell", "prob_hold", "prob_buy")
CLASSES = (SELL, HOLD, BUY)
KEY = ["symbol", "ts"]
SUM_TOLERANCE = 1e-6
EPS = 1e-12


class EnsembleError(ValueError):
    pass


@dataclass(frozen=True)
class EnsembleParams:
    lookback_hours: int | None = 720
    min_rows: int = 100
    prior_rows: float = 1.0
    max_iter: int = 10_000
    tol: float = 1e-12


@dataclass(frozen=True)
class EnsembleWeights:
    members: tuple[str, ...]
    weights: tuple[float, ...]
    method: str
    params: EnsembleParams
    prediction_hour: datetime
    fitted_rows: int = 0
    incomplete_rows: int = 0
    labels_matured_until: datetime | None = None
    fit_log_loss: float | None = None
    member_log_loss: dict[str, float] = field(default_factory=dict)
    iterations: int = 0

    @property
    def weights_id(self) -> str:
        return content_id(
            "ens",
            {
                "members": list(self.members),
                "weights": [repr(w) for w in self.weights],
                "method": self.method,
                "params": asdict(self.params),
            },
        )

    def weight_of(self) -> dict[str, float]:
        return dict(zip(self.members, self.weights, strict=True))

    def to_dict(self) -> dict:
        return {
            "weights_id": self.weights_id,
            "members": list(self.members),
            "weights": list(self.weights),
            "method": self.method,
            "params": asdict(self.params),
            "prediction_hour": pd.Timestamp(self.prediction_hour).isoformat(),
            "fitted_rows": self.fitted_rows,
            "incomplete_rows": self.incomplete_rows,
            "labels_matured_until": (
                pd.Timestamp(self.labels_matured_until).isoformat() if self.labels_matured_until is not None else None
            ),
            "fit_log_loss": self.fit_log_loss,
            "member_log_loss": dict(self.member_log_loss),
            "iterations": self.iterations,
        }

    @classmethod
    def from_dict(cls, data: dict) -> EnsembleWeights:
        matured = data.get("labels_matured_until")
        out = cls(
            members=tuple(data["members"]),
            weights=tuple(float(w) for w in data["weights"]),
            method=data["method"],
            params=EnsembleParams(**data["params"]),
            prediction_hour=pd.Timestamp(data["prediction_hour"]).to_pydatetime(),
            fitted_rows=int(data["fitted_rows"]),
            incomplete_rows=int(data["incomplete_rows"]),
            labels_matured_until=pd.Timestamp(matured).to_pydatetime() if matured else None,
            fit_log_loss=data.get("fit_log_loss"),
            member_log_loss=dict(data.get("member_log_loss", {})),
            iterations=int(data.get("iterations", 0)),
        )
        _check_weights(out.members, out.weights)
        if "weights_id" in data and data["weights_id"] != out.weights_id:
            raise EnsembleError(f"weights dict says id {data['weights_id']}, its content hashes to {out.weights_id}")
        return out


def _check_weights(members: Sequence[str], weights: Sequence[float]) -> None:
    if len(members) != len(weights) or not members:
        raise EnsembleError(f"{len(members)} members for {len(weights)} weights")
    if len(set(members)) != len(members):
        raise EnsembleError(f"duplicate member names in {list(members)}")
    w = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(w).all() or (w <= 0).any() or abs(w.sum() - 1.0) > 1e-9:
        raise EnsembleError(f"weights {list(weights)} are not strictly positive and summing to 1")


def uniform_weights(members: Sequence[str], prediction_hour: datetime, params: EnsembleParams | None = None):
    members = tuple(sorted(members))
    return EnsembleWeights(
        members, tuple(1.0 / len(members) for _ in members), "uniform", params or EnsembleParams(), prediction_hour
    )


def invalid_probability_rows(frame: pd.DataFrame) -> pd.Series:
    """Boolean mask of rows whose probabilities are missing, outside [0, 1] or not summing to 1."""
    proba = frame[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64)
    finite = np.isfinite(proba).all(axis=1)
    with np.errstate(invalid="ignore"):
        ok = finite & (proba >= 0).all(axis=1) & (proba <= 1).all(axis=1)
        ok &= np.abs(proba.sum(axis=1) - 1.0) <= SUM_TOLERANCE
    return pd.Series(~ok, index=frame.index)


def check_member_frame(member: str, frame: pd.DataFrame) -> None:
    """Raise EnsembleError naming the member, symbol and ts of the first bad row."""
    missing = [c for c in (*KEY, *PROBABILITY_COLUMNS) if c not in frame.columns]
    if missing:
        raise EnsembleError(f"member {member!r}: prediction frame lacks column(s) {missing}")
    duplicated = frame.duplicated(KEY)
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise EnsembleError(
            f"member {member!r}: {int(duplicated.sum())} duplicate (symbol, ts) rows, first {row['symbol']} "
            f"{pd.Timestamp(row['ts']).isoformat()}"
        )
    bad = invalid_probability_rows(frame)
    if bad.any():
        row = frame[bad].iloc[0]
        raise EnsembleError(
            f"member {member!r}: {int(bad.sum())} row(s) with invalid probabilities, first {row['symbol']} "
            f"{pd.Timestamp(row['ts']).isoformat()}: {[float(row[c]) for c in PROBABILITY_COLUMNS]}"
        )


def _em_step(likelihood: np.ndarray, w: np.ndarray, prior_rows: float) -> np.ndarray:
    n, m = likelihood.shape
    mixed = likelihood @ w
    responsibility_sums = (likelihood * (w / mixed[:, None])).sum(axis=0)
    new = (responsibility_sums + prior_rows) / (n + m * prior_rows)
    return new / new.sum()


def _objective(likelihood: np.ndarray, w: np.ndarray, prior_rows: float) -> float:
    return float(np.log(likelihood @ w).sum() + prior_rows * np.log(w).sum())


def _mixture_em(likelihood: np.ndarray, prior_rows: float, max_iter: int, tol: float) -> tuple[np.ndarray, int]:
    """MAP mixture proportions for an (n rows, m members) matrix of p_m(y_i).

    EM accelerated by SQUAREM (Varadhan & Roland 2008, scheme S3): two EM steps give a direction,
    a step length extrapolates along it, one more EM step stabilises. An extrapolation that leaves
    the simplex's interior or lowers the objective is replaced by the plain second EM step, so every
    iterate is at least as good as plain EM's and the fixed point (the concave objective's unique
    maximum) is the same; members whose predictions are nearly alike, where plain EM needs
    thousands of iterations, converge in tens. ``iteration`` counts EM steps."""
    n, m = likelihood.shape
    w = np.full(m, 1.0 / m)
    steps = 0
    while steps < max_iter:
        w1 = _em_step(likelihood, w, prior_rows)
        w2 = _em_step(likelihood, w1, prior_rows)
        steps += 2
        if np.max(np.abs(w1 - w)) < tol:
            return w1, steps - 1
        r = w1 - w
        v = (w2 - w1) - r
        norm_v = float(np.sqrt((v * v).sum()))
        candidate = w2
        if norm_v > 0:
            alpha = min(-1.0, -float(np.sqrt((r * r).sum())) / norm_v)
            extrapolated = w - 2.0 * alpha * r + alpha * alpha * v
            if (extrapolated > 0).all():
                extrapolated = _em_step(likelihood, extrapolated / extrapolated.sum(), prior_rows)
                steps += 1
                if _objective(likelihood, extrapolated, prior_rows) >= _objective(likelihood, w2, prior_rows):
                    candidate = extrapolated
        if np.max(np.abs(candidate - w)) < tol:
            return candidate, steps
        w = candidate
    return w, steps


def fit_weights(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    prediction_hour: datetime,
    members: Sequence[str],
    params: EnsembleParams | None = None,
) -> EnsembleWeights:
    """Weights for combining ``members`` when predicting bar ``prediction_hour``.

    ``predictions``: member, symbol, ts, prob_sell, prob_hold, prob_buy (past member predictions).
    ``labels``: symbol, ts, direction, matured_at. Only labels with matured_at < prediction_hour are
    read; nothing else in the frames can change the result.
    """
    params = params or EnsembleParams()
    if not params.prior_rows > 0:
        raise EnsembleError(f"prior_rows must be > 0 (keeps every weight positive), got {params.prior_rows}")
    members = tuple(sorted(members))
    if not members or len(set(members)) != len(members):
        raise EnsembleError(f"need distinct member names, got {list(members)}")
    for name, frame, columns in (
        ("predictions", predictions, ("member", *KEY, *PROBABILITY_COLUMNS)),
        ("labels", labels, (*KEY, "direction", "matured_at")),
    ):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise EnsembleError(f"{name} frame lacks column(s) {missing}")
    hour = pd.Timestamp(prediction_hour)
    if hour.tzinfo is None:
        raise EnsembleError(f"prediction_hour {hour} must be timezone-aware (UTC)")
    usable = labels[labels["matured_at"] < hour]
    if params.lookback_hours is not None:
        usable = usable[usable["matured_at"] >= hour - pd.Timedelta(hours=params.lookback_hours)]
    if usable.duplicated(KEY).any():
        row = usable[usable.duplicated(KEY)].iloc[0]
        raise EnsembleError(f"labels: duplicate row {row['symbol']} {pd.Timestamp(row['ts']).isoformat()}")
    bad_label = ~usable["direction"].isin(CLASSES)
    if bad_label.any():
        row = usable[bad_label].iloc[0]
        raise EnsembleError(
            f"labels: direction {row['direction']!r} not in {list(CLASSES)} at {row['symbol']} "
            f"{pd.Timestamp(row['ts']).isoformat()}"
        )
    usable = usable[[*KEY, "direction", "matured_at"]]
    likelihood_columns = []
    merged = usable
    present = np.zeros((len(usable), len(members)), dtype=bool)
    for j, member in enumerate(members):
        rows = predictions[predictions["member"] == member]
        rows = rows.merge(usable[KEY], on=KEY, how="inner")
        check_member_frame(member, rows)
        merged = merged.merge(
            rows[[*KEY, *PROBABILITY_COLUMNS]].rename(columns={c: f"{c}@{member}" for c in PROBABILITY_COLUMNS}),
            on=KEY,
            how="left",
        )
        present[:, j] = merged[f"{PROBABILITY_COLUMNS[0]}@{member}"].notna().to_numpy()
        likelihood_columns.append([f"{c}@{member}" for c in PROBABILITY_COLUMNS])
    complete = present.all(axis=1)
    incomplete = int((present.any(axis=1) & ~complete).sum())
    rows = merged[complete]
    if len(rows) < params.min_rows:
        return EnsembleWeights(
            members,
            tuple(1.0 / len(members) for _ in members),
            "uniform_insufficient_history",
            params,
            hour.to_pydatetime(),
            fitted_rows=int(len(rows)),
            incomplete_rows=incomplete,
        )
    y = rows["direction"].to_numpy(dtype=np.int64)
    likelihood = np.column_stack(
        [np.clip(rows[cols].to_numpy(dtype=np.float64)[np.arange(len(y)), y], EPS, 1.0) for cols in likelihood_columns]
    )
    w, iterations = _mixture_em(likelihood, params.prior_rows, params.max_iter, params.tol)
    return EnsembleWeights(
        members,
        tuple(float(v) for v in w),
        "linear_pool_em",
        params,
        hour.to_pydatetime(),
        fitted_rows=int(len(y)),
        incomplete_rows=incomplete,
        labels_matured_until=pd.Timestamp(rows["matured_at"].max()).to_pydatetime(),
        fit_log_loss=float(-np.log(likelihood @ w).mean()),
        member_log_loss={m: float(-np.log(likelihood[:, j]).mean()) for j, m in enumerate(members)},
        iterations=iterations,
    )


def combine(member_predictions: Mapping[str, pd.DataFrame], weights: EnsembleWeights) -> pd.DataFrame:
    """One row per (symbol, ts) present in any member: the weighted mixture of the members present
    for that row (weights renormalised over them), with members_used and weights_id."""
    weight_of = weights.weight_of()
    unknown = sorted(set(member_predictions) - set(weight_of))
    if unknown:
        raise EnsembleError(f"member(s) {unknown} have no weight in {weights.weights_id} ({list(weights.members)})")
    parts = []
    for member in sorted(member_predictions):
        frame = member_predictions[member]
        check_member_frame(member, frame)
        parts.append(frame[[*KEY, *PROBABILITY_COLUMNS]].assign(member=member, weight=weight_of[member]))
    columns = [*KEY, *PROBABILITY_COLUMNS, "predicted_direction", "members_used", "n_members", "weights_id"]
    if not parts or all(p.empty for p in parts):
        return pd.DataFrame(columns=columns)
    long = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    for c in PROBABILITY_COLUMNS:
        long[c] = long[c].astype(np.float64) * long["weight"]
    grouped = long.sort_values("member").groupby(KEY, sort=True)
    out = grouped[[*PROBABILITY_COLUMNS, "weight"]].sum()
    proba = out[list(PROBABILITY_COLUMNS)].to_numpy() / out["weight"].to_numpy()[:, None]
    proba /= proba.sum(axis=1, keepdims=True)
    out[list(PROBABILITY_COLUMNS)] = proba
    out["predicted_direction"] = proba.argmax(axis=1).astype(np.int16)
    out["members_used"] = grouped["member"].agg(",".join)
    out["n_members"] = grouped["member"].size()
    out["weights_id"] = weights.weights_id
    return out.reset_index()[columns].sort_values(["ts", "symbol"], ignore_index=True)
