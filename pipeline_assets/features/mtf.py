"""Multi-timeframe family: 4h and 1d indicators from closed higher-timeframe bars, on each 1h row.

Rules (every value causal):
- Higher-timeframe buckets are UTC-aligned (4h: 00,04,...; 1d: 00:00). A bucket is *closed* at
  row t when its end is <= t + 1h (the close of bar t), so row t sees a bucket only once its
  last hour has closed. A bucket is *complete* when all its hourly bars are present.
- The chain of indicators (log return of the bucket close, Wilder RSI 14, EMA 12/26 ratio, Wilder
  ATR 14 as a fraction of close; the same definitions as the 1h family) runs over complete
  buckets only. When the latest closed bucket at row t is incomplete (a missing hour), row t's
  values for that timeframe are NaN (a missing higher-timeframe bar is never papered over);
  ``log_return`` is NaN when the previous bucket is missing too.
- Warm-up is day-anchored like the 1h family's: the rows of UTC day D are computed from the bars
  of [D - MTF_LOOKBACK_HOURS, end of D) only, so values do not depend on how runs were batched.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline_assets.features.indicators import _rsi_value, ohlcv_range_at

TIMEFRAMES: tuple[tuple[str, int], ...] = (("4h", 4), ("1d", 24))
MTF_FIELDS: tuple[str, ...] = ("log_return", "rsi_14", "ema_ratio_12_26", "atr_14_pct")
MTF_COLUMNS: tuple[str, ...] = tuple(f"tf{name}_{field}" for name, _ in TIMEFRAMES for field in MTF_FIELDS)
MTF_PARAMS: dict = {
    "timeframes_hours": [k for _, k in TIMEFRAMES],
    "rsi_period": 14,
    "ema_fast": 12,
    "ema_slow": 26,
    "atr_period": 14,
}
MTF_VERSION = 1
# 30 days: the 1d EMA 26 is seeded after 26 closed days; the 4h chain has 180 buckets to forget its seed.
MTF_LOOKBACK_HOURS = 30 * 24


@njit(cache=True)
def _tf_range(ts_h, high, low, close, k, lo, first, hi, out, row0, col0):
    a_fast = 2.0 / 13.0
    a_slow = 2.0 / 27.0
    period = 14
    n_done = 0  # complete buckets consumed by the chain
    last_complete = -1  # bucket index of the last complete bucket
    prev_close = np.nan
    fast = slow = np.nan
    fast_total = slow_total = 0.0
    gain_sum = loss_sum = avg_gain = avg_loss = 0.0
    tr_total = atr = 0.0
    rsi = atr_value = log_ret = np.nan
    bucket = -1
    count = 0
    b_high = b_low = b_close = 0.0
    for i in range(lo, hi):
        t = ts_h[i]
        b = t // k
        if b != bucket:
            bucket = b
            count = 0
            b_high = high[i]
            b_low = low[i]
        else:
            b_high = max(b_high, high[i])
            b_low = min(b_low, low[i])
        b_close = close[i]
        count += 1
        if t % k == k - 1 and count == k:
            # a complete bucket closes with this row: advance the chain
            c = b_close
            log_ret = np.log(c / prev_close) if (n_done > 0 and last_complete == b - 1) else np.nan
            if n_done < 12:
                fast_total += c
                if n_done == 11:
                    fast = fast_total / 12.0
            else:
                fast = a_fast * c + (1.0 - a_fast) * fast
            if n_done < 26:
                slow_total += c
                if n_done == 25:
                    slow = slow_total / 26.0
            else:
                slow = a_slow * c + (1.0 - a_slow) * slow
            if n_done == 0:
                tr = b_high - b_low
            else:
                tr = max(b_high - b_low, abs(b_high - prev_close), abs(b_low - prev_close))
                change = c - prev_close
                if n_done <= period:
                    if change > 0:
                        gain_sum += change
                    else:
                        loss_sum -= change
                    if n_done == period:
                        avg_gain = gain_sum / period
                        avg_loss = loss_sum / period
                        rsi = _rsi_value(avg_gain, avg_loss)
                else:
                    gain = change if change > 0 else 0.0
                    loss = -change if change < 0 else 0.0
                    avg_gain = (avg_gain * (period - 1) + gain) / period
                    avg_loss = (avg_loss * (period - 1) + loss) / period
                    rsi = _rsi_value(avg_gain, avg_loss)
            if n_done < period:
                tr_total += tr
                if n_done == period - 1:
                    atr = tr_total / period
                    atr_value = atr / c
            else:
                atr = (atr * (period - 1) + tr) / period
                atr_value = atr / c
            prev_close = c
            last_complete = b
            n_done += 1
        if i < first:
            continue
        row = row0 + i - first
        latest_closed = (t + 1) // k - 1
        if n_done == 0 or last_complete != latest_closed:
            for j in range(4):
                out[row, col0 + j] = np.nan
        else:
            out[row, col0] = log_ret
            out[row, col0 + 1] = rsi
            out[row, col0 + 2] = fast / slow - 1.0
            out[row, col0 + 3] = atr_value


@njit(cache=True)
def mtf_range(ts_h, high, low, close, lo, first, hi, out, row0, col0):
    """MTF_COLUMNS for rows [first, hi) from bars [lo, hi) (hour numbers ``ts_h`` since the epoch,
    strictly increasing), written to out[row0 + i - first, col0:col0 + 8]. Allocates nothing."""
    _tf_range(ts_h, high, low, close, 4, lo, first, hi, out, row0, col0)
    _tf_range(ts_h, high, low, close, 24, lo, first, hi, out, row0, col0 + 4)


@njit(cache=True)
def day_anchored(ts_h, lookback_hours, first, hi, rows, out, row0, col0, family):
    """Apply a family kernel day by day over rows [first, hi): each UTC day's rows computed from
    the bars since (day start - lookback_hours). ``family`` 0 = OHLCV, 1 = MTF; ``rows`` is
    (open, high, low, close, volume) stacked as a (5, n) array."""
    i = first
    lo = 0
    while i < hi:
        day_start = (ts_h[i] // 24) * 24
        while lo < i and ts_h[lo] < day_start - lookback_hours:
            lo += 1
        # consecutive days whose warm-up starts at the same bar (short input) share one pass:
        # the chain from one seed is the same computation, so the values are identical
        j = i
        while j < hi:
            day = (ts_h[j] // 24) * 24
            if day != day_start:
                next_lo = lo
                while next_lo < j and ts_h[next_lo] < day - lookback_hours:
                    next_lo += 1
                if next_lo != lo:
                    break
                day_start = day
            j += 1
        if family == 1:
            mtf_range(ts_h, rows[1], rows[2], rows[3], lo, i, j, out, row0 + i - first, col0)
        else:
            ohlcv_range_at(rows, lo, i, j, out, row0 + i - first, col0)
        i = j


def mtf_array(ts_hours, high, low, close) -> np.ndarray:
    """MTF_COLUMNS for every row, day-anchored warm-up; float64 (n, 8), NaN where not available."""
    ts_hours = np.ascontiguousarray(ts_hours, dtype=np.int64)
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (high, low, close)]
    n = ts_hours.shape[0]
    out = np.empty((n, len(MTF_COLUMNS)))
    rows = np.empty((5, n))
    rows[1], rows[2], rows[3] = arrays
    day_anchored(ts_hours, MTF_LOOKBACK_HOURS, 0, n, rows, out, 0, 0, 1)
    return out
