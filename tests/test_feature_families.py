"""Feature families: declarations agree with the tables, every family is causal and batch
invariant, ids are stable, the family assets store what the compute functions return."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_helpers import count, run_assets

from pipeline_assets.features.cross_asset import compute_cross_asset_features
from pipeline_assets.features.families import FAMILIES, MODEL_FAMILIES, feature_set_payload
from pipeline_assets.ml.dataset import MODEL_FEATURE_SET_ID
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import read_frame
from pipeline_assets.store.warehouse import model_inputs_sql, read_ohlcv, truncate_all

COMPUTED = [name for name, family in FAMILIES.items() if family.compute_days is not None]


def _bars(days: int, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), seed: int = 3, drop=()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * 24
    ts = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    common = rng.normal(0, 0.01, n)
    frames = []
    for i, symbol in enumerate(symbols):
        close = 100 * (i + 1) * np.exp(np.cumsum(common * (0.6 + 0.2 * i) + rng.normal(0, 0.005, n)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ts": ts,
                    "open": open_,
                    "high": np.maximum(open_, close) * 1.002,
                    "low": np.minimum(open_, close) * 0.998,
                    "close": close,
                    "volume": rng.lognormal(3, 0.4, n),
                }
            )
        )
    bars = pd.concat(frames, ignore_index=True)
    return bars.drop(index=list(drop)).reset_index(drop=True)


def _grid(days: int, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), seed: int = 3) -> pd.DataFrame:
    """An aligned grid (market_aligned's columns) with some stale (NaN) values."""
    rng = np.random.default_rng(seed)
    n = days * 24
    ts = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    frames = []
    for symbol in symbols:
        funding = np.repeat(rng.normal(0.0001, 0.0003, n // 8 + 1), 8)[:n]
        frame = pd.DataFrame(
            {
                "symbol": symbol,
                "ts": ts,
                "funding_rate": np.where(rng.random(n) < 0.02, np.nan, funding),
                "funding_staleness_h": np.arange(n) % 8 + 1.0,
                "open_interest": 1e6 * np.exp(np.cumsum(rng.normal(0, 0.01, n))),
                "oi_staleness_h": 2.0,
                "long_short_ratio": np.exp(rng.normal(0, 0.1, n)),
                "ls_staleness_h": 2.0,
                "liq_buy_notional": np.where(rng.random(n) < 0.1, rng.lognormal(8, 1, n), 0.0),
                "liq_sell_notional": np.where(rng.random(n) < 0.1, rng.lognormal(8, 1, n), 0.0),
            }
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _inputs(family, days: int, seed: int) -> pd.DataFrame:
    return _grid(days, seed=seed) if family.inputs[0] == "market_aligned" else _bars(days, seed=seed)


def _perturb_after(family, frame: pd.DataFrame, cut) -> pd.DataFrame:
    out = frame.copy()
    later = out["ts"] > cut
    scale = np.exp(np.random.default_rng(9).normal(0, 0.05, later.sum()))
    columns = (
        ["funding_rate", "open_interest", "long_short_ratio", "liq_buy_notional"]
        if family.inputs[0] == "market_aligned"
        else ["open", "high", "low", "close"]
    )
    out.loc[later, columns] = out.loc[later, columns].to_numpy() * scale[:, None]
    if "volume" in out.columns:
        out.loc[later, "volume"] *= 3.0
    return out


def _days(first: str, n: int) -> list[str]:
    start = pd.Timestamp(first)
    return [(start + pd.Timedelta(days=i)).strftime("%Y-%m-%d") for i in range(n)]


def test_declared_columns_are_the_tables_columns(database_url):
    with connect(database_url) as conn:
        for family in FAMILIES.values():
            columns = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position",
                    (family.table,),
                )
            ]
            assert columns == ["symbol", "ts", "feature_set_id", *family.sql_columns, "computed_at"], family.name


def test_feature_set_ids_are_stable_and_the_model_id_did_not_change():
    assert MODEL_FAMILIES == ("ohlcv", "sentiment")
    # the id stored with every model trained before families were declared
    assert MODEL_FEATURE_SET_ID == "inputs-v1-0b2261520ca2"
    assert FAMILIES["ohlcv"].feature_set_id.startswith("ohlcv-v1-")
    assert FAMILIES["mtf"].feature_set_id.startswith("mtf-v1-")
    assert len(FAMILIES["mtf"].feature_set_id.split("-")[-1]) == 12
    payload = feature_set_payload(["ohlcv", "mtf"])
    assert payload["columns"][: len(FAMILIES["ohlcv"].columns)] == list(FAMILIES["ohlcv"].columns)


@pytest.mark.parametrize("name", COMPUTED)
def test_every_family_is_causal(name):
    family = FAMILIES[name]
    bars = _inputs(family, 45, 3)
    days = _days("2024-02-05", 5)
    base = family.compute_days(bars, days, ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    cut = pd.Timestamp("2024-02-07 13:00", tz="UTC")  # bar T; its close is T + 1h
    perturbed = _perturb_after(family, bars, cut)
    again = family.compute_days(perturbed, days, ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    known = base["ts"] <= cut
    pd.testing.assert_frame_equal(base[known].reset_index(drop=True), again[again["ts"] <= cut].reset_index(drop=True))
    assert not base[~known].reset_index(drop=True).equals(again[again["ts"] > cut].reset_index(drop=True))


@pytest.mark.parametrize("name", COMPUTED)
def test_every_family_is_batch_invariant(name):
    family = FAMILIES[name]
    bars = _inputs(family, 45, 5)
    days = _days("2024-02-01", 6)
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    together = family.compute_days(bars, days, symbols).sort_values(["symbol", "ts"]).reset_index(drop=True)
    one_by_one = pd.concat([family.compute_days(bars, [d], symbols) for d in days])
    pd.testing.assert_frame_equal(together, one_by_one.sort_values(["symbol", "ts"]).reset_index(drop=True))
    # and the history before the lookback does not matter
    start = pd.Timestamp(days[0], tz="UTC") - pd.Timedelta(hours=family.lookback_hours)
    trimmed = family.compute_days(bars[bars["ts"] >= start], days, symbols).sort_values(["symbol", "ts"])
    pd.testing.assert_frame_equal(together, trimmed.reset_index(drop=True))


def test_cross_asset_values_and_a_symbol_without_reference_overlap():
    bars = _bars(4)
    start, end = pd.Timestamp("2024-01-03", tz="UTC"), pd.Timestamp("2024-01-04", tz="UTC")
    out = compute_cross_asset_features(bars, start, end, ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "BTCUSDT")
    eth = out[out["symbol"] == "ETHUSDT"].set_index("ts")
    closes = bars.pivot(index="ts", columns="symbol", values="close")
    r1 = np.log(closes).diff()
    t = pd.Timestamp("2024-01-03 17:00", tz="UTC")
    window = r1.loc[t - pd.Timedelta(hours=23) : t]
    assert eth.loc[t, "corr_ref_24h"] == pytest.approx(window["ETHUSDT"].corr(window["BTCUSDT"]), rel=1e-12)
    assert eth.loc[t, "beta_ref_24h"] == pytest.approx(
        window["ETHUSDT"].cov(window["BTCUSDT"]) / window["BTCUSDT"].var(), rel=1e-12
    )
    r24 = np.log(closes.loc[t]) - np.log(closes.loc[t - pd.Timedelta(hours=24)])
    assert eth.loc[t, "rel_strength_24h"] == pytest.approx(r24["ETHUSDT"] - r24["BTCUSDT"], rel=1e-12)
    assert eth.loc[t, "rank_return_24h"] == pytest.approx((r24.rank()["ETHUSDT"] - 1) / 2)
    assert eth.loc[t, "dispersion_24h"] == pytest.approx(np.std(r24.to_numpy()), rel=1e-12)
    assert (eth["reference_pairs_24h"] == 24).all()
    # the reference missing for 3 hours: its 24h windows are NaN, and the pair count says why
    gap = bars[
        ~((bars["symbol"] == "BTCUSDT") & bars["ts"].between(t - pd.Timedelta(hours=5), t - pd.Timedelta(hours=3)))
    ]
    out = compute_cross_asset_features(gap, start, end, ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "BTCUSDT")
    row = out[(out["symbol"] == "ETHUSDT") & (out["ts"] == t)].iloc[0]
    assert np.isnan(row["corr_ref_24h"]) and row["reference_pairs_24h"] == 20
    assert not np.isnan(row["rank_return_24h"])  # the cross-section is still there


def test_family_assets_store_the_compute_functions_rows_and_register_their_version(warehouse_url):
    url = warehouse_url
    with connect(url) as conn, conn.transaction():
        truncate_all(conn)
    instance = DagsterInstance.ephemeral()
    days = _days("2024-01-01", 36)
    run_assets(["raw_ohlcv"], url, instance=instance, partition_range=(days[0], days[-1]))
    run_assets(
        ["ml_features_ohlcv_ext", "ml_features_mtf", "ml_features_cross_asset"],
        url,
        instance=instance,
        partition_range=(days[31], days[-1]),
    )
    with connect(url) as conn:
        bars = read_ohlcv(conn, list(SYMBOLS), datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 6, tzinfo=UTC))
    for name in ("ohlcv_ext", "mtf", "cross_asset"):
        family = FAMILIES[name]
        with connect(url) as conn:
            stored = read_frame(
                conn, f"SELECT symbol, ts, {', '.join(family.sql_columns)} FROM {family.table} ORDER BY symbol, ts"
            )
            assert count(url, f"SELECT count(DISTINCT feature_set_id) FROM {family.table}") == 1
        expected = family.compute_days(bars, days[31:], list(SYMBOLS)).sort_values(["symbol", "ts"])
        pd.testing.assert_frame_equal(stored, expected.reset_index(drop=True), check_dtype=False)
        assert count(url, "SELECT count(*) FROM feature_sets WHERE feature_set_id = %s", (family.feature_set_id,)) == 1
    # one-day re-runs store the same rows
    before = count(url, "SELECT sum(tf1d_rsi_14) FROM ml_features_mtf")
    run_assets(["ml_features_mtf"], url, instance=instance, partition_key=days[33])
    assert count(url, "SELECT sum(tf1d_rsi_14) FROM ml_features_mtf") == pytest.approx(before, rel=1e-15)
    # a model input join over more families is generated from the declarations and runs
    with connect(url) as conn:
        frame = read_frame(
            conn,
            model_inputs_sql(["ohlcv", "mtf", "cross_asset"]),
            (list(SYMBOLS), datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 2, 6, tzinfo=UTC)),
        )
    assert frame.empty  # no ml_features_ohlcv rows were materialised: the base family defines the rows
    run_assets(["ml_features_ohlcv"], url, instance=instance, partition_range=(days[31], days[-1]))
    with connect(url) as conn:
        frame = read_frame(
            conn,
            model_inputs_sql(["ohlcv", "mtf", "cross_asset"]),
            (list(SYMBOLS), datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 2, 6, tzinfo=UTC)),
        )
    assert len(frame) == 5 * 24 * len(SYMBOLS)
    assert frame["mtf_feature_set_id"].eq(FAMILIES["mtf"].feature_set_id).all()
    assert frame[list(FAMILIES["cross_asset"].columns)].notna().all().all()
