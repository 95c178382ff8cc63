"""Ensemble weights: point-in-time (only labels matured before the predicted hour), better members
weigh more, missing members are left out and the rest renormalised."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.ml import ensemble
from pipeline_assets.ml.ensemble import PROBABILITY_COLUMNS, EnsembleParams

START = pd.Timestamp("2024-03-01", tz="UTC")
HORIZON = pd.Timedelta(hours=5)


def _history(hours: int = 400, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labels for two symbols and three members: 'sharp' puts 0.7 on the truth 70% of the time,
    'noise' is a random Dirichlet draw, 'flat' says 1/3 each."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=hours, freq="h")
    keys = pd.DataFrame({"symbol": np.repeat(["AAA", "BBB"], hours), "ts": np.tile(ts, 2)})
    y = rng.choice(3, size=len(keys), p=[0.4, 0.2, 0.4])
    labels = keys.assign(direction=y.astype(np.int16), matured_at=keys["ts"] + HORIZON)
    n = len(keys)
    target = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
    sharp = np.full((n, 3), 0.15)
    sharp[np.arange(n), target] = 0.7
    members = {
        "sharp": sharp,
        "noise": rng.dirichlet([1.0, 1.0, 1.0], n),
        "flat": np.full((n, 3), 1 / 3),
    }
    predictions = pd.concat(
        [
            keys.assign(member=name, **{c: p[:, i] for i, c in enumerate(PROBABILITY_COLUMNS)})
            for name, p in members.items()
        ],
        ignore_index=True,
    )
    return predictions, labels


@pytest.fixture(scope="module")
def history():
    return _history()


def test_weights_never_use_labels_matured_at_or_after_the_predicted_hour(history):
    predictions, labels = history
    hour = START + pd.Timedelta(hours=250)
    fitted = ensemble.fit_weights(predictions, labels, hour, ["sharp", "noise", "flat"])
    assert fitted.method == "linear_pool_em"
    assert pd.Timestamp(fitted.labels_matured_until) < hour
    # Every label maturing at or after the hour (including exactly at it) and every prediction
    # for those rows is scrambled: identical weights and id.
    late = labels["matured_at"] >= hour
    assert (labels["matured_at"] == hour).any()
    scrambled_labels = labels.assign(direction=np.where(late, (labels["direction"] + 1) % 3, labels["direction"]))
    late_keys = labels.loc[late, ["symbol", "ts"]].assign(late=True)
    marked = predictions.merge(late_keys, on=["symbol", "ts"], how="left")
    scrambled_predictions = predictions.copy()
    scrambled_predictions.loc[marked["late"].eq(True).to_numpy(), list(PROBABILITY_COLUMNS)] = [0.98, 0.01, 0.01]
    again = ensemble.fit_weights(scrambled_predictions, scrambled_labels, hour, ["sharp", "noise", "flat"])
    assert again.weights == fitted.weights and again.weights_id == fitted.weights_id
    # Sensitivity: scrambling labels that had matured before the hour does change the weights.
    early = labels["matured_at"] < hour
    changed = labels.assign(direction=np.where(early, (labels["direction"] + 1) % 3, labels["direction"]))
    assert ensemble.fit_weights(predictions, changed, hour, ["sharp", "noise", "flat"]).weights != fitted.weights


def test_better_member_gets_more_weight_and_the_optimum_is_found(history):
    predictions, labels = history
    hour = START + pd.Timedelta(hours=400)
    fitted = ensemble.fit_weights(predictions, labels, hour, ["noise", "sharp", "flat"])
    weights = fitted.weight_of()
    assert fitted.members == ("flat", "noise", "sharp")
    assert weights["sharp"] > 0.6 and weights["sharp"] > weights["flat"] > 0 and weights["sharp"] > weights["noise"]
    assert fitted.member_log_loss["sharp"] < fitted.member_log_loss["flat"] < fitted.member_log_loss["noise"]
    assert weights["sharp"] > 0.95
    # The optimum here is 'sharp' alone; the Dirichlet prior (1 pseudo-row per member) keeps the
    # others slightly above zero at a small cost in log loss.
    assert fitted.fit_log_loss <= min(fitted.member_log_loss.values()) + 0.005
    # Two members with a negligible prior: EM agrees with a brute-force search over the simplex.
    pair = ensemble.fit_weights(predictions, labels, hour, ["sharp", "noise"], EnsembleParams(prior_rows=1e-9))
    rows = labels[labels["matured_at"] < hour].merge(predictions, on=["symbol", "ts"])
    y = rows["direction"].to_numpy()
    p = {
        m: rows[rows["member"] == m][list(PROBABILITY_COLUMNS)].to_numpy()[
            np.arange((rows["member"] == m).sum()), y[rows["member"] == m]
        ]
        for m in ("sharp", "noise")
    }
    grid = np.linspace(0.0, 1.0, 10001)
    losses = [-np.log(g * p["noise"] + (1 - g) * p["sharp"]).mean() for g in grid]
    assert pair.weight_of()["noise"] == pytest.approx(grid[int(np.argmin(losses))], abs=2e-4)


def test_missing_member_rows_are_renormalised_and_recorded(history):
    predictions, labels = history
    weights = ensemble.fit_weights(predictions, labels, START + pd.Timedelta(hours=300), ["sharp", "flat"])
    hour_rows = predictions[predictions["ts"] >= START + pd.Timedelta(hours=300)]
    sharp = hour_rows[hour_rows["member"] == "sharp"].drop(columns="member")
    flat = hour_rows[(hour_rows["member"] == "flat") & (hour_rows["symbol"] == "AAA")].drop(columns="member")
    combined = ensemble.combine({"sharp": sharp, "flat": flat}, weights)
    assert len(combined) == len(sharp)  # every row any member predicted
    both = combined[combined["symbol"] == "AAA"]
    only = combined[combined["symbol"] == "BBB"]
    assert set(both["members_used"]) == {"flat,sharp"} and set(both["n_members"]) == {2}
    assert set(only["members_used"]) == {"sharp"} and set(only["n_members"]) == {1}
    assert set(combined["weights_id"]) == {weights.weights_id}
    w = weights.weight_of()
    expected_both = (
        w["sharp"] * sharp[sharp["symbol"] == "AAA"][list(PROBABILITY_COLUMNS)].to_numpy()
        + w["flat"] * flat[list(PROBABILITY_COLUMNS)].to_numpy()
    )
    np.testing.assert_allclose(both[list(PROBABILITY_COLUMNS)].to_numpy(), expected_both, atol=1e-12)
    np.testing.assert_allclose(
        only[list(PROBABILITY_COLUMNS)].to_numpy(),
        sharp[sharp["symbol"] == "BBB"][list(PROBABILITY_COLUMNS)].to_numpy(),
        atol=1e-12,
    )
    np.testing.assert_allclose(combined[list(PROBABILITY_COLUMNS)].sum(axis=1), 1.0, atol=1e-12)
    assert (combined["predicted_direction"] == combined[list(PROBABILITY_COLUMNS)].to_numpy().argmax(axis=1)).all()


def test_incomplete_history_rows_are_counted_and_thin_history_gives_equal_weights(history):
    predictions, labels = history
    hour = START + pd.Timedelta(hours=200)
    gap = (predictions["member"] == "noise") & (predictions["ts"] < START + pd.Timedelta(hours=50))
    fitted = ensemble.fit_weights(predictions[~gap], labels, hour, ["sharp", "noise"])
    assert fitted.incomplete_rows == 100 and fitted.fitted_rows == 2 * (200 - 5) - 100
    thin = ensemble.fit_weights(predictions, labels, START + pd.Timedelta(hours=40), ["sharp", "noise"])
    assert thin.method == "uniform_insufficient_history" and thin.weights == (0.5, 0.5)
    assert thin.fitted_rows == 2 * (40 - 5)


def test_weights_round_trip_and_bad_inputs_are_named(history):
    predictions, labels = history
    fitted = ensemble.fit_weights(predictions, labels, START + pd.Timedelta(hours=300), ["sharp", "noise"])
    restored = ensemble.EnsembleWeights.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert restored == fitted and restored.weights_id == fitted.weights_id
    assert ensemble.fit_weights(
        predictions, labels, START + pd.Timedelta(hours=301), ["sharp", "noise"]
    ).weights_id != (fitted.weights_id)
    bad = predictions[predictions["member"] == "sharp"].drop(columns="member").head(4).copy()
    bad.loc[bad.index[2], "prob_buy"] = np.nan
    with pytest.raises(
        ensemble.EnsembleError,
        match=r"member 'sharp': 1 row\(s\) with invalid probabilities, first AAA "
        r"2024-03-01T02:00:00\+00:00",
    ):
        ensemble.combine({"sharp": bad}, fitted)
    with pytest.raises(ensemble.EnsembleError, match=r"member\(s\) \['flat'\] have no weight"):
        ensemble.combine({"flat": bad}, fitted)
    with pytest.raises(ensemble.EnsembleError, match="timezone-aware"):
        ensemble.fit_weights(predictions, labels, pd.Timestamp("2024-03-10"), ["sharp"])


def test_accelerated_em_reaches_the_map_weights_of_nearly_alike_members():
    """Three members, two of them almost the same (plain EM crawls there): the weights satisfy the
    optimality conditions of the concave MAP objective (equal partial derivatives on the simplex)
    after few EM steps."""
    from pipeline_assets.ml.ensemble import _mixture_em

    rng = np.random.default_rng(3)
    n = 2000
    base = rng.uniform(0.2, 0.6, n)
    likelihood = np.column_stack([base, base * rng.uniform(0.995, 1.005, n), rng.uniform(0.1, 0.7, n)])
    w, steps = _mixture_em(likelihood, prior_rows=1.0, max_iter=10_000, tol=1e-12)
    assert abs(w.sum() - 1) < 1e-12 and (w > 0).all()
    gradient = (likelihood / (likelihood @ w)[:, None]).sum(axis=0) + 1.0 / w
    assert np.ptp(gradient) / gradient.mean() < 1e-6, gradient
    assert steps < 2_000, steps
