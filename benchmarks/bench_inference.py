"""In-process predictor latency: one feature row and a 10-symbol batch, after loading.

python benchmarks/bench_inference.py

Trains the direction model on 60 days of the synthetic market (4 symbols) in this process, then
times ``Predictor.predict`` (one row, a mapping of feature names) and ``predict_batch`` (10 rows),
with XGBClassifier.predict_proba on the same rows as the reference measured in the same run.
Then the two-member ensemble (XGBoost + the linear member, trained on the same rows) through
``EnsemblePredictor``, with weights 0.5 / 0.5 (latency does not depend on the weights' values).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from pipeline_assets.features.ohlcv_features import FEATURE_SET_ID, LOOKBACK_HOURS, compute_ohlcv_features
from pipeline_assets.features.sentiment import SENTIMENT_FEATURE_SET_ID, compute_sentiment_features, score_headlines
from pipeline_assets.ml import direction_xgb, linear_model
from pipeline_assets.ml.dataset import split_complete_rows
from pipeline_assets.ml.labels import compute_labels
from pipeline_assets.serving import EnsemblePredictor, Member, Predictor, _LinearMember
from pipeline_assets.sources.synthetic import DEFAULT_SYMBOLS, SyntheticMarket

START = datetime(2024, 1, 1, tzinfo=UTC)
END = START + timedelta(days=60)


def dataset() -> pd.DataFrame:
    market = SyntheticMarket()
    frames = []
    for symbol in DEFAULT_SYMBOLS:
        bars = market.ohlcv(symbol, START - timedelta(hours=LOOKBACK_HOURS), END + timedelta(hours=5))
        features = compute_ohlcv_features(bars)
        sentiment = compute_sentiment_features(
            score_headlines(market.headlines(symbol, START - timedelta(days=1), END)), START, END
        )
        labels, _ = compute_labels(bars, START, END)
        frame = features.merge(sentiment, on="ts").merge(labels, on="ts")
        frames.append(
            frame.assign(
                symbol=symbol, ohlcv_feature_set_id=FEATURE_SET_ID, sentiment_feature_set_id=SENTIMENT_FEATURE_SET_ID
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values(["ts", "symbol"], ignore_index=True)


def timed(fn, n: int) -> np.ndarray:
    for _ in range(50):
        fn()
    out = np.empty(n)
    for i in range(n):
        started = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - started
    return out * 1e3


def main() -> None:
    complete, _ = split_complete_rows(dataset())
    started = time.perf_counter()
    trained = direction_xgb.train_direction_model(complete)
    train_s = time.perf_counter() - started
    artifact = direction_xgb.serialize(trained.model)
    started = time.perf_counter()
    model = direction_xgb.deserialize(artifact)
    try:
        iterations = (0, int(model.best_iteration) + 1)
    except AttributeError:
        iterations = (0, 0)
    predictor = Predictor(
        model.get_booster(),
        Member("direction_xgb", 0, "bench", "", 0.0),
        tuple(direction_xgb.MODEL_FEATURE_COLUMNS),
        iterations,
    )
    load_ms = (time.perf_counter() - started) * 1000
    rows = complete[list(predictor.feature_columns)].tail(10)
    one = rows.iloc[-1].to_dict()
    array = rows.to_numpy(dtype=np.float64)
    assert np.allclose(predictor.predict_batch(array), direction_xgb.predict_proba(model, rows), atol=1e-12)
    started = time.perf_counter()
    linear = linear_model.train_linear_model(complete)
    linear_train_s = time.perf_counter() - started
    started = time.perf_counter()
    linear_member = _LinearMember(
        linear_model.deserialize(linear.artifact),
        Member(linear_model.MODEL_NAME, 1, "bench", "", 0.0),
        tuple(direction_xgb.MODEL_FEATURE_COLUMNS),
    )
    linear_load_ms = (time.perf_counter() - started) * 1000
    ens = EnsemblePredictor([predictor, linear_member], (0.5, 0.5), None, "bench", 0)
    expected = 0.5 * direction_xgb.predict_proba(model, rows) + 0.5 * linear_model.predict_proba(
        linear.model, complete.tail(10)
    )
    assert np.allclose(ens.predict_batch(array), expected / expected.sum(axis=1, keepdims=True), atol=1e-9)
    print(
        f"linear member: training {linear_train_s:.2f} s, load {linear_load_ms:.1f} ms; "
        "ensemble = XGBoost + linear, weights 0.5 / 0.5"
    )
    print(
        f"machine: {os.cpu_count()} cores; {datetime.now(UTC).date().isoformat()}; "
        f"training {train_s:.2f} s on {len(complete):,} rows; load {load_ms:.1f} ms\n"
    )
    print("| call | p50 (ms) | p99 (ms) |")
    print("|---|---:|---:|")
    for name, fn in (
        ("Predictor.predict, one row (mapping)", lambda: predictor.predict(one)),
        ("Predictor.predict_batch, 10 symbols", lambda: predictor.predict_batch(array)),
        ("reference: XGBClassifier.predict_proba, 10 rows", lambda: model.predict_proba(array)),
        ("EnsemblePredictor.predict, one row (mapping)", lambda: ens.predict(one)),
        ("EnsemblePredictor.predict_batch, 10 symbols", lambda: ens.predict_batch(array)),
    ):
        ms = timed(fn, 5000)
        print(f"| {name} | {np.percentile(ms, 50):.3f} | {np.percentile(ms, 99):.3f} |")


if __name__ == "__main__":
    main()
