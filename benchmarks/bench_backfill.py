"""Full-graph backfill at production scale, against its floor measured in the same process.

    PIPELINE_DATABASE_URL=... python benchmarks/bench_backfill.py [--symbols 10] [--days 365]

1. The graph: one asset backfill (Dagster's own backfill logic, runs executed in process) of every
   daily asset from raw bars to dashboard rows, plus the model trained on the first 70% of the
   days, on a scratch database; wall time and number of runs.
2. The floor: the same compute functions called directly on the same data (source, contract,
   features and families, patterns, order books, state-vector rows, labels, sentiment, both
   members' training, prediction, signals), plus a plain COPY (PostgreSQL text format, one buffer
   per table) of the rows the graph stored into empty tables of the same shape.
Prints a markdown table and the ratio graph / floor. Drops the scratch database afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")  # not imported: partitions reads the env once
EXTRA_SYMBOLS = ("XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT", "DOTUSDT", "LINKUSDT", "LTCUSDT", "TRXUSDT")
# tables the plain-COPY floor does not copy: the migration and model registries, not data rows
NOT_COPIED = ("schema_migrations", "ml_models_metadata", "model_artifact_ledger", "training_datasets")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end", default="2025-12-31", help="last day (fixed, so figures are comparable)")
    return parser.parse_args()


def main() -> None:
    args = _args()
    from pipeline_assets.local_db import with_database

    symbols = list((*DEFAULT_SYMBOLS, *EXTRA_SYMBOLS)[: args.symbols])
    last = date.fromisoformat(args.end)
    first = last - timedelta(days=args.days - 1)
    server = os.environ.get("PIPELINE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_backfill_{uuid.uuid4().hex[:8]}"
    from pipeline_assets.store.db import connect

    with connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    home = tempfile.TemporaryDirectory(prefix="bench_backfill_home_")
    os.environ["DAGSTER_HOME"] = home.name
    try:
        graph = _graph(url, symbols, first, last)
        floor = _floor(url, symbols, first, last)
    finally:
        with connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    floor_total = floor["compute_s"] + floor["copy_s"]
    print()
    print(f"## Full-graph backfill: {len(symbols)} symbols x {args.days} days ({first} .. {last}), hourly")
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| graph wall time (one asset backfill), s | {graph['seconds']:.1f} |")
    print(f"| graph runs | {graph['runs']} |")
    print(f"| rows stored (all tables) | {floor['rows']:,} |")
    print(f"| floor: compute functions called directly, s | {floor['compute_s']:.1f} |")
    print(f"| floor: plain COPY of the same rows into empty tables, s | {floor['copy_s']:.1f} |")
    print(f"| floor total, s | {floor_total:.1f} |")
    print(f"| graph / floor | {graph['seconds'] / floor_total:.2f} |")
    print()
    print("| floor part | s |")
    print("|---|---:|")
    for part, seconds in floor["parts"].items():
        print(f"| {part} | {seconds:.2f} |")


def _graph(url: str, symbols: list[str], first: date, last: date) -> dict:
    from pipeline_assets.cli.backfill import configure_environment, open_instance, run_asset_backfill

    configure_environment(symbols=symbols, partition_start=first.isoformat(), database_url=url)
    import pipeline_assets.definitions as definitions
    from pipeline_assets.assets.models import RETRAINED_MODELS, retrain_run_config

    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    cutoff = first + timedelta(days=int(len(days) * 0.7))
    targets: dict = {name: days for name in definitions.INGESTION_ASSET_NAMES}
    targets["training_dataset"] = None
    targets.update({name: None for name in RETRAINED_MODELS})
    targets.update({name: [d for d in days if d >= cutoff.isoformat()] for name in definitions.INFERENCE_ASSET_NAMES})
    started = time.perf_counter()
    outcome = run_asset_backfill(
        open_instance(),
        targets,
        title="bench_backfill",
        run_config={
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            **retrain_run_config(
                datetime.combine(cutoff, datetime.min.time(), tzinfo=UTC),
                train_days=int(len(days) * 0.7),
                models=RETRAINED_MODELS,
            ),
        },
    )
    seconds = time.perf_counter() - started
    if outcome.failed_runs or outcome.status != "COMPLETED_SUCCESS":
        raise SystemExit(f"backfill failed: {outcome}")
    return {"seconds": seconds, "runs": outcome.runs}


def _floor(url: str, symbols: list[str], first: date, last: date) -> dict:
    import numpy as np
    import pandas as pd

    from pipeline_assets.contracts.headlines import validate_headlines
    from pipeline_assets.contracts.ohlcv import validate_ohlcv
    from pipeline_assets.features.ohlcv_features import compute_ohlcv_features
    from pipeline_assets.features.sentiment import compute_sentiment_features, score_headlines
    from pipeline_assets.ml import direction_xgb
    from pipeline_assets.ml.dataset import split_complete_rows
    from pipeline_assets.ml.labels import compute_labels
    from pipeline_assets.ml.signals import signals_from_probabilities
    from pipeline_assets.sources.synthetic import SyntheticMarket
    from pipeline_assets.store.db import connect

    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    parts: dict[str, float] = {}

    def timed(part: str, fn, *a, **k):
        t = time.perf_counter()
        out = fn(*a, **k)
        parts[part] = parts.get(part, 0.0) + time.perf_counter() - t
        return out

    from pipeline_assets.assets.patterns import detections_day_by_day
    from pipeline_assets.features.families import FAMILIES
    from pipeline_assets.ml import linear_model
    from pipeline_assets.sources.orderbook import synthetic_snapshots
    from pipeline_assets.state_vector import StateVectorBuilder, StateVectorConfig

    market = SyntheticMarket()
    features, labels, sentiment, all_bars = [], [], [], []
    day_keys = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    from pipeline_assets.features import aligned
    from pipeline_assets.ml import pattern_member
    from pipeline_assets.ml import return_regressor as rr
    from pipeline_assets.sources.derivatives import SyntheticDerivatives

    derivatives = SyntheticDerivatives(market)
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    grids, detections = [], []
    for symbol in symbols:
        bars = timed("source bars", market.ohlcv, symbol, start, end)
        valid = timed("contract", validate_ohlcv, bars, symbol, start, end).valid
        all_bars.append(valid.assign(symbol=symbol))
        timed("order books", synthetic_snapshots, valid, symbol)
        detections.append(timed("patterns", detections_day_by_day, valid, day_keys).assign(symbol=symbol))
        feeds = {
            feed: timed("derivative feeds", getattr(derivatives, feed), symbol, start, end) for feed in aligned.FEEDS
        }
        liquidations = timed("derivative feeds", derivatives.liquidations, symbol, start, end)
        grids.append(
            timed("market_aligned", aligned.align, symbol, hours, valid, feeds, liquidations, np.ones(len(hours), bool))
        )
        feats = timed("ohlcv features", compute_ohlcv_features, valid)
        features.append(feats.assign(symbol=symbol))
        lab, _ = timed("labels", compute_labels, valid, start, end)
        labels.append(lab.assign(symbol=symbol))
        heads = timed("source headlines", market.headlines, symbol, start, end)
        scored = timed("sentiment scoring", score_headlines, validate_headlines(heads, symbol, start, end).valid)
        sentiment.append(
            timed("sentiment features", compute_sentiment_features, scored, start, end).assign(symbol=symbol)
        )
    every = pd.concat(all_bars, ignore_index=True)
    timed("extended ohlcv family", FAMILIES["ohlcv_ext"].compute_days, every, day_keys, symbols)
    timed("derivatives family", FAMILIES["derivatives"].compute_days, pd.concat(grids), day_keys, symbols)
    timed("mtf family", FAMILIES["mtf"].compute_days, every, day_keys, symbols)
    timed("cross-asset family", FAMILIES["cross_asset"].compute_days, every, day_keys, symbols)
    builder = StateVectorBuilder(StateVectorConfig(symbols=symbols, use_cache=False, log_build_time=False))
    frames = {s: g.drop(columns=["symbol"]).reset_index(drop=True) for s, g in every.groupby("symbol")}
    hours = every["ts"].to_numpy(dtype="datetime64[h]").astype("int64")
    timed("state vector rows", builder.raw_rows, frames, int(hours.min()), int(hours.max()))
    from pipeline_assets.features.ohlcv_features import FEATURE_SET_ID

    frame = (
        pd.concat(features)
        .assign(ohlcv_feature_set_id=FEATURE_SET_ID)
        .merge(pd.concat(sentiment).rename(columns={"feature_set_id": "sentiment_feature_set_id"}), on=["symbol", "ts"])
        .merge(pd.concat(labels), on=["symbol", "ts"])
    )
    complete, _ = split_complete_rows(frame)
    cutoff = start + (end - start) * 0.7
    train = complete[complete["ts"] < cutoff]
    trained = timed("training", direction_xgb.train_direction_model, train, direction_xgb.XgbTrainingParams())
    timed("linear training", linear_model.train_linear_model, train)
    found = pd.concat(detections, ignore_index=True)
    timed("pattern member training", pattern_member.train_pattern_model, train, found)
    targets = timed("return targets", rr.forward_log_returns, every[every["ts"] < cutoff])
    timed("return model training", rr.train_return_model, train, targets)
    test = complete[complete["ts"] >= cutoff]
    proba = timed("prediction", direction_xgb.predict_proba, trained.model, test)
    timed("signals", signals_from_probabilities, proba[:, 0], proba[:, 2])
    compute_s = sum(parts.values())

    rows = 0
    copy_s = 0.0
    with connect(url) as conn:
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' ORDER BY table_name"
            ).fetchall()
            if t not in NOT_COPIED
        ]
        for table in tables:
            (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            if n == 0:
                continue
            rows += n
            buffer = bytearray()
            with conn.cursor() as cur, cur.copy(f"COPY {table} TO STDOUT") as out:
                for chunk in out:
                    buffer += chunk
            conn.execute(f"CREATE TEMP TABLE copy_{table} (LIKE {table} INCLUDING DEFAULTS)")
            t = time.perf_counter()
            with conn.cursor() as cur, cur.copy(f"COPY copy_{table} FROM STDIN") as copy:
                copy.write(bytes(buffer))
            copy_s += time.perf_counter() - t
        conn.rollback()
    parts["plain COPY (all tables)"] = copy_s
    return {"compute_s": compute_s, "copy_s": copy_s, "rows": rows, "parts": parts}


if __name__ == "__main__":
    main()
