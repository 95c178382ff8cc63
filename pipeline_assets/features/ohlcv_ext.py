"""The extended OHLCV indicator set, one fused numba pass (the second half of the OHLCV family;
kept in its own table so the first 11 columns, and the models trained on them, keep their ids).

Columns (every value at bar i uses bars <= i only; NaN during warm-up, the warm-up lengths being
TA-Lib's lookbacks):
- ``sma_ratio_{10,20,50}``: close / SMA(n) - 1.
- ``ema_ratio_{9,21,50}``: close / EMA(n) - 1, EMA seeded with the SMA of its first n closes
  (TA-Lib's convention).
- ``stoch_k_14``, ``stoch_d_3``: fast stochastic %K(14) and its 3-bar SMA %D (TA-Lib STOCHF;
  %K is 0 when the 14-bar high equals the low).
- ``plus_di_14``, ``minus_di_14``, ``adx_14``: Wilder's directional movement (TA-Lib PLUS_DI,
  MINUS_DI, ADX: sums of the first 13 moves, then Wilder smoothing; ADX seeded with the mean of
  the first 14 DX); DI and DX are 0 when their denominator is 0 (as TA-Lib's).
- ``mfi_14``: money flow index (TA-Lib MFI); 50 (neutral) when the 14 bars have no money flow
  at all, where TA-Lib gives 0.
- ``obv_slope_24``: on-balance volume change over 24 bars divided by the volume traded in them,
  in [-1, 1]. Raw OBV depends on where the series starts; its 24-bar change does not, and
  dividing by the traded volume makes it comparable across symbols and volume regimes (equal to
  (OBV[i] - OBV[i-24]) / sum(volume[i-23..i]) with TA-Lib's OBV).
- ``vwap_dev_24``: close / VWAP(24 bars, typical price (h+l+c)/3) - 1; NaN with no volume.
- ``volume_ratio_20``: volume / SMA(20) of volume; NaN with no volume in the 20 bars.
- ``log_volume_change``: log(volume / previous volume); NaN when either is 0.
Warm-up is day-anchored with EXT_LOOKBACK_HOURS, like the 11-column half.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline_assets.contracts.versioning import content_id

EXT_COLUMNS: tuple[str, ...] = (
    "sma_ratio_10",
    "sma_ratio_20",
    "sma_ratio_50",
    "ema_ratio_9",
    "ema_ratio_21",
    "ema_ratio_50",
    "stoch_k_14",
    "stoch_d_3",
    "plus_di_14",
    "minus_di_14",
    "adx_14",
    "mfi_14",
    "obv_slope_24",
    "vwap_dev_24",
    "volume_ratio_20",
    "log_volume_change",
)
EXT_PARAMS: dict = {
    "sma": [10, 20, 50],
    "ema": [9, 21, 50],
    "stoch": [14, 3],
    "dmi": 14,
    "mfi": 14,
    "obv": 24,
    "vwap": 24,
    "volume_sma": 20,
}
EXT_VERSION = 1
EXT_LOOKBACK_HOURS = 240  # EMA 50 and the double Wilder smoothing of ADX forget their seeds
EXT_SET_ID = content_id(
    f"ohlcvx-v{EXT_VERSION}", {"columns": sorted(EXT_COLUMNS), "params": EXT_PARAMS, "version": EXT_VERSION}
)


RESUM_EVERY = 256  # sliding sums are re-summed exactly this often (rounding cannot accumulate)


@njit(cache=True, inline="always")
def _resum(k, ready):
    return k == ready or (k > ready and (k - ready) % RESUM_EVERY == 0)


@njit(cache=True, inline="always")
def _sum(values, start, stop):
    total = 0.0
    for j in range(start, stop):
        total += values[j]
    return total


@njit(cache=True, inline="always")
def _add(total, error, x):
    """total + x as the compensated pair (Knuth's two-sum): a volume spike leaving a window leaves
    no rounding residue in the sums of the smaller values that remain."""
    new = total + x
    back = new - total
    return new, error + ((total - (new - back)) + (x - back))


@njit(cache=True, inline="always")
def _typical(high, low, close, j):
    return (high[j] + low[j] + close[j]) / 3.0  # TA-Lib's order of operations


@njit(cache=True, inline="always")
def _money_flow(high, low, close, volume, j):
    """(positive, negative) money flow of bar j (TA-Lib MFI: typical price against the previous)."""
    tp = _typical(high, low, close, j)
    change = tp - _typical(high, low, close, j - 1)
    flow = tp * volume[j]
    if change > 0:
        return flow, 0.0
    if change < 0:
        return 0.0, flow
    return 0.0, 0.0


@njit(cache=True, inline="always")
def _signed_volume(close, volume, j):
    if close[j] > close[j - 1]:
        return volume[j]
    if close[j] < close[j - 1]:
        return -volume[j]
    return 0.0


@njit(cache=True, inline="always")
def _argmax(values, start, stop):
    best = start
    for j in range(start + 1, stop):
        if values[j] >= values[best]:
            best = j
    return best


@njit(cache=True, inline="always")
def _argmin(values, start, stop):
    best = start
    for j in range(start + 1, stop):
        if values[j] <= values[best]:
            best = j
    return best


@njit(cache=True)
def ohlcv_ext_range(open_, high, low, close, volume, lo, first, hi, out, row0):
    """EXT_COLUMNS for bars [first, hi), computed from the bars [lo, hi) only (recursive indicators
    seeded at ``lo``, windows never reach before it), row i written to out[row0 + i - first].

    O(1) per bar: windowed sums slide and are re-summed exactly at their first full window and
    every RESUM_EVERY bars after it (counted from ``lo``, maintained through the warm-up rows, so
    values depend on ``lo`` only); the stochastic's 14-bar high/low keep the index of the extreme
    and rescan only when it leaves the window. Allocates nothing. Inputs must be finite."""
    # EMA 9 / 21 / 50, seeded with the SMA of their first n closes
    a9, a21, a50 = 2.0 / 10.0, 2.0 / 22.0, 2.0 / 51.0
    e9 = e21 = e50 = np.nan
    t9 = t21 = t50 = 0.0
    # sliding sums of closes 10/20/50
    s10 = s20 = s50 = 0.0
    # compensated sliding sums (value = sum + error) of volume 20, typical*volume 24, volume 24,
    # signed volume 24, positive / negative money flow 14; and how many of the bars in the
    # 14-bar window have a positive / negative flow (a side without any is exactly 0)
    vs20 = pv24 = vv24 = obv24 = mf_pos = mf_neg = 0.0
    vs20_e = pv24_e = vv24_e = obv24_e = mf_pos_e = mf_neg_e = 0.0
    n_pos = n_neg = 0
    # stochastic: the index of the 14-bar high and low, the two previous %K
    hh_at = ll_at = lo - 1
    k_1 = k_2 = np.nan
    # Wilder directional movement (TA-Lib: sums of the first period-1 moves, then smoothing)
    period = 14
    tr_s = pdm_s = mdm_s = dx_sum = 0.0
    adx = np.nan
    dx_seen = 0
    for i in range(lo, hi):
        k = i - lo
        c = close[i]
        v = volume[i]
        if k < 9:
            t9 += c
            if k == 8:
                e9 = t9 / 9.0
        else:
            e9 = a9 * c + (1.0 - a9) * e9
        if k < 21:
            t21 += c
            if k == 20:
                e21 = t21 / 21.0
        else:
            e21 = a21 * c + (1.0 - a21) * e21
        if k < 50:
            t50 += c
            if k == 49:
                e50 = t50 / 50.0
        else:
            e50 = a50 * c + (1.0 - a50) * e50
        # simple moving sums of closes and volume
        if _resum(k, 9):
            s10 = _sum(close, i - 9, i + 1)
        elif k > 9:
            s10 += c - close[i - 10]
        if _resum(k, 19):
            s20 = _sum(close, i - 19, i + 1)
            vs20 = vs20_e = 0.0
            for j in range(i - 19, i + 1):
                vs20, vs20_e = _add(vs20, vs20_e, volume[j])
        elif k > 19:
            s20 += c - close[i - 20]
            vs20, vs20_e = _add(vs20, vs20_e, v)
            vs20, vs20_e = _add(vs20, vs20_e, -volume[i - 20])
        if _resum(k, 49):
            s50 = _sum(close, i - 49, i + 1)
        elif k > 49:
            s50 += c - close[i - 50]
        # VWAP over 24 bars (typical price), and its volume
        if _resum(k, 23):
            pv24 = vv24 = pv24_e = vv24_e = 0.0
            for j in range(i - 23, i + 1):
                pv24, pv24_e = _add(pv24, pv24_e, _typical(high, low, close, j) * volume[j])
                vv24, vv24_e = _add(vv24, vv24_e, volume[j])
        elif k > 23:
            pv24, pv24_e = _add(pv24, pv24_e, _typical(high, low, close, i) * v)
            pv24, pv24_e = _add(pv24, pv24_e, -_typical(high, low, close, i - 24) * volume[i - 24])
            vv24, vv24_e = _add(vv24, vv24_e, v)
            vv24, vv24_e = _add(vv24, vv24_e, -volume[i - 24])
        # OBV change over 24 bars: its 24 signed volumes (each needs the previous close)
        if _resum(k, 24):
            obv24 = obv24_e = 0.0
            for j in range(i - 23, i + 1):
                obv24, obv24_e = _add(obv24, obv24_e, _signed_volume(close, volume, j))
        elif k > 24:
            obv24, obv24_e = _add(obv24, obv24_e, _signed_volume(close, volume, i))
            obv24, obv24_e = _add(obv24, obv24_e, -_signed_volume(close, volume, i - 24))
        # money flow over 14 bars (each needs the previous typical price)
        if _resum(k, 14):
            mf_pos = mf_neg = mf_pos_e = mf_neg_e = 0.0
            n_pos = n_neg = 0
            for j in range(i - 13, i + 1):
                p, n = _money_flow(high, low, close, volume, j)
                mf_pos, mf_pos_e = _add(mf_pos, mf_pos_e, p)
                mf_neg, mf_neg_e = _add(mf_neg, mf_neg_e, n)
                n_pos += p > 0
                n_neg += n > 0
        elif k > 14:
            p_in, n_in = _money_flow(high, low, close, volume, i)
            p_out, n_out = _money_flow(high, low, close, volume, i - 14)
            mf_pos, mf_pos_e = _add(mf_pos, mf_pos_e, p_in)
            mf_pos, mf_pos_e = _add(mf_pos, mf_pos_e, -p_out)
            mf_neg, mf_neg_e = _add(mf_neg, mf_neg_e, n_in)
            mf_neg, mf_neg_e = _add(mf_neg, mf_neg_e, -n_out)
            n_pos += (p_in > 0) - (p_out > 0)
            n_neg += (n_in > 0) - (n_out > 0)
        # stochastic %K 14: extremes of the last 14 bars (or fewer during the warm-up)
        start = max(lo, i - 13)
        if hh_at < start:
            hh_at = _argmax(high, start, i + 1)
        elif high[i] >= high[hh_at]:
            hh_at = i
        if ll_at < start:
            ll_at = _argmin(low, start, i + 1)
        elif low[i] <= low[ll_at]:
            ll_at = i
        stoch_k = np.nan
        if k >= 13:
            hh, ll = high[hh_at], low[ll_at]
            stoch_k = (c - ll) / ((hh - ll) / 100.0) if hh > ll else 0.0  # TA-Lib STOCHF
        # +DI / -DI / ADX 14
        plus_di = minus_di = np.nan
        if k >= 1:
            up = high[i] - high[i - 1]
            down = low[i - 1] - low[i]
            pdm = up if (up > down and up > 0) else 0.0
            mdm = down if (down > up and down > 0) else 0.0
            c_prev = close[i - 1]
            tr = max(high[i] - low[i], abs(high[i] - c_prev), abs(low[i] - c_prev))
            if k <= period - 1:
                tr_s += tr
                pdm_s += pdm
                mdm_s += mdm
            else:
                tr_s = tr_s - tr_s / period + tr
                pdm_s = pdm_s - pdm_s / period + pdm
                mdm_s = mdm_s - mdm_s / period + mdm
            if k >= period:
                plus_di = 100.0 * (pdm_s / tr_s) if tr_s > 0 else 0.0
                minus_di = 100.0 * (mdm_s / tr_s) if tr_s > 0 else 0.0
                total = plus_di + minus_di
                dx = 100.0 * (abs(minus_di - plus_di) / total) if total > 0 else 0.0
                dx_seen += 1
                if dx_seen <= period:
                    dx_sum += dx
                    if dx_seen == period:
                        adx = dx_sum / period
                else:
                    adx = (adx * (period - 1) + dx) / period
        if i >= first:
            row = row0 + i - first
            out[row, 0] = c / (s10 / 10.0) - 1.0 if k >= 9 else np.nan
            out[row, 1] = c / (s20 / 20.0) - 1.0 if k >= 19 else np.nan
            out[row, 2] = c / (s50 / 50.0) - 1.0 if k >= 49 else np.nan
            out[row, 3] = c / e9 - 1.0
            out[row, 4] = c / e21 - 1.0
            out[row, 5] = c / e50 - 1.0
            out[row, 6] = stoch_k
            out[row, 7] = (k_2 + k_1 + stoch_k) / 3.0  # NaN until three %K exist
            out[row, 8] = plus_di
            out[row, 9] = minus_di
            out[row, 10] = adx
            volume_24 = vv24 + vv24_e
            if k >= 14:
                pos = mf_pos + mf_pos_e if n_pos > 0 else 0.0
                neg = mf_neg + mf_neg_e if n_neg > 0 else 0.0
                total = pos + neg
                out[row, 11] = 100.0 * (pos / total) if total > 0 else 50.0
            else:
                out[row, 11] = np.nan
            if k >= 24:
                out[row, 12] = (obv24 + obv24_e) / volume_24 if volume_24 > 0 else 0.0
            else:
                out[row, 12] = np.nan
            if k >= 23 and volume_24 > 0:
                out[row, 13] = c / ((pv24 + pv24_e) / volume_24) - 1.0
            else:
                out[row, 13] = np.nan
            volume_20 = vs20 + vs20_e
            if k >= 19 and volume_20 > 0:
                out[row, 14] = v / (volume_20 / 20.0)
            else:
                out[row, 14] = np.nan
            if k >= 1 and v > 0 and volume[i - 1] > 0:
                out[row, 15] = np.log(v / volume[i - 1])
            else:
                out[row, 15] = np.nan
        k_2, k_1 = k_1, stoch_k


@njit(cache=True)
def _first_non_finite(values):
    for j in range(values.shape[0]):
        if not np.isfinite(values[j]):
            return j
    return -1


def ohlcv_ext_array(open_, high, low, close, volume, out: np.ndarray | None = None) -> np.ndarray:
    """Array-level entry point: float64 (n, len(EXT_COLUMNS)) for n bars, warm-up from the first
    bar, NaN during it. ``out`` (C-contiguous float64, shape (n, 16)) avoids the one allocation.
    Raises ValueError naming the input and index of a non-finite value or a shape mismatch."""
    names = ("open", "high", "low", "close", "volume")
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (open_, high, low, close, volume)]
    n = arrays[0].shape[0] if arrays[0].ndim == 1 else -1
    if any(a.shape != (n,) for a in arrays):
        raise ValueError(f"open/high/low/close/volume must be 1-D of one length, got {[a.shape for a in arrays]}")
    for name, a in zip(names, arrays, strict=True):
        bad = _first_non_finite(a)
        if bad >= 0:
            raise ValueError(f"non-finite {name} at index {bad}: {a[bad]!r}")
    want = (n, len(EXT_COLUMNS))
    if out is None:
        out = np.empty(want)
    elif out.shape != want or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float64 of shape {want}, got {out.dtype} {out.shape}")
    ohlcv_ext_range(*arrays, 0, 0, n, out, 0)
    return out
