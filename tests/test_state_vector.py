"""StateVectorBuilder: shape and layout, equality with the feature families, causality,
validation, fill, cache, and the raw-row path the asset uses."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.features.mtf import MTF_COLUMNS, mtf_array
from pipeline_assets.features.ohlcv_features import FEATURE_COLUMNS, LOOKBACK_HOURS, compute_ohlcv_features
from pipeline_assets.state_vector import WIDTH, StateVectorBuilder, StateVectorConfig
from pipeline_assets.state_vector.layout import GLOBAL_COLUMNS, MAX_SYMBOLS, SYMBOL_FEATURES

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
END = pd.Timestamp("2024-03-10 12:00", tz="UTC")  # open time of the last bar


def bars(n: int, seed: int = 0, end: pd.Timestamp = END, symbols=SYMBOLS) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.008, n)
    out = {}
    for i, symbol in enumerate(symbols):
        close = 100.0 * (i + 1) * np.exp(np.cumsum(common * (0.5 + 0.3 * i) + rng.normal(0, 0.006, n)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        out[symbol] = pd.DataFrame(
            {
                "open": open_,
                "high": np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n))),
                "low": np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n))),
                "close": close,
                "volume": rng.lognormal(3, 0.5, n),
                "timestamp": pd.date_range(end=end, periods=n, freq="h"),
            }
        )
    return out


def book(mid: float = 100.0) -> dict:
    return {
        "bids": [[mid - 0.05 - 0.1 * k, 1.0 + k] for k in range(10)],
        "asks": [[mid + 0.05 + 0.1 * k, 1.5 + k] for k in range(10)],
    }


PORTFOLIO = {"positions": {"BTCUSDT": 0.5, "ETHUSDT": 2.0}, "cash": 5000.0, "total_value": 100000.0}


def col(builder: StateVectorBuilder, name: str) -> int:
    return builder.layout().index(name)


def test_build_returns_a_finite_float32_window_with_768_named_columns():
    builder = StateVectorBuilder()
    data = bars(168 + 900)
    vector = builder.build(data, {s: book() for s in SYMBOLS}, PORTFOLIO)
    assert vector.shape == (168, WIDTH) and vector.dtype == np.float32
    assert np.isfinite(vector).all()
    names = builder.layout()
    assert len(names) == WIDTH == len(set(names))
    assert names[: len(GLOBAL_COLUMNS)] == list(GLOBAL_COLUMNS)
    block = (WIDTH - len(GLOBAL_COLUMNS)) // 4
    assert names[len(GLOBAL_COLUMNS) + block] == "ETHUSDT.ohlcv.open"
    assert names[len(GLOBAL_COLUMNS) + len(SYMBOL_FEATURES)] == "BTCUSDT.pad_000"
    pads = [i for i, n in enumerate(names) if "pad_" in n]
    assert not vector[:, pads].any(), "padding columns must be zero"
    assert builder.build_time_ms > 0
    # the last row is the last closed bar: its normalised close is log(close/close) = 0
    assert vector[-1, col(builder, "BTCUSDT.ohlcv.close")] == 0.0
    assert builder.layout_id.startswith("state-vector-v1-")


def test_layout_rule_for_other_symbol_counts_and_its_id():
    two = StateVectorBuilder(StateVectorConfig(symbols=["BTCUSDT", "ETHUSDT"]))
    assert len(two.layout()) == WIDTH
    assert two.layout_spec.block_width == (WIDTH - len(GLOBAL_COLUMNS)) // 2
    assert two.layout_id != StateVectorBuilder().layout_id
    assert StateVectorBuilder().layout_id == StateVectorBuilder().layout_id
    assert StateVectorBuilder(StateVectorConfig(normalize_ohlcv=False)).layout_id != StateVectorBuilder().layout_id
    many = [f"S{i}USDT" for i in range(MAX_SYMBOLS)]
    assert len(StateVectorBuilder(StateVectorConfig(symbols=many)).layout()) == WIDTH
    with pytest.raises(ValueError, match="symbols.*do not fit"):
        StateVectorBuilder(StateVectorConfig(symbols=many + ["XUSDT"]))


@pytest.mark.parametrize(
    "field, value",
    [
        ("version", "v9"),
        ("symbols", []),
        ("symbols", ["BTCUSDT", "BTCUSDT"]),
        ("symbols", "BTCUSDT"),
        ("window_hours", 10),
        ("window_hours", 168.0),
        ("cache_size", 0),
        ("use_cache", "yes"),
        ("fill_method", "mean"),
        ("slow_threshold_ms", -1),
        ("reference_symbol", "XRPUSDT"),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"StateVectorConfig\.{field}"):
        StateVectorConfig(**{field: value})


def _day_anchored_reference(frame: pd.DataFrame) -> pd.DataFrame:
    """The OHLCV family exactly as ml_features_ohlcv computes it: each day from its lookback."""
    frame = frame.rename(columns={"timestamp": "ts"})
    out = []
    for day in sorted(set(frame["ts"].dt.floor("D"))):
        part = frame[
            (frame["ts"] >= day - pd.Timedelta(hours=LOOKBACK_HOURS)) & (frame["ts"] < day + pd.Timedelta(days=1))
        ]
        features = compute_ohlcv_features(part.reset_index(drop=True))
        out.append(features[features["ts"] >= day])
    return pd.concat(out, ignore_index=True)


def test_raw_rows_equal_the_feature_families_for_the_same_bars():
    builder = StateVectorBuilder(StateVectorConfig(normalize_ohlcv=False, normalize_indicators=False))
    data = bars(168 + 1000, seed=4)
    vector = builder.build(data)
    eth = data["ETHUSDT"]
    reference = _day_anchored_reference(eth).tail(168).reset_index(drop=True)
    names = builder.layout()
    got = vector[:, [names.index(f"ETHUSDT.ind.{c}") for c in FEATURE_COLUMNS]]
    np.testing.assert_allclose(got, reference[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32), rtol=2e-6, atol=1e-7)
    hours = eth["timestamp"].to_numpy(dtype="datetime64[h]").astype(np.int64)
    mtf = mtf_array(hours, eth["high"], eth["low"], eth["close"])[-168:]
    got_mtf = vector[:, [names.index(f"ETHUSDT.mtf.{c}") for c in MTF_COLUMNS]]
    np.testing.assert_allclose(got_mtf, mtf.astype(np.float32), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(
        vector[:, names.index("ETHUSDT.ohlcv.close")], eth["close"].tail(168).to_numpy(np.float32)
    )
    # float64 raw rows (the stored form) are bit-identical to the family kernels
    rows, _ = builder.raw_rows(data, int(hours[-168]), int(hours[-1]))
    raw_names = builder.layout_spec.raw_columns
    ind = rows[:, [raw_names.index(f"ETHUSDT.ind.{c}") for c in FEATURE_COLUMNS]]
    assert np.array_equal(ind, reference[list(FEATURE_COLUMNS)].to_numpy())


def test_cross_asset_and_time_columns():
    builder = StateVectorBuilder(StateVectorConfig(normalize_indicators=False))
    data = bars(168 + 200, seed=8)
    vector = builder.build(data)
    names = builder.layout()
    assert np.all(vector[:, names.index("BTCUSDT.xasset.corr_ref_24h")] == pytest.approx(1.0, abs=1e-5))
    assert np.all(vector[:, names.index("BTCUSDT.xasset.rel_strength_24h")] == 0.0)
    r1 = np.log(data["ETHUSDT"]["close"]).diff().tail(24).to_numpy()
    rb = np.log(data["BTCUSDT"]["close"]).diff().tail(24).to_numpy()
    assert vector[-1, names.index("ETHUSDT.xasset.corr_ref_24h")] == pytest.approx(np.corrcoef(r1, rb)[0, 1], rel=1e-4)
    assert vector[-1, names.index("ETHUSDT.xasset.beta_ref_24h")] == pytest.approx(
        np.cov(r1, rb)[0, 1] / np.var(rb, ddof=1), rel=1e-4
    )
    ranks = vector[:, [names.index(f"{s}.xasset.rank_return_1h") for s in SYMBOLS]]
    assert np.allclose(np.sort(ranks, axis=1), [0, 1 / 3, 2 / 3, 1], atol=1e-6)
    last = END.hour
    assert vector[-1, names.index("time.hour_sin")] == pytest.approx(np.sin(2 * np.pi * last / 24), abs=1e-6)
    assert vector[-1, names.index("time.dow_cos")] == pytest.approx(np.cos(2 * np.pi * END.day_of_week / 7), abs=1e-6)


def test_future_bars_are_never_used():
    builder = StateVectorBuilder(StateVectorConfig(use_cache=False))
    data = bars(168 + 800, seed=2)
    decision = END - pd.Timedelta(hours=30) + pd.Timedelta(minutes=17)  # bars closed by 06:17 ...
    base = builder.build(data, timestamp=decision)
    perturbed = {}
    for symbol, frame in data.items():
        frame = frame.copy()
        future = frame["timestamp"] + pd.Timedelta(hours=1) > decision
        frame.loc[future, ["open", "high", "low", "close"]] *= 3.0
        frame.loc[future, "volume"] = -1.0  # invalid too: never even validated
        perturbed[symbol] = frame
    assert np.array_equal(builder.build(perturbed, timestamp=decision), base)
    extra = {
        s: pd.concat([f, bars(5, seed=9, end=END + pd.Timedelta(hours=5), symbols=[s])[s]], ignore_index=True)
        for s, f in data.items()
    }
    assert np.array_equal(builder.build(extra, timestamp=decision), base)
    # the last row is the bar that closed last: 05:00-06:00 when deciding at 06:17
    names = builder.layout()
    close_at = data["BTCUSDT"].set_index("timestamp")["close"]
    expected_last = close_at[decision.floor("h") - pd.Timedelta(hours=1)]
    raw = StateVectorBuilder(StateVectorConfig(normalize_ohlcv=False, use_cache=False)).build(data, timestamp=decision)
    assert raw[-1, names.index("BTCUSDT.ohlcv.close")] == pytest.approx(expected_last, rel=1e-6)
    # a book snapshot from after the decision time is refused
    with pytest.raises(ValueError, match="after the build's timestamp"):
        builder.build(
            data, {"BTCUSDT": {**book(), "timestamp": decision + pd.Timedelta(minutes=1)}}, timestamp=decision
        )


def test_bars_before_the_warm_up_do_not_matter():
    builder = StateVectorBuilder(StateVectorConfig(use_cache=False))
    data = bars(168 + 2000, seed=3)
    base = builder.build(data)
    trimmed = {s: f.iloc[400:].reset_index(drop=True) for s, f in data.items()}  # still > 720 h + window
    assert np.array_equal(builder.build(trimmed), base)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("SOLUSDT"), r"symbols differ from the config: missing \['SOLUSDT'\]"),
        (lambda d: d.update(XRPUSDT=d["BTCUSDT"]), r"unexpected \['XRPUSDT'\]"),
        (
            lambda d: d.update(ETHUSDT=d["ETHUSDT"].tail(100)),
            r"ETHUSDT: 100 rows given; window_hours=168 needs at least 168",
        ),
        (lambda d: d.update(BNBUSDT=d["BNBUSDT"].drop(columns=["volume"])), r"BNBUSDT: missing columns \['volume'\]"),
        (
            lambda d: d["BTCUSDT"].__setitem__("low", d["BTCUSDT"]["low"].where(d["BTCUSDT"].index != 200, -5.0)),
            r"BTCUSDT: column 'low' at 2024-03-02T05:00:00\+00:00 is zero or negative \(-5.0\)",
        ),
        (
            lambda d: d["ETHUSDT"].__setitem__(
                "timestamp", d["ETHUSDT"]["timestamp"].where(d["ETHUSDT"].index != 250, d["ETHUSDT"]["timestamp"][10])
            ),
            r"ETHUSDT: column 'timestamp' not strictly increasing at row 250",
        ),
        (
            lambda d: d["ETHUSDT"].__setitem__("timestamp", d["ETHUSDT"]["timestamp"] + pd.Timedelta(minutes=1)),
            r"ETHUSDT: column 'timestamp' at .* is not on the hour",
        ),
        (
            lambda d: d["SOLUSDT"].__setitem__("timestamp", d["SOLUSDT"]["timestamp"].dt.tz_localize(None)),
            r"SOLUSDT: column 'timestamp' is timezone-naive",
        ),
    ],
)
def test_bad_input_names_symbol_column_and_time(mutate, message):
    data = {s: f.copy() for s, f in bars(400, seed=1).items()}
    mutate(data)
    with pytest.raises(ValueError, match=message):
        StateVectorBuilder().build(data)


def test_nan_follows_fill_method_and_is_counted():
    data = {s: f.copy() for s, f in bars(168 + 300, seed=6).items()}
    at = len(data["ETHUSDT"]) - 10
    data["ETHUSDT"].loc[at, "close"] = np.nan
    when = data["ETHUSDT"]["timestamp"][at].isoformat()
    with pytest.raises(
        ValueError, match=rf"ETHUSDT: column 'close' at {re.escape(when)} is NaN \(fill_method='raise'\)"
    ):
        StateVectorBuilder(StateVectorConfig(fill_method="raise")).build(data)
    names = StateVectorBuilder().layout()
    row = 168 - 10
    forward = StateVectorBuilder(StateVectorConfig(fill_method="forward", normalize_ohlcv=False))
    vector = forward.build(data)
    assert forward.last_build["input_nan_rows"]["ETHUSDT"] == 1
    assert forward.last_build["missing_hours"]["ETHUSDT"] == 1
    assert vector[row, names.index("ETHUSDT.data.filled")] == 1.0
    assert vector[row - 1, names.index("ETHUSDT.data.filled")] == 0.0
    assert vector[row, names.index("ETHUSDT.ohlcv.close")] == vector[row - 1, names.index("ETHUSDT.ohlcv.close")]
    zero = StateVectorBuilder(StateVectorConfig(fill_method="zero", normalize_ohlcv=False)).build(data)
    assert zero[row, names.index("ETHUSDT.ohlcv.close")] == 0.0
    assert np.isfinite(zero).all() and np.isfinite(vector).all()
    # a missing hour (no row at all) is handled the same way
    gap = {s: f.drop(index=at).reset_index(drop=True) if s == "ETHUSDT" else f for s, f in data.items()}
    gap["ETHUSDT"].loc[:, "close"] = gap["ETHUSDT"]["close"].ffill()
    with pytest.raises(ValueError, match="ETHUSDT: column 'close' has no bar at"):
        StateVectorBuilder(StateVectorConfig(fill_method="raise")).build(gap)


def test_short_history_fills_warm_up_and_counts_it():
    builder = StateVectorBuilder()
    short = builder.build(bars(168, seed=5))
    long = StateVectorBuilder()
    long.build(bars(168 + 900, seed=5))
    assert np.isfinite(short).all()
    assert builder.last_build["filled_values"] > 1000  # 1d indicators need 27 days before the window
    assert long.last_build["filled_values"] == 0


def test_missing_optional_inputs_are_zero_with_absent_flags_and_book_values_are_right():
    builder = StateVectorBuilder(StateVectorConfig(use_cache=False))
    data = bars(400, seed=7)
    names = builder.layout()
    bare = builder.build(data)
    for name in ("portfolio.present", "BTCUSDT.book.present", "BTCUSDT.book.spread_bps", "ETHUSDT.portfolio.weight"):
        assert not bare[:, names.index(name)].any()
    full = builder.build(data, {"BTCUSDT": book(100.0)}, PORTFOLIO)
    assert full[-1, names.index("BTCUSDT.book.present")] == 1.0
    assert not full[:-1, names.index("BTCUSDT.book.present")].any()
    assert full[-1, names.index("ETHUSDT.book.present")] == 0.0
    assert full[-1, names.index("BTCUSDT.book.spread_bps")] == pytest.approx(0.1 / 100.0 * 1e4, rel=1e-5)
    bid13 = sum((100 - 0.05 - 0.1 * k) * (1 + k) for k in range(3))
    ask13 = sum((100 + 0.05 + 0.1 * k) * (1.5 + k) for k in range(3))
    assert full[-1, names.index("BTCUSDT.book.imbalance_1_3")] == pytest.approx(
        (bid13 - ask13) / (bid13 + ask13), rel=1e-5
    )
    close = data["ETHUSDT"]["close"].iloc[-1]
    assert full[-1, names.index("ETHUSDT.portfolio.weight")] == pytest.approx(2.0 * close / 100000.0, rel=1e-5)
    assert full[-1, names.index("portfolio.cash_share")] == pytest.approx(0.05)
    assert full[-1, names.index("portfolio.present")] == 1.0
    with pytest.raises(ValueError, match="crossed book"):
        builder.build(data, {"BTCUSDT": {"bids": [[101.0, 1.0]], "asks": [[100.0, 1.0]]}})
    with pytest.raises(ValueError, match="position in 'XRPUSDT'"):
        builder.build(data, portfolio_state={"positions": {"XRPUSDT": 1.0}, "cash": 0.0, "total_value": 1.0})


def test_cache_is_keyed_by_content_bounded_and_counted():
    builder = StateVectorBuilder(StateVectorConfig(cache_size=2))
    data = {s: f.copy() for s, f in bars(400, seed=10).items()}
    first = builder.build(data, {"BTCUSDT": book()}, PORTFOLIO)
    again = builder.build(data, {"BTCUSDT": book()}, PORTFOLIO)
    assert again is first and not again.flags.writeable
    assert (builder.cache_hits, builder.cache_misses) == (1, 1)
    # a corrected bar in the same (reused) DataFrame object is a different input
    data["SOLUSDT"].loc[len(data["SOLUSDT"]) - 3, "close"] *= 1.001
    corrected = builder.build(data, {"BTCUSDT": book()}, PORTFOLIO)
    assert corrected is not first and not np.array_equal(corrected, first)
    fresh = StateVectorBuilder(StateVectorConfig(use_cache=False)).build(data, {"BTCUSDT": book()}, PORTFOLIO)
    assert np.array_equal(corrected, fresh)
    # so is a column replaced by assignment (pandas swaps the block under the same object)
    data["ETHUSDT"]["volume"] = data["ETHUSDT"]["volume"] * 2.0
    replaced = builder.build(data, {"BTCUSDT": book()}, PORTFOLIO)
    assert np.array_equal(
        replaced, StateVectorBuilder(StateVectorConfig(use_cache=False)).build(data, {"BTCUSDT": book()}, PORTFOLIO)
    )
    assert not np.array_equal(replaced, corrected)
    # a different book or portfolio is a different key too
    assert builder.build(data, {"BTCUSDT": book(100.5)}, PORTFOLIO) is not corrected
    assert builder.cache_misses == 4 and len(builder._cache) == 2  # LRU bound
    assert builder.metrics()["cache_hit_rate"] == pytest.approx(1 / 5)


def test_stored_rows_and_windows_equal_in_memory_builds():
    builder = StateVectorBuilder(StateVectorConfig(use_cache=False))
    data = bars(168 + 1200, seed=12)
    hours = data["BTCUSDT"]["timestamp"].to_numpy(dtype="datetime64[h]").astype(np.int64)
    start, end = int(hours[-200]), int(hours[-1])
    # rows computed day by day (as the asset stores them) equal rows computed in one pass
    pieces = []
    for day_start in range(start - start % 24, end + 1, 24):
        lo, hi = max(start, day_start), min(end, day_start + 23)
        pieces.append(builder.raw_rows(data, lo, hi)[0])
    rows = np.concatenate(pieces)
    whole, _ = builder.raw_rows(data, start, end)
    assert np.array_equal(rows, whole)
    windows = builder.normalise_windows(rows, np.array([199, 180, 167]))
    for index, end_row in enumerate((199, 180, 167)):
        decision = pd.Timestamp((start + end_row + 1) * 3600, unit="s", tz="UTC")
        assert np.array_equal(windows[index], builder.build(data, timestamp=decision)), end_row


def test_build_into_out_allocates_nothing_large():
    builder = StateVectorBuilder(StateVectorConfig(use_cache=False))
    data = bars(168 + 800, seed=13)
    out = np.empty((168, WIDTH), dtype=np.float32)
    reference = builder.build(data, {"BTCUSDT": book()}, PORTFOLIO).copy()
    builder.build(data, {"BTCUSDT": book()}, PORTFOLIO, out=out)
    tracemalloc.start()
    builder.build(data, {"BTCUSDT": book()}, PORTFOLIO, out=out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.array_equal(out, reference)
    assert peak < 32_000, f"a build into out= allocated {peak} bytes"
