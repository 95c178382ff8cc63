"""Multinomial logistic regression member: train-only scaler for validation, purged split, a refit
on the whole window with the chosen C, JSON parameters that rebuild scikit-learn's probabilities
exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.features.ohlcv_features import FEATURE_SET_ID, LOOKBACK_HOURS, compute_ohlcv_features
from pipeline_assets.features.sentiment import SENTIMENT_FEATURE_SET_ID, compute_sentiment_features, score_headlines
from pipeline_assets.ml import linear_model, scalers
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS
from pipeline_assets.ml.direction_xgb import TrainingError, purged_time_split
from pipeline_assets.ml.labels import compute_labels
from pipeline_assets.sources.synthetic import DEFAULT_SYMBOLS, SyntheticMarket

START = datetime(2024, 3, 1, tzinfo=UTC)
END = START + timedelta(days=30)


@pytest.fixture(scope="module")
def dataset() -> pd.DataFrame:
    market = SyntheticMarket()
    frames = []
    for symbol in DEFAULT_SYMBOLS:
        bars = market.ohlcv(symbol, START - timedelta(hours=LOOKBACK_HOURS), END + timedelta(hours=5))
        headlines = score_headlines(market.headlines(symbol, START - timedelta(days=1), END))
        labels, _ = compute_labels(bars, START, END)
        frame = (
            compute_ohlcv_features(bars)
            .merge(compute_sentiment_features(headlines, START, END), on="ts")
            .merge(labels, on="ts")
        )
        frames.append(
            frame.assign(
                symbol=symbol, ohlcv_feature_set_id=FEATURE_SET_ID, sentiment_feature_set_id=SENTIMENT_FEATURE_SET_ID
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values(["ts", "symbol"], ignore_index=True)


@pytest.fixture(scope="module")
def trained(dataset) -> linear_model.TrainedLinearModel:
    return linear_model.train_linear_model(dataset)


def test_parameters_rebuild_sklearn_probabilities_exactly(trained, dataset):
    model = trained.model
    x_scaled = model.scaler.transform(dataset)[list(MODEL_FEATURE_COLUMNS)].to_numpy()
    expected = trained.estimator.predict_proba(x_scaled)
    np.testing.assert_allclose(linear_model.predict_proba(model, dataset), expected, rtol=0, atol=1e-12)
    # The artifact is JSON numbers (no pickle); deserialised parameters predict the same.
    data = json.loads(trained.artifact)
    assert data["format"] == linear_model.ARTIFACT_FORMAT and len(data["coef"]) == 3
    restored = linear_model.deserialize(trained.artifact)
    np.testing.assert_array_equal(
        linear_model.predict_proba(restored, dataset), linear_model.predict_proba(model, dataset)
    )
    assert restored.scaler == model.scaler and restored.classes == (0, 1, 2)
    assert linear_model.serialize(restored) == trained.artifact


def test_validated_scaler_is_fitted_on_the_train_slice_only(trained, dataset):
    split = purged_time_split(dataset, 0.15, 0.15)
    assert trained.validated_model.scaler == scalers.fit(split.train, MODEL_FEATURE_COLUMNS, "standard")
    # Wild values in the test slice change neither the validated scaler nor its coefficients (so
    # neither the chosen C nor the reported test metrics' model) ...
    perturbed = dataset.copy()
    later = perturbed["ts"] >= split.test["ts"].min()
    perturbed.loc[later, "rsi_14"] = perturbed.loc[later, "rsi_14"] * 50 + 1000
    again = linear_model.train_linear_model(perturbed)
    assert again.validated_model.scaler == trained.validated_model.scaler
    np.testing.assert_array_equal(again.validated_model.coef, trained.validated_model.coef)
    assert again.metrics["test"]["log_loss"] != trained.metrics["test"]["log_loss"]
    # ... while the registered refit, trained on the whole window, does see them.
    assert again.model.scaler != trained.model.scaler


def test_registered_model_is_refitted_on_the_whole_window(trained, dataset):
    split = purged_time_split(dataset, 0.15, 0.15)
    # the refit's scaler comes from the window's rows (training data only), its C from validation
    assert trained.model.scaler == scalers.fit(dataset, MODEL_FEATURE_COLUMNS, "standard")
    assert trained.model.c == trained.validated_model.c == trained.metrics["validation"]["chosen_c"]
    assert trained.training_rows == len(dataset) > trained.metrics["train"]["rows"] == len(split.train)
    assert not np.array_equal(trained.model.coef, trained.validated_model.coef)
    assert trained.artifact == linear_model.serialize(trained.model)
    assert trained.artifact != linear_model.serialize(trained.validated_model)
    # the refit equals a plain fit of the window with the chosen C (nothing else leaks in)
    estimator = linear_model._fit(
        trained.model.scaler.transform(dataset)[list(MODEL_FEATURE_COLUMNS)].to_numpy(),
        dataset["direction"].to_numpy(),
        trained.model.c,
        linear_model.LinearTrainingParams(),
    )
    np.testing.assert_allclose(trained.model.coef, estimator.coef_, rtol=0, atol=1e-12)
    # reported metrics are the validated model's on the untouched test slice, labelled as such
    test_proba = linear_model.predict_proba(trained.validated_model, trained.test)
    assert trained.metrics["test_vs_baselines"]["metrics"]["model"]["log_loss"] == pytest.approx(
        float(np.mean(-np.log(test_proba[np.arange(len(test_proba)), trained.test["direction"].to_numpy()])))
    )
    assert "validated model" in trained.metrics["metrics_basis"]
    assert trained.metrics["refit"]["rows"] == len(dataset)
    assert trained.labels_matured_until == dataset["matured_at"].max().to_pydatetime()
    assert trained.train_start == dataset["ts"].min().to_pydatetime()
    # without refit the validated model is the registered one
    plain = linear_model.train_linear_model(dataset, linear_model.LinearTrainingParams(refit_on_window=False))
    np.testing.assert_array_equal(plain.model.coef, trained.validated_model.coef)
    assert plain.model.scaler == trained.validated_model.scaler and plain.metrics["refit"] is None
    assert plain.training_rows == len(split.train)


def test_split_discipline_and_metrics_with_baselines(trained, dataset):
    metrics = trained.metrics
    assert metrics["train"]["rows"] + metrics["validation"]["rows"] + metrics["test"]["rows"] + metrics[
        "purged_rows"
    ] == len(dataset)
    assert metrics["purged_rows"] == 2 * 4 * len(DEFAULT_SYMBOLS)
    assert metrics["validation"]["chosen_c"] in linear_model.LinearTrainingParams().c_grid
    chosen = metrics["validation"]["log_loss_by_c"][str(metrics["validation"]["chosen_c"])]
    assert chosen == min(metrics["validation"]["log_loss_by_c"].values())
    baselines = metrics["test_vs_baselines"]
    assert set(baselines["metrics"]) == {"model", "class_priors", "majority_class", "persistence"}
    assert baselines["metrics"]["model"]["log_loss"] == pytest.approx(metrics["test"]["log_loss"])
    assert trained.labels_matured_until == dataset["matured_at"].max().to_pydatetime()
    assert trained.test["ts"].min() > dataset["ts"].min()
    assert (
        linear_model.LinearTrainingParams().version_hash()
        != linear_model.LinearTrainingParams(c_grid=(1.0,)).version_hash()
    )


def test_bad_inputs_are_refused_with_names(trained, dataset):
    with pytest.raises(TrainingError, match="need at least 300"):
        linear_model.train_linear_model(dataset.head(100))
    with pytest.raises(TrainingError, match=r"NaN in \['rsi_14'\]"):
        linear_model.train_linear_model(dataset.assign(rsi_14=np.nan))
    with pytest.raises(TrainingError, match=r"train slice lacks class\(es\) \[1\]"):
        linear_model.train_linear_model(
            dataset.assign(direction=np.where(dataset["direction"] == 1, 2, dataset["direction"]))
        )
    row = dataset.head(3).copy()
    row.loc[1, "atr_14_pct"] = np.nan
    with pytest.raises(TrainingError, match=r"'atr_14_pct', symbol BTCUSDT, ts 2024-03-01T00:00:00\+00:00"):
        linear_model.predict_proba(trained.model, row)
    data = json.loads(trained.artifact)
    data["coef"] = data["coef"][:2]
    with pytest.raises(TrainingError, match="do not fit 3 classes"):
        linear_model.from_dict(data)
