"""Indicator kernels against independent pandas references, and the feature set's rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.features import indicators as ind
from pipeline_assets.features.ohlcv_features import (
    FEATURE_COLUMNS,
    FEATURE_PARAMS,
    FEATURE_SET_ID,
    LOOKBACK_HOURS,
    FeatureInputError,
    compute_ohlcv_features,
    feature_set_id,
)


def _walk(n: int = 2000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.004, (2, n)))
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread[0]),
            "low": np.minimum(open_, close) * (1 - spread[1]),
            "close": close,
            "volume": rng.lognormal(3, 0.5, n),
        }
    )


def _sma_seeded_ema(values: pd.Series, span: int) -> pd.Series:
    seeded = values.copy()
    seeded.iloc[: span - 1] = np.nan
    seeded.iloc[span - 1] = values.iloc[:span].mean()
    return seeded.iloc[span - 1 :].ewm(span=span, adjust=False).mean().reindex(values.index)


def _wilder(values: pd.Series, period: int, first: int) -> pd.Series:
    """Wilder smoothing seeded with the mean of values[first : first + period]."""
    out = pd.Series(np.nan, index=values.index)
    seed_at = first + period - 1
    out.iloc[seed_at] = values.iloc[first : seed_at + 1].mean()
    for i in range(seed_at + 1, len(values)):
        out.iloc[i] = (out.iloc[i - 1] * (period - 1) + values.iloc[i]) / period
    return out


def test_kernels_match_pandas_references():
    bars = _walk()
    close, high, low = bars["close"], bars["high"], bars["low"]
    np.testing.assert_allclose(ind.ema(close, 12), _sma_seeded_ema(close, 12), rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(ind.rolling_mean(close, 20), close.rolling(20).mean(), rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(ind.rolling_std(close, 24, 1), close.rolling(24).std(ddof=1), rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(ind.log_return(close, 4), np.log(close / close.shift(4)), rtol=1e-12, equal_nan=True)

    change = close.diff()
    avg_gain = _wilder(change.clip(lower=0), 14, first=1)
    avg_loss = _wilder((-change).clip(lower=0), 14, first=1)
    np.testing.assert_allclose(
        ind.wilder_rsi(close, 14), 100 - 100 / (1 + avg_gain / avg_loss), rtol=1e-9, equal_nan=True
    )

    previous = close.shift(1)
    true_range = pd.concat([high - low, (high - previous).abs(), (low - previous).abs()], axis=1).max(axis=1)
    true_range.iloc[0] = high.iloc[0] - low.iloc[0]
    np.testing.assert_allclose(
        ind.wilder_atr(high, low, close, 14), _wilder(true_range, 14, first=0), rtol=1e-9, equal_nan=True
    )

    mean, std = close.rolling(20).mean(), close.rolling(20).std(ddof=0)
    np.testing.assert_allclose(
        ind.bollinger_pctb(close, 20, 2.0), (close - (mean - 2 * std)) / (4 * std), rtol=1e-8, equal_nan=True
    )


def test_rsi_and_atr_by_hand():
    # closes 10, 11, 10, 12, 12, 13: changes +1, -1, +2, 0, +1
    close = np.array([10.0, 11.0, 10.0, 12.0, 12.0, 13.0])
    rsi = ind.wilder_rsi(close, 3)
    # seed (t=3): gains (1+0+2)/3 = 1, losses (0+1+0)/3 = 1/3 -> RS 3 -> RSI 75
    assert np.isnan(rsi[:3]).all() and rsi[3] == pytest.approx(75.0)
    # t=4: gain (1*2 + 0)/3 = 2/3, loss (1/3*2 + 0)/3 = 2/9 -> RS 3 -> 75
    assert rsi[4] == pytest.approx(75.0)
    # t=5: gain (2/3*2 + 1)/3 = 7/9, loss (2/9*2)/3 = 4/27 -> RS 5.25 -> 84
    assert rsi[5] == pytest.approx(100 - 100 / 6.25)
    assert ind.wilder_rsi(np.array([1.0, 2, 3, 4]), 3)[3] == 100.0
    assert ind.wilder_rsi(np.array([5.0, 5, 5, 5]), 3)[3] == 50.0
    # ATR(3) with high = close + 1, low = close - 1:
    # TR0 = 2; TR1 = max(2, |12-10|, |10-10|) = 2; TR2 = max(2, |11-11|, |9-11|) = 2 -> seed ATR2 = 2
    # TR3 = max(2, |13-10|, |11-10|) = 3 -> ATR3 = (2*2 + 3)/3 = 7/3
    # TR4 = max(2, |13-12|, |11-12|) = 2 -> ATR4 = (7/3*2 + 2)/3 = 20/9
    atr = ind.wilder_atr(close + 1, close - 1, close, 3)
    assert np.isnan(atr[:2]).all()
    assert atr[2:5] == pytest.approx([2.0, 7 / 3, 20 / 9])


def test_features_never_look_ahead():
    bars = _walk(400)
    full = compute_ohlcv_features(bars)
    for cut in (50, 137, 399):
        prefix = compute_ohlcv_features(bars.iloc[:cut].reset_index(drop=True))
        pd.testing.assert_frame_equal(prefix, full.iloc[:cut].reset_index(drop=True), check_exact=True)


def test_warm_up_and_columns():
    features = compute_ohlcv_features(_walk(200))
    assert list(features.columns) == ["ts", *FEATURE_COLUMNS]
    first_valid = {c: int(features[c].notna().idxmax()) for c in FEATURE_COLUMNS}
    assert first_valid["log_return_1h"] == 1 and first_valid["rsi_14"] == 14
    assert first_valid["macd_hist_pct"] == 26 + 9 - 2  # slow EMA at 25, signal needs 9 MACD values
    assert max(first_valid.values()) < LOOKBACK_HOURS
    assert features.iloc[LOOKBACK_HOURS:][list(FEATURE_COLUMNS)].notna().all().all()
    rsi = features["rsi_14"].dropna()
    assert ((rsi >= 0) & (rsi <= 100)).all()


def test_feature_set_id_covers_every_parameter():
    assert feature_set_id() == FEATURE_SET_ID
    assert feature_set_id(params={**FEATURE_PARAMS, "rsi_period": 21}) != FEATURE_SET_ID
    assert feature_set_id(columns=FEATURE_COLUMNS[:-1]) != FEATURE_SET_ID


def test_bad_input_names_column_and_time():
    bars = _walk(30)
    with pytest.raises(FeatureInputError, match=r"bars: frame lacks column\(s\) \['volume'\]"):
        compute_ohlcv_features(bars.drop(columns=["volume"]))
    nan = bars.copy()
    nan.loc[5, "close"] = np.nan
    with pytest.raises(FeatureInputError, match="NaN in column 'close' at 2024-01-01 05:00:00"):
        compute_ohlcv_features(nan)
    swapped = bars.iloc[[0, 2, 1, 3]].reset_index(drop=True)
    with pytest.raises(FeatureInputError, match="not strictly increasing at 2024-01-01 01:00:00"):
        compute_ohlcv_features(swapped)
    with pytest.raises(FeatureInputError, match="tz-aware UTC"):
        compute_ohlcv_features(bars.assign(ts=bars["ts"].dt.tz_localize(None)))
    with pytest.raises(ValueError, match="span must be an integer >= 1"):
        ind.ema(np.ones(3), 0)


def test_fused_family_kernel_equals_the_single_indicator_kernels():
    bars = _walk(3000, seed=11)
    high, low, close, volume = (bars[c].to_numpy() for c in ("high", "low", "close", "volume"))
    ema_fast, ema_slow = ind.ema(close, 12), ind.ema(close, 26)
    macd = ema_fast - ema_slow
    one_hour = ind.log_return(close, 1)
    volume_mean, volume_std = ind.rolling_mean(volume, 24), ind.rolling_std(volume, 24, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        volume_z = np.where(volume_std > 0, (volume - volume_mean) / volume_std, 0.0)
    volume_z[np.isnan(volume_std)] = np.nan
    composed = np.column_stack(
        [
            one_hour,
            ind.log_return(close, 4),
            ind.log_return(close, 24),
            ind.wilder_rsi(close, 14),
            ema_fast / ema_slow - 1.0,
            (macd - ind.ema(macd, 9)) / close,
            ind.bollinger_pctb(close, 20, 2.0),
            ind.wilder_atr(high, low, close, 14) / close,
            ind.rolling_std(one_hour, 24, 1),
            volume_z,
            (high - low) / close,
        ]
    )
    fused = compute_ohlcv_features(bars)[list(FEATURE_COLUMNS)].to_numpy()
    # recursive columns are bit-identical; windowed ones use sliding sums (re-summed every 256 bars)
    assert np.array_equal(np.isnan(fused), np.isnan(composed))
    np.testing.assert_allclose(fused, composed, rtol=1e-9, atol=1e-12, equal_nan=True)
    exact = [
        FEATURE_COLUMNS.index(c) for c in ("log_return_1h", "rsi_14", "ema_ratio_12_26", "macd_hist_pct", "atr_14_pct")
    ]
    assert np.array_equal(fused[:, exact], composed[:, exact], equal_nan=True)
    # a constant window gives exactly 0 spread (volume z-score 0, %b 0.5), as the two-pass kernels do
    flat = bars.assign(volume=5.0, close=100.0, open=100.0, high=100.5, low=99.5)
    flat_features = compute_ohlcv_features(flat)
    assert (flat_features["volume_zscore_24h"].dropna() == 0.0).all()
    assert (flat_features["bb_pctb_20"].dropna() == 0.5).all()
    # a sub-range seeded at `lo` equals computing on the slice alone
    out = np.full((50, len(FEATURE_COLUMNS)), np.nan)
    columns = (bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume"))
    ind.ohlcv_family_range(*columns, 500, 596, 646, out, 0)
    alone = compute_ohlcv_features(bars.iloc[500:646].reset_index(drop=True))[list(FEATURE_COLUMNS)].to_numpy()[96:]
    assert np.array_equal(out, alone, equal_nan=True)
