"""The extended OHLCV indicators against TA-Lib (a test/benchmark-only dependency) and exact
numpy / math.fsum references; causality; the [lo, first, hi) range form; input errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.features.ohlcv_ext import EXT_COLUMNS, RESUM_EVERY, ohlcv_ext_array, ohlcv_ext_range

TIGHT = {"rtol": 1e-9, "atol": 1e-12}
# first bar with a value, per column (TA-Lib's lookbacks)
FIRST_VALUE = {
    "sma_ratio_10": 9,
    "sma_ratio_20": 19,
    "sma_ratio_50": 49,
    "ema_ratio_9": 8,
    "ema_ratio_21": 20,
    "ema_ratio_50": 49,
    "stoch_k_14": 13,
    "stoch_d_3": 15,
    "plus_di_14": 14,
    "minus_di_14": 14,
    "adx_14": 27,
    "mfi_14": 14,
    "obv_slope_24": 24,
    "vwap_dev_24": 23,
    "volume_ratio_20": 19,
    "log_volume_change": 1,
}


def _walk(n: int = 3000, seed: int = 7, volume_sigma: float = 0.5):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.004, (2, n)))
    high = np.maximum(open_, close) * (1 + spread[0])
    low = np.minimum(open_, close) * (1 - spread[1])
    return open_, high, low, close, rng.lognormal(3, volume_sigma, n)


def col(out, name):
    return out[:, EXT_COLUMNS.index(name)]


def test_the_warm_up_is_nan_exactly_until_each_columns_first_value():
    out = ohlcv_ext_array(*_walk(200))
    assert set(FIRST_VALUE) == set(EXT_COLUMNS)
    for name, first in FIRST_VALUE.items():
        assert np.isnan(col(out, name)[:first]).all(), name
        assert np.isfinite(col(out, name)[first:]).all(), name


def test_every_indicator_talib_has_equals_talib_from_the_first_bar():
    talib = pytest.importorskip("talib")
    o, h, low, c, v = _walk()
    out = ohlcv_ext_array(o, h, low, c, v)
    # whole series: NaN where TA-Lib's lookback is, equal values after (same seeds)
    for n in (10, 20, 50):
        np.testing.assert_allclose(col(out, f"sma_ratio_{n}"), c / talib.SMA(c, n) - 1, **TIGHT)
    for n in (9, 21, 50):
        np.testing.assert_allclose(col(out, f"ema_ratio_{n}"), c / talib.EMA(c, n) - 1, **TIGHT)
    fastk, fastd = talib.STOCHF(h, low, c, 14, 3, 0)  # both from %D's lookback (15)
    np.testing.assert_allclose(col(out, "stoch_k_14")[15:], fastk[15:], **TIGHT)
    np.testing.assert_allclose(col(out, "stoch_k_14"), talib.STOCHF(h, low, c, 14, 1, 0)[0], **TIGHT)
    np.testing.assert_allclose(col(out, "stoch_d_3"), fastd, **TIGHT)
    np.testing.assert_allclose(col(out, "plus_di_14"), talib.PLUS_DI(h, low, c, 14), **TIGHT)
    np.testing.assert_allclose(col(out, "minus_di_14"), talib.MINUS_DI(h, low, c, 14), **TIGHT)
    np.testing.assert_allclose(col(out, "adx_14"), talib.ADX(h, low, c, 14), **TIGHT)
    np.testing.assert_allclose(col(out, "mfi_14"), talib.MFI(h, low, c, v, 14), **TIGHT)
    obv = talib.OBV(c, v)
    traded = pd.Series(v).rolling(24).sum().to_numpy()
    np.testing.assert_allclose(col(out, "obv_slope_24")[24:], (obv[24:] - obv[:-24]) / traded[24:], **TIGHT)
    np.testing.assert_allclose(col(out, "volume_ratio_20"), v / talib.SMA(v, 20), **TIGHT)


def test_every_column_equals_a_plain_pandas_reference():
    o, h, low, c, v = _walk(700)
    out = ohlcv_ext_array(o, h, low, c, v)
    close = pd.Series(c)
    for n in (10, 20, 50):
        np.testing.assert_allclose(col(out, f"sma_ratio_{n}"), c / close.rolling(n).mean() - 1, **TIGHT)
    for n in (9, 21, 50):
        seeded = close.copy()
        seeded[: n - 1] = np.nan
        seeded[n - 1] = c[:n].mean()
        ema = seeded.ewm(alpha=2 / (n + 1), adjust=False, ignore_na=True).mean().to_numpy().copy()
        ema[: n - 1] = np.nan
        np.testing.assert_allclose(col(out, f"ema_ratio_{n}"), c / ema - 1, **TIGHT)
    hh, ll = pd.Series(h).rolling(14).max(), pd.Series(low).rolling(14).min()
    k = 100 * (close - ll) / (hh - ll)
    np.testing.assert_allclose(col(out, "stoch_k_14"), k, **TIGHT)
    np.testing.assert_allclose(col(out, "stoch_d_3"), k.rolling(3).mean(), **TIGHT)
    signed = np.sign(np.diff(c)) * v[1:]
    obv = pd.Series(signed).rolling(24).sum() / pd.Series(v[1:]).rolling(24).sum()
    np.testing.assert_allclose(col(out, "obv_slope_24")[24:], obv.to_numpy()[23:], **TIGHT)
    typical = (h + low + c) / 3
    vwap = pd.Series(typical * v).rolling(24).sum() / pd.Series(v).rolling(24).sum()
    np.testing.assert_allclose(col(out, "vwap_dev_24"), c / vwap - 1, **TIGHT)
    np.testing.assert_allclose(col(out, "volume_ratio_20"), v / pd.Series(v).rolling(20).mean(), **TIGHT)
    np.testing.assert_allclose(col(out, "log_volume_change")[1:], np.log(v[1:] / v[:-1]), **TIGHT)
    up = np.diff(typical) > 0
    down = np.diff(typical) < 0
    pos = pd.Series(np.where(up, typical[1:] * v[1:], 0.0)).rolling(14).sum()
    neg = pd.Series(np.where(down, typical[1:] * v[1:], 0.0)).rolling(14).sum()
    np.testing.assert_allclose(col(out, "mfi_14")[1:], 100 * pos / (pos + neg), **TIGHT)


def _exact_window_columns(h, low, c, v, i):
    """mfi_14, obv_slope_24, vwap_dev_24, volume_ratio_20 at bar i from correctly rounded sums."""
    tp = (h + low + c) / 3.0
    pos = math.fsum(tp[j] * v[j] for j in range(i - 13, i + 1) if tp[j] > tp[j - 1])
    neg = math.fsum(tp[j] * v[j] for j in range(i - 13, i + 1) if tp[j] < tp[j - 1])
    traded = math.fsum(v[i - 23 : i + 1])
    signed = math.fsum(np.sign(c[j] - c[j - 1]) * v[j] for j in range(i - 23, i + 1))
    vwap = math.fsum(tp[i - 23 : i + 1] * v[i - 23 : i + 1]) / traded
    return 100 * pos / (pos + neg), signed / traded, c[i] / vwap - 1, v[i] / (math.fsum(v[i - 19 : i + 1]) / 20)


def test_sliding_sums_stay_exact_after_volume_spikes_leave_their_window():
    o, h, low, c, v = _walk(3 * RESUM_EVERY, seed=3, volume_sigma=0.3)
    v[60::37] *= 1e9  # spikes nine orders of magnitude above the other bars
    out = ohlcv_ext_array(o, h, low, c, v)
    names = ("mfi_14", "obv_slope_24", "vwap_dev_24", "volume_ratio_20")
    for i in range(30, len(c)):
        exact = _exact_window_columns(h, low, c, v, i)
        got = [out[i, EXT_COLUMNS.index(name)] for name in names]
        np.testing.assert_allclose(got, exact, rtol=1e-11, atol=1e-13, err_msg=f"bar {i}")


def test_a_window_without_positive_flow_has_mfi_exactly_zero():
    # 200 bars with money flows spread over ~15 orders of magnitude, then 40 falling bars: once the
    # last positive flow has left the window the positive side is exactly 0, not a rounding residue
    # (this seed leaves one of 1e-22 in the compensated sum)
    rng = np.random.default_rng(13)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    c[200:240] = c[199] * np.exp(-0.01 * np.arange(1, 41))
    v = rng.lognormal(3, 6, 300)
    out = ohlcv_ext_array(c, c * 1.001, c * 0.999, c, v)
    assert (col(out, "mfi_14")[213:240] == 0.0).all()
    assert (col(out, "mfi_14")[240:] > 0).any()
    flat = np.full(40, 100.0)
    still = ohlcv_ext_array(flat, flat, flat, flat, np.full(40, 5.0))
    assert (col(still, "mfi_14")[14:] == 50.0).all()  # no money flow at all: neutral
    assert (col(still, "stoch_k_14")[13:] == 0.0).all() and (col(still, "adx_14")[27:] == 0.0).all()


def test_zero_volume_bars():
    o, h, low, c, v = _walk(100, seed=2)
    v[30:70] = 0.0
    out = ohlcv_ext_array(o, h, low, c, v)
    assert np.isnan(col(out, "log_volume_change")[30:71]).all()
    assert np.isnan(col(out, "volume_ratio_20")[49:70]).all() and col(out, "volume_ratio_20")[48] == 0.0
    assert np.isnan(col(out, "vwap_dev_24")[53:70]).all() and np.isfinite(col(out, "vwap_dev_24")[52])
    assert (col(out, "obv_slope_24")[53:70] == 0.0).all()
    # the first bar after the stretch: the only volume of its 24-bar window is its own
    assert col(out, "vwap_dev_24")[70] == pytest.approx(c[70] / ((h[70] + low[70] + c[70]) / 3) - 1, rel=1e-12)


def test_causal():
    o, h, low, c, v = _walk(1200, seed=9)
    base = ohlcv_ext_array(o, h, low, c, v)
    for cut in (30, 700):
        for which in range(5):
            bumped = [a.copy() for a in (o, h, low, c, v)]
            bumped[which][cut + 1 :] *= 1.3
            again = ohlcv_ext_array(*bumped)
            assert np.array_equal(base[: cut + 1], again[: cut + 1], equal_nan=True), (cut, which)
            if which:  # no column uses the open
                assert not np.array_equal(base[cut + 1 :], again[cut + 1 :], equal_nan=True), (cut, which)


@pytest.mark.parametrize(("lo", "first", "hi"), [(400, 640, 1100), (400, 400, 460), (0, 5, 30), (10, 2000, 2000)])
def test_a_range_equals_the_slice_alone_and_writes_only_its_rows(lo, first, hi):
    bars = _walk(2000, seed=11)
    out = np.full((hi - first + 4, len(EXT_COLUMNS)), -7.0)
    ohlcv_ext_range(*bars, lo, first, hi, out, 3)
    alone = ohlcv_ext_array(*(a[lo:hi] for a in bars))[first - lo :]
    assert np.array_equal(out[3 : 3 + hi - first], alone, equal_nan=True)
    assert (out[:3] == -7.0).all() and (out[3 + hi - first :] == -7.0).all()


def test_input_errors_name_the_input_and_the_index():
    o, h, low, c, v = _walk(50)
    v[17] = np.nan
    with pytest.raises(ValueError, match=r"non-finite volume at index 17"):
        ohlcv_ext_array(o, h, low, c, v)
    c2 = c.copy()
    c2[3] = np.inf
    with pytest.raises(ValueError, match=r"non-finite close at index 3"):
        ohlcv_ext_array(o, h, low, c2, np.ones(50))
    with pytest.raises(ValueError, match=r"1-D of one length"):
        ohlcv_ext_array(o, h, low[:-1], c, v)
    with pytest.raises(ValueError, match=r"out must be C-contiguous float64 of shape \(50, 16\)"):
        ohlcv_ext_array(o, h, low, c, np.ones(50), out=np.empty((50, 15)))
    buffer = np.empty((50, 16))
    assert ohlcv_ext_array(o, h, low, c, np.ones(50), out=buffer) is buffer
