"""Multi-timeframe family: equal to a pandas resample of closed buckets, causal, day-anchored."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline_assets.features import indicators as ind
from pipeline_assets.features.mtf import MTF_COLUMNS, MTF_LOOKBACK_HOURS, mtf_array


def _bars(n: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.003,
            "low": np.minimum(open_, close) * 0.997,
            "close": close,
        }
    )


def _hours(ts: pd.Series) -> np.ndarray:
    return ts.to_numpy(dtype="datetime64[h]").astype(np.int64)


def _reference(bars: pd.DataFrame, day: pd.Timestamp, hours: int) -> pd.DataFrame:
    """Day `day`'s rows from a pandas resample of the bars since day - lookback."""
    part = bars[
        (bars["ts"] >= day - pd.Timedelta(hours=MTF_LOOKBACK_HOURS)) & (bars["ts"] < day + pd.Timedelta(days=1))
    ]
    g = part.set_index("ts").resample(f"{hours}h")
    buckets = pd.DataFrame(
        {"high": g["high"].max(), "low": g["low"].min(), "close": g["close"].last(), "n": g["close"].count()}
    )
    buckets = buckets[buckets["n"] == hours]
    c, h, lo = buckets["close"].to_numpy(), buckets["high"].to_numpy(), buckets["low"].to_numpy()
    ema_fast, ema_slow = ind.ema(c, 12), ind.ema(c, 26)
    values = pd.DataFrame(
        {
            "log_return": ind.log_return(c, 1),
            "rsi_14": ind.wilder_rsi(c, 14),
            "ema_ratio_12_26": ema_fast / ema_slow - 1.0,
            "atr_14_pct": ind.wilder_atr(h, lo, c, 14) / c,
        },
        index=buckets.index + pd.Timedelta(hours=hours),  # available at the bucket's end
    )
    rows = part[part["ts"] >= day]
    close_time = rows["ts"] + pd.Timedelta(hours=1)
    return values.reindex(close_time.to_numpy())  # only rows closing exactly at a bucket end match


def test_mtf_equals_a_pandas_resample_of_closed_complete_buckets():
    bars = _bars(24 * 70)
    out = mtf_array(_hours(bars["ts"]), bars["high"], bars["low"], bars["close"])
    frame = pd.DataFrame(out, columns=list(MTF_COLUMNS)).assign(ts=bars["ts"])
    for day in (pd.Timestamp("2024-02-05", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC")):
        ours = frame[(frame["ts"] >= day) & (frame["ts"] < day + pd.Timedelta(days=1))]
        for name, hours in (("4h", 4), ("1d", 24)):
            ref = _reference(bars, day, hours)
            cols = [f"tf{name}_{f}" for f in ("log_return", "rsi_14", "ema_ratio_12_26", "atr_14_pct")]
            got = ours[cols].to_numpy()
            at_close = ~np.isnan(ref.to_numpy()[:, 2])
            assert at_close.sum() == 24 // hours
            np.testing.assert_allclose(got[at_close], ref.to_numpy()[at_close], rtol=1e-12)
            # between bucket ends a row carries the latest closed bucket's value, never a later one
            filled = pd.DataFrame(np.where(at_close[:, None], got, np.nan)).ffill().to_numpy()
            np.testing.assert_array_equal(got[1:], np.where(np.isnan(filled[1:]), got[1:], filled[1:]))


def test_mtf_is_causal_and_a_missing_hour_gives_nan_not_a_stale_value():
    bars = _bars(24 * 50, seed=9)
    base = mtf_array(_hours(bars["ts"]), bars["high"], bars["low"], bars["close"])
    cut = 24 * 40 + 5
    perturbed = bars.copy()
    perturbed.loc[cut + 1 :, ["high", "low", "close"]] *= 1.37
    again = mtf_array(_hours(perturbed["ts"]), perturbed["high"], perturbed["low"], perturbed["close"])
    assert np.array_equal(base[: cut + 1], again[: cut + 1], equal_nan=True)
    assert not np.array_equal(base[cut + 1 :], again[cut + 1 :], equal_nan=True)
    gap = bars.drop(index=24 * 45 + 2).reset_index(drop=True)  # 02:00 of day 45 missing
    out = mtf_array(_hours(gap["ts"]), gap["high"], gap["low"], gap["close"])
    frame = pd.DataFrame(out, columns=list(MTF_COLUMNS)).assign(ts=gap["ts"])
    day45 = frame[(frame["ts"] >= bars["ts"][24 * 45]) & (frame["ts"] < bars["ts"][24 * 46])]
    # 4h bucket 00-04 incomplete: rows 03:00 (its close) .. 06:00 have NaN 4h values
    assert day45.iloc[2:6]["tf4h_rsi_14"].isna().all()
    assert day45.iloc[6:]["tf4h_rsi_14"].notna().all()
    # the 1d bucket of day 45 is incomplete: the next day's rows have NaN 1d values until its close
    day46 = frame[(frame["ts"] >= bars["ts"][24 * 46]) & (frame["ts"] < bars["ts"][24 * 47])]
    assert day46.iloc[:23]["tf1d_rsi_14"].isna().all() and day46.iloc[23:]["tf1d_rsi_14"].notna().all()


def test_mtf_rows_do_not_depend_on_where_the_input_starts():
    bars = _bars(24 * 80, seed=2)
    full = mtf_array(_hours(bars["ts"]), bars["high"], bars["low"], bars["close"])
    start = 24 * 10 + 7  # any start before (day - lookback) gives the same rows for that day
    part = bars.iloc[start:].reset_index(drop=True)
    later = mtf_array(_hours(part["ts"]), part["high"], part["low"], part["close"])
    day = 24 * 60
    assert np.array_equal(full[day:], later[day - start :], equal_nan=True)
