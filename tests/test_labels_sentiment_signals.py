from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.features.sentiment import (
    SENTIMENT_FEATURE_SET_ID,
    compute_sentiment_features,
    score_headlines,
)
from pipeline_assets.ml.labels import (
    BUY,
    HOLD,
    LABEL_PARAMS,
    SELL,
    LabelInputError,
    compute_labels,
    label_set_id,
)
from pipeline_assets.ml.signals import signals_from_probabilities, strategy_returns

DAY = datetime(2024, 3, 1, tzinfo=UTC)


def _closes(values, start=DAY) -> pd.DataFrame:
    return pd.DataFrame({"ts": pd.date_range(start, periods=len(values), freq="h"), "close": values})


def test_forward_return_direction_and_maturity_by_hand():
    # h = 4: label(t0) uses close(t4)/close(t0) - 1 = 101/100 - 1 = +1% -> BUY
    closes = [100.0, 100.0, 100.0, 100.0, 101.0, 99.0, 100.1]
    labels, unmatured = compute_labels(_closes(closes), DAY, DAY + pd.Timedelta(hours=7))
    assert list(labels["forward_return"].round(6)) == [
        0.01,
        round(99 / 100 - 1, 6),
        round(100.1 / 100 - 1, 6),
    ]
    assert list(labels["direction"]) == [BUY, SELL, HOLD]  # +0.1% is inside the +-0.25% band
    assert labels["matured_at"].iloc[0] == pd.Timestamp("2024-03-01T05:00Z")  # bar t4 closes at 05:00
    assert unmatured == 4


def test_gap_never_pairs_the_wrong_bars():
    frame = _closes([100.0, 100.0, 100.0, 100.0, 110.0, 120.0])
    frame = frame.drop(index=4).reset_index(drop=True)  # the 04:00 bar is missing
    labels, unmatured = compute_labels(frame, DAY, DAY + pd.Timedelta(hours=2))
    # t0 needs 04:00 (missing) -> not labelled; t1 uses 05:00
    assert list(labels["ts"].dt.hour) == [1]
    assert labels["forward_return"].iloc[0] == pytest.approx(0.2)
    assert unmatured == 1


def test_label_set_id_depends_on_params_and_bad_input_is_refused():
    assert label_set_id(LABEL_PARAMS) != label_set_id({**LABEL_PARAMS, "buy_threshold": 0.003})
    with pytest.raises(LabelInputError, match="duplicate bar ts"):
        compute_labels(pd.concat([_closes([1.0, 2.0]), _closes([1.0])]), DAY, DAY + pd.Timedelta(hours=1))
    with pytest.raises(LabelInputError, match="sell_threshold"):
        compute_labels(
            _closes([1.0] * 6),
            DAY,
            DAY + pd.Timedelta(hours=1),
            {"horizon_hours": 4, "buy_threshold": -0.01, "sell_threshold": 0.01},
        )


def _headlines(rows):
    return pd.DataFrame(rows, columns=["published_at", "symbol", "source", "headline"]).assign(
        published_at=lambda f: pd.to_datetime(f["published_at"], utc=True)
    )


def test_vader_scores_and_ids():
    scored = score_headlines(
        _headlines(
            [
                ("2024-03-01T01:10Z", "BTCUSDT", "wire", "Bitcoin surges to a record high on great news"),
                (
                    "2024-03-01T01:20Z",
                    "BTCUSDT",
                    "wire",
                    "Bitcoin crashes as terrible fraud scandal hurts investors",
                ),
            ]
        )
    )
    assert scored["compound"].iloc[0] > 0.5 and scored["compound"].iloc[1] < -0.5
    assert scored["headline_id"].nunique() == 2 and scored["headline_id"].str.len().eq(20).all()


def test_sentiment_features_use_only_headlines_known_at_bar_close():
    headlines = pd.DataFrame(
        {
            "published_at": pd.to_datetime(["2024-03-01T00:30Z", "2024-03-01T01:00Z", "2024-03-01T02:59Z"], utc=True),
            "compound": [0.5, -1.0, 0.2],
        }
    )
    features = compute_sentiment_features(headlines, DAY, DAY + pd.Timedelta(hours=3))
    # bar 00:00 closes 01:00: sees only the 00:30 headline (01:00 is not before the close)
    assert features["headline_count_6h"].tolist() == [1, 2, 3]
    assert features["sentiment_mean_6h"].tolist() == pytest.approx([0.5, -0.25, (0.5 - 1.0 + 0.2) / 3])
    assert features["sentiment_min_6h"].tolist() == pytest.approx([0.5, -1.0, -1.0])
    assert (features["feature_set_id"] == SENTIMENT_FEATURE_SET_ID).all()


def test_hours_without_headlines_are_neutral_not_missing():
    empty = pd.DataFrame({"published_at": pd.to_datetime([], utc=True), "compound": []})
    features = compute_sentiment_features(empty, DAY, DAY + pd.Timedelta(hours=24))
    assert len(features) == 24
    assert (features["headline_count_24h"] == 0).all() and (features["sentiment_mean_24h"] == 0.0).all()


def test_signal_rule_and_strategy_returns():
    params = {"min_edge": 0.10, "min_probability": 0.40}
    rule = signals_from_probabilities(np.array([0.1, 0.5, 0.35, 0.3]), np.array([0.6, 0.2, 0.4, 0.39]), params)
    assert rule["signal"].tolist() == ["BUY", "SELL", "HOLD", "HOLD"]  # edge 0.05 < 0.10; prob 0.39 < 0.40
    assert rule["position"].tolist() == [1, -1, 0, 0]
    returns = strategy_returns(rule["position"].to_numpy(), np.array([0.02, 0.01, 0.05, np.nan]))
    assert returns[:3].tolist() == pytest.approx([0.02, -0.01, 0.0]) and np.isnan(returns[3])
    assert signals_from_probabilities(np.array([0.35]), np.array([0.4]))["signal"].tolist() == ["BUY"]  # defaults
    with pytest.raises(ValueError, match="NaN"):
        signals_from_probabilities(np.array([np.nan]), np.array([0.5]))
