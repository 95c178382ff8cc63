"""The extended OHLCV indicators against TA-Lib (a test/benchmark-only dependency) and numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline_assets.features.ohlcv_ext import EXT_COLUMNS, ohlcv_ext_array, ohlcv_ext_range


def _walk(n: int = 3000, seed: int = 7):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.004, (2, n)))
    high = np.maximum(open_, close) * (1 + spread[0])
    low = np.minimum(open_, close) * (1 - spread[1])
    return open_, high, low, close, rng.lognormal(3, 0.5, n)


def col(out, name):
    return out[:, EXT_COLUMNS.index(name)]


def test_the_indicators_talib_has_equal_talib():
    import talib  # the dev extra installs it (a test reference, never a runtime dependency)

    o, h, low, c, v = _walk()
    out = ohlcv_ext_array(o, h, low, c, v)
    warm = slice(400, None)  # Wilder smoothing and EMA seeds forgotten
    for n in (10, 20, 50):
        np.testing.assert_allclose(
            col(out, f"sma_ratio_{n}")[warm], (c / talib.SMA(c, n) - 1)[warm], rtol=1e-9, atol=1e-12
        )
    for n in (9, 21, 50):
        np.testing.assert_allclose(
            col(out, f"ema_ratio_{n}")[warm], (c / talib.EMA(c, n) - 1)[warm], rtol=1e-9, atol=1e-12
        )
    fastk, fastd = talib.STOCHF(h, low, c, 14, 3, 0)
    np.testing.assert_allclose(col(out, "stoch_k_14")[warm], fastk[warm], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(col(out, "stoch_d_3")[warm], fastd[warm], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(col(out, "plus_di_14")[warm], talib.PLUS_DI(h, low, c, 14)[warm], rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(col(out, "minus_di_14")[warm], talib.MINUS_DI(h, low, c, 14)[warm], rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(col(out, "adx_14")[warm], talib.ADX(h, low, c, 14)[warm], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(col(out, "mfi_14")[warm], talib.MFI(h, low, c, v, 14)[warm], rtol=1e-9, atol=1e-9)


def test_the_others_equal_plain_numpy():
    o, h, low, c, v = _walk(500)
    out = ohlcv_ext_array(o, h, low, c, v)
    signed = np.sign(np.diff(c)) * v[1:]
    obv = pd.Series(signed).rolling(24).sum() / pd.Series(v[1:]).rolling(24).sum()
    np.testing.assert_allclose(col(out, "obv_slope_24")[24:], obv.to_numpy()[23:], rtol=1e-12)
    typical = (h + low + c) / 3
    vwap = pd.Series(typical * v).rolling(24).sum() / pd.Series(v).rolling(24).sum()
    np.testing.assert_allclose(col(out, "vwap_dev_24")[23:], (c / vwap - 1).to_numpy()[23:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        col(out, "volume_ratio_20")[19:], (v / pd.Series(v).rolling(20).mean()).to_numpy()[19:], rtol=1e-12
    )
    np.testing.assert_allclose(col(out, "log_volume_change")[1:], np.log(v[1:] / v[:-1]), rtol=1e-12)
    assert np.isnan(out[:9, EXT_COLUMNS.index("sma_ratio_10")]).all()


def test_causal_and_a_range_equals_the_slice_alone():
    o, h, low, c, v = _walk(1200, seed=9)
    base = ohlcv_ext_array(o, h, low, c, v)
    cut = 700
    bumped = [a.copy() for a in (o, h, low, c, v)]
    for a in bumped:
        a[cut + 1 :] *= 1.3
    again = ohlcv_ext_array(*bumped)
    assert np.array_equal(base[: cut + 1], again[: cut + 1], equal_nan=True)
    out = np.full((50, len(EXT_COLUMNS)), np.nan)
    ohlcv_ext_range(o, h, low, c, v, 400, 640, 690, out, 0)
    alone = ohlcv_ext_array(*(a[400:690] for a in (o, h, low, c, v)))[240:]
    assert np.array_equal(out, alone, equal_nan=True)
