"""Feature-set versions coexist in the warehouse: rows of two versions of the OHLCV family share
(symbol, ts) without overwriting, reads return the version asked for, a model is served the
version it was trained on, one whose version is not materialised is a clear error, and models
stored with today's ids stay servable. Plus the OHLCV family's extended entry point."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_helpers import count, ingest_days, metadata_of, run_assets
from psycopg.types.json import Jsonb

from pipeline_assets.assets.models import retrain_run_config
from pipeline_assets.features.families import FAMILIES, OHLCV_EXT
from pipeline_assets.features.ohlcv_ext import EXT_COLUMNS, EXT_LOOKBACK_HOURS
from pipeline_assets.features.ohlcv_features import (
    FEATURE_COLUMNS,
    FEATURE_SET_ID,
    FeatureInputError,
    compute_ohlcv_features,
)
from pipeline_assets.ml import direction_xgb
from pipeline_assets.ml.dataset import MODEL_FEATURE_SET_ID
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.serving import Predictor
from pipeline_assets.sources.synthetic import SyntheticMarket
from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect
from pipeline_assets.store.feature_sets import FeatureSetNotMaterialised
from pipeline_assets.store.frames import read_frame, upsert_frame
from pipeline_assets.store.warehouse import read_model_inputs, read_predictions, read_serving_inputs, truncate_all

FIRST = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = [(FIRST + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(10)]
TRAIN_END = datetime(2024, 3, 7, tzinfo=UTC)
TODAY_DAY = "2024-03-08"  # served by the model trained with today's ids
V2_DAY = "2024-03-09"  # served by a model of a second, materialised, OHLCV version
V3_DAY = "2024-03-10"  # served by a model of a third version that was never materialised
SENTIMENT_ID = FAMILIES["sentiment"].feature_set_id
OHLCV_V2, OHLCV_V3 = "ohlcv-v2-testversion02", "ohlcv-v3-testversion03"
MODEL_V2, MODEL_V3 = "inputs-v2-testversion02", "inputs-v3-testversion03"


def _day(day: str) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return start, start + timedelta(days=1)


def _register_version(conn, model_id: str, ohlcv_id: str) -> None:
    """feature_sets rows of another OHLCV version and of a model feature set using it (as the code
    of that version would have registered them)."""
    conn.execute(
        "INSERT INTO feature_sets (feature_set_id, kind, name, families, columns, params) "
        "VALUES (%s, 'family', 'ohlcv', %s, %s, %s)",
        (ohlcv_id, Jsonb({"ohlcv": {"version": 2, "feature_set_id": ohlcv_id}}), list(FEATURE_COLUMNS), Jsonb({})),
    )
    conn.execute(
        "INSERT INTO feature_sets (feature_set_id, kind, name, families, columns, params) "
        "VALUES (%s, 'model', 'ohlcv+sentiment', %s, %s, %s)",
        (
            model_id,
            Jsonb(
                {
                    "ohlcv": {"version": 2, "feature_set_id": ohlcv_id},
                    "sentiment": {"version": 1, "feature_set_id": SENTIMENT_ID},
                }
            ),
            [*FEATURE_COLUMNS, *FAMILIES["sentiment"].columns],
            Jsonb({}),
        ),
    )


def _register_model_of(conn, champion: registry.ModelRecord, artifact: bytes, feature_set_id: str, matured: datetime):
    record = registry.register_model(
        conn,
        model_name=direction_xgb.MODEL_NAME,
        artifact=artifact,
        format=champion.format,
        feature_set_id=feature_set_id,
        label_set_id=champion.label_set_id,
        model_version_hash=f"{champion.model_version_hash}-{feature_set_id}",
        params=champion.params,
        metrics=champion.metrics,
        train_start=champion.train_start,
        train_end=champion.train_end,
        labels_matured_until=matured,
    )
    registry.promote_model(conn, record.model_id)
    return record


@pytest.fixture(scope="module")
def warehouse(database_url):
    with connect(database_url) as conn, conn.transaction():
        truncate_all(conn)
    instance = DagsterInstance.ephemeral()
    ingest_days(database_url, DAYS, SYMBOLS, instance)
    training = run_assets(
        ["training_dataset", "direction_model_xgboost"],
        database_url,
        instance=instance,
        run_config=retrain_run_config(TRAIN_END, train_days=7, min_rows=200),
    )
    champion_id = metadata_of(training, "direction_model_xgboost")["model_id"]
    with connect(database_url) as conn, conn.transaction():
        registry.promote_model(conn, champion_id)
        champion, artifact = registry.load_artifact(conn, champion_id)
        # Version 2 of the OHLCV family, materialised for V2_DAY beside version 1 (a changed
        # parameter: here rsi_14 mirrored, so its rows are told apart from version 1's).
        start, end = _day(V2_DAY)
        v1 = read_frame(
            conn,
            f"SELECT symbol, ts, {', '.join(FEATURE_COLUMNS)} FROM ml_features_ohlcv "
            "WHERE ts >= %s AND ts < %s AND feature_set_id = %s",
            (start, end, FEATURE_SET_ID),
        )
        v2 = v1.assign(rsi_14=100.0 - v1["rsi_14"], feature_set_id=OHLCV_V2)
        upsert_frame(conn, "ml_features_ohlcv", v2, ["symbol", "ts", "feature_set_id"])
        _register_version(conn, MODEL_V2, OHLCV_V2)
        _register_version(conn, MODEL_V3, OHLCV_V3)
        v2_model = _register_model_of(conn, champion, artifact, MODEL_V2, _day(V2_DAY)[0] - timedelta(hours=12))
        v3_model = _register_model_of(conn, champion, artifact, MODEL_V3, _day(V3_DAY)[0] - timedelta(hours=12))
    return {
        "url": database_url,
        "instance": instance,
        "champion": champion,
        "v2_model": v2_model,
        "v3_model": v3_model,
        "v1_rows": v1,
        "v2_rows": v2,
    }


def test_two_versions_coexist_for_the_same_symbol_and_hour(warehouse):
    url = warehouse["url"]
    start, end = _day(V2_DAY)
    per_key = (
        "SELECT count(*) FROM ml_features_ohlcv WHERE ts >= %s AND ts < %s GROUP BY symbol, ts HAVING count(*) <> 2"
    )
    with connect(url) as conn:
        assert conn.execute(per_key, (start, end)).fetchall() == []
        stored_v1 = read_frame(
            conn,
            "SELECT symbol, ts, rsi_14 FROM ml_features_ohlcv WHERE ts >= %s AND ts < %s AND feature_set_id = %s",
            (start, end, FEATURE_SET_ID),
        )
    assert len(stored_v1) == 24 * len(SYMBOLS)
    expected = warehouse["v1_rows"][["symbol", "ts", "rsi_14"]]
    merged = stored_v1.merge(expected, on=["symbol", "ts"], suffixes=("", "_before"))
    assert len(merged) == len(stored_v1)
    np.testing.assert_array_equal(merged["rsi_14"], merged["rsi_14_before"])  # version 2 overwrote nothing
    assert not np.allclose(merged["rsi_14"], 100.0 - merged["rsi_14"])


def test_reads_return_only_the_requested_feature_set(warehouse):
    url = warehouse["url"]
    start, end = _day(V2_DAY)
    with connect(url) as conn:
        current = read_model_inputs(conn, SYMBOLS, start, end)
        explicit = read_model_inputs(conn, SYMBOLS, start, end, MODEL_FEATURE_SET_ID)
        v2 = read_model_inputs(conn, SYMBOLS, start, end, MODEL_V2)
        served_v2 = read_serving_inputs(conn, MODEL_V2, SYMBOLS, start, end)
    pd.testing.assert_frame_equal(current, explicit)
    for frame, ohlcv_id in ((current, FEATURE_SET_ID), (v2, OHLCV_V2), (served_v2, OHLCV_V2)):
        assert len(frame) == 24 * len(SYMBOLS) and not frame.duplicated(["symbol", "ts"]).any()
        assert set(frame["ohlcv_feature_set_id"]) == {ohlcv_id}
        assert set(frame["sentiment_feature_set_id"]) == {SENTIMENT_ID}
    rows = warehouse["v2_rows"].sort_values(["ts", "symbol"], ignore_index=True)
    np.testing.assert_array_equal(v2["rsi_14"], rows["rsi_14"])
    np.testing.assert_array_equal(current["rsi_14"], 100.0 - rows["rsi_14"])
    np.testing.assert_array_equal(v2["log_return_1h"], current["log_return_1h"])


def test_recomputing_the_current_version_is_idempotent(warehouse):
    url = warehouse["url"]
    snapshot = "SELECT * FROM {} ORDER BY symbol, ts, feature_set_id"
    with connect(url) as conn:
        before = {t: read_frame(conn, snapshot.format(t)) for t in ("ml_features_ohlcv", "ml_features_sentiment")}
    result = run_assets(
        ["ml_features_ohlcv", "ml_features_sentiment"],
        url,
        instance=warehouse["instance"],
        partition_range=(DAYS[0], DAYS[-1]),
    )
    for asset in ("ml_features_ohlcv", "ml_features_sentiment"):
        meta = metadata_of(result, asset)
        assert meta["rows_inserted"] == 0 and meta["rows_updated"] == 0 and meta["rows_unchanged"] > 0
        with connect(url) as conn:
            after = read_frame(conn, snapshot.format(asset))
        pd.testing.assert_frame_equal(after, before[asset])  # computed_at included: nothing was rewritten
    assert count(url, "SELECT count(*) FROM ml_features_ohlcv WHERE feature_set_id = %s", (OHLCV_V2,)) == 24 * len(
        SYMBOLS
    )


def test_a_feature_set_that_is_not_materialised_is_a_clear_error(warehouse):
    url = warehouse["url"]
    start, end = _day(V3_DAY)
    with connect(url) as conn:
        with pytest.raises(FeatureSetNotMaterialised) as raised:
            read_serving_inputs(conn, MODEL_V3, SYMBOLS, start, end)
        # read_model_inputs (training, monitoring) reads nothing rather than another version's rows
        assert read_model_inputs(conn, SYMBOLS, start, end, MODEL_V3).empty
        with pytest.raises(FeatureSetNotMaterialised, match="inputs-v9-unknown.*not registered in feature_sets"):
            read_serving_inputs(conn, "inputs-v9-unknown", SYMBOLS, start, end)
        with pytest.raises(FeatureSetNotMaterialised, match="ml_features_ohlcv, ml_features_sentiment"):
            read_serving_inputs(conn, MODEL_FEATURE_SET_ID, SYMBOLS, _day("2030-01-01")[0], _day("2030-01-01")[1])
    error = raised.value
    assert error.feature_set_id == MODEL_V3 and error.tables == ("ml_features_ohlcv",)
    message = str(error)
    for part in (MODEL_V3, OHLCV_V3, "ml_features_ohlcv", start.isoformat(), end.isoformat(), FEATURE_SET_ID):
        assert part in message  # the id, the table, the range and the version that is there


def test_predicting_with_a_model_whose_feature_set_is_not_materialised_fails_naming_it(warehouse):
    url = warehouse["url"]
    start, end = _day(V3_DAY)
    result = run_assets(["ml_predictions"], url, V3_DAY, instance=warehouse["instance"], raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    for part in (MODEL_V3, "ml_features_ohlcv", start.isoformat(), end.isoformat()):
        assert part in failure
    assert count(url, "SELECT count(*) FROM ml_predictions WHERE ts >= %s AND ts < %s", (start, end)) == 0
    predictor = Predictor.from_warehouse(url, model_id=warehouse["v3_model"].model_id)
    with pytest.raises(FeatureSetNotMaterialised, match=MODEL_V3):
        predictor.predict_stored(url, SYMBOLS, start, end)


def test_models_stored_with_todays_ids_stay_servable(warehouse):
    url = warehouse["url"]
    champion = warehouse["champion"]
    assert champion.feature_set_id == MODEL_FEATURE_SET_ID
    start, end = _day(TODAY_DAY)
    run_assets(["ml_predictions"], url, TODAY_DAY, instance=warehouse["instance"])
    with connect(url) as conn:
        stored = read_predictions(conn, SYMBOLS, start, end, direction_xgb.MODEL_NAME)
    assert len(stored) == 24 * len(SYMBOLS) and set(stored["model_id"]) == {champion.model_id}
    served = Predictor.from_warehouse(url, model_id=champion.model_id).predict_stored(url, SYMBOLS, start, end)
    merged = served.merge(stored, on=["symbol", "ts"], suffixes=("", "_stored"))
    assert len(merged) == len(stored)
    for column in ("prob_sell", "prob_hold", "prob_buy"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_stored"], rtol=0, atol=1e-12)


def test_each_model_is_served_the_version_it_was_trained_on(warehouse):
    url = warehouse["url"]
    start, end = _day(V2_DAY)
    run_assets(["ml_predictions"], url, V2_DAY, instance=warehouse["instance"])
    with connect(url) as conn:
        stored = read_predictions(conn, SYMBOLS, start, end, direction_xgb.MODEL_NAME)
        _, artifact = registry.load_artifact(conn, warehouse["v2_model"].model_id)
        v1_inputs = read_model_inputs(conn, SYMBOLS, start, end)
        v2_inputs = read_model_inputs(conn, SYMBOLS, start, end, MODEL_V2)
    assert set(stored["model_id"]) == {warehouse["v2_model"].model_id}
    model = direction_xgb.deserialize(artifact)
    expected = pd.DataFrame(direction_xgb.predict_proba(model, v2_inputs), columns=["sell", "hold", "buy"])
    stored = stored.sort_values(["ts", "symbol"], ignore_index=True)
    np.testing.assert_allclose(stored["prob_sell"], expected["sell"], rtol=0, atol=1e-12)
    from_v1 = direction_xgb.predict_proba(model, v1_inputs)
    assert not np.allclose(from_v1[:, 0], expected["sell"])  # the versions' rows give other numbers


# The OHLCV family's extended entry point (pure compute, no database).


def _bars(symbol: str = "BTCUSDT", hours: int = 24 * 14) -> pd.DataFrame:
    bars = SyntheticMarket().ohlcv(symbol, FIRST, FIRST + timedelta(hours=hours))
    if "symbol" not in bars.columns:
        bars.insert(0, "symbol", symbol)
    return bars


def test_extended_entry_point_adds_the_stored_extended_columns():
    bars = _bars()
    base = compute_ohlcv_features(bars)
    extended = compute_ohlcv_features(bars, extended=True)
    assert list(base.columns) == ["ts", *FEATURE_COLUMNS]
    assert list(extended.columns) == ["ts", *FEATURE_COLUMNS, *EXT_COLUMNS]
    pd.testing.assert_frame_equal(extended[base.columns], base)  # the 11 columns: names and values unchanged
    # the stored ml_features_ohlcv_ext rows of a day come from the same kernel on the day's lookback
    day = "2024-03-12"
    day_start = pd.Timestamp(day, tz="UTC")
    lookback = pd.Timedelta(hours=EXT_LOOKBACK_HOURS)
    window = bars[(bars["ts"] >= day_start - lookback) & (bars["ts"] < day_start + pd.Timedelta(days=1))]
    stored = OHLCV_EXT.compute_days(bars, [day], ["BTCUSDT"]).reset_index(drop=True)
    mine = compute_ohlcv_features(window.reset_index(drop=True), extended=True)
    mine = mine[mine["ts"] >= day_start].reset_index(drop=True)
    assert len(stored) == 24 and stored[list(EXT_COLUMNS)].notna().all().all()
    np.testing.assert_array_equal(mine["ts"].to_numpy(), stored["ts"].to_numpy())
    np.testing.assert_array_equal(mine[list(EXT_COLUMNS)].to_numpy(), stored[list(EXT_COLUMNS)].to_numpy())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume"])
def test_non_finite_ohlcv_input_is_refused_naming_symbol_column_and_time(bad, column):
    bars = _bars("ETHUSDT", hours=48)
    bars.loc[30, column] = bad
    at = re.escape(str(bars.loc[30, "ts"]))
    for extended in (False, True):
        with pytest.raises(ValueError, match=rf"in column '{column}' at {at}.*'ETHUSDT'"):
            compute_ohlcv_features(bars, extended=extended)  # symbol from the frame's symbol column
        with pytest.raises(FeatureInputError, match=rf"in column '{column}' at {at}.*'ETHUSDT'"):
            compute_ohlcv_features(bars.drop(columns=["symbol"]), extended=extended, symbol="ETHUSDT")


def test_two_sentiment_versions_coexist_and_each_model_feature_set_reads_its_own(warehouse):
    """The sentiment table keys rows by feature set too: a second sentiment version stored beside
    the current one for the same hours is read only by the model feature set that names it."""
    url = warehouse["url"]
    start, end = _day(V2_DAY)
    columns = list(FAMILIES["sentiment"].columns)
    changed = columns[0]
    sentiment_v2, model_v4 = "sentiment-v2-testversion02", "inputs-v4-testversion04"
    with connect(url) as conn, conn.transaction():
        current = read_frame(
            conn,
            f"SELECT symbol, ts, {', '.join(columns)} FROM ml_features_sentiment "
            "WHERE ts >= %s AND ts < %s AND feature_set_id = %s",
            (start, end, SENTIMENT_ID),
        )
        upsert_frame(
            conn,
            "ml_features_sentiment",
            current.assign(**{changed: current[changed] + 1.0}, feature_set_id=sentiment_v2),
            ["symbol", "ts", "feature_set_id"],
        )
        conn.execute(
            "INSERT INTO feature_sets (feature_set_id, kind, name, families, columns, params) "
            "VALUES (%s, 'family', 'sentiment', %s, %s, %s)",
            (sentiment_v2, Jsonb({"sentiment": {"version": 2, "feature_set_id": sentiment_v2}}), columns, Jsonb({})),
        )
        conn.execute(
            "INSERT INTO feature_sets (feature_set_id, kind, name, families, columns, params) "
            "VALUES (%s, 'model', 'ohlcv+sentiment', %s, %s, %s)",
            (
                model_v4,
                Jsonb(
                    {
                        "ohlcv": {"version": 1, "feature_set_id": FEATURE_SET_ID},
                        "sentiment": {"version": 2, "feature_set_id": sentiment_v2},
                    }
                ),
                [*FEATURE_COLUMNS, *columns],
                Jsonb({}),
            ),
        )
        per_key = conn.execute(
            "SELECT count(*) FROM ml_features_sentiment WHERE ts >= %s AND ts < %s GROUP BY symbol, ts",
            (start, end),
        ).fetchall()
        mine = read_model_inputs(conn, SYMBOLS, start, end, model_v4)
        theirs = read_model_inputs(conn, SYMBOLS, start, end)
    assert {n for (n,) in per_key} == {2} and len(per_key) == 24 * len(SYMBOLS)
    assert set(mine["sentiment_feature_set_id"]) == {sentiment_v2}
    assert set(theirs["sentiment_feature_set_id"]) == {SENTIMENT_ID}
    np.testing.assert_array_equal(mine[changed].to_numpy(), theirs[changed].to_numpy() + 1.0)
    np.testing.assert_array_equal(mine["rsi_14"].to_numpy(), theirs["rsi_14"].to_numpy())
