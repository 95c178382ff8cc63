"""Technical indicator kernels (numba). Every value at index i uses only indices <= i; NaN marks
an unfilled window. Public functions validate arguments, then call the compiled kernels."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _log_return_kernel(close, periods):
    out = np.full(close.shape[0], np.nan)
    for i in range(periods, close.shape[0]):
        out[i] = np.log(close[i] / close[i - periods])
    return out


@njit(cache=True)
def _ema_kernel(values, span):
    n = values.shape[0]
    out = np.full(n, np.nan)
    alpha = 2.0 / (span + 1.0)
    seen = 0
    total = 0.0
    current = np.nan
    for i in range(n):
        v = values[i]
        if np.isnan(v):
            if seen >= span:
                out[i] = current
            continue
        if seen < span:
            total += v
            seen += 1
            if seen == span:
                current = total / span
                out[i] = current
        else:
            current = alpha * v + (1.0 - alpha) * current
            out[i] = current
    return out


@njit(cache=True)
def _wilder_rsi_kernel(close, period):
    n = close.shape[0]
    out = np.full(n, np.nan)
    if n <= period:
        return out
    gain_sum = 0.0
    loss_sum = 0.0
    for i in range(1, period + 1):
        change = close[i] - close[i - 1]
        if change > 0:
            gain_sum += change
        else:
            loss_sum -= change
    avg_gain = gain_sum / period
    avg_loss = loss_sum / period
    out[period] = _rsi_value(avg_gain, avg_loss)
    for i in range(period + 1, n):
        change = close[i] - close[i - 1]
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        avg_gain = (avg_gain * (period - 1) + gain) / period
        avg_loss = (avg_loss * (period - 1) + loss) / period
        out[i] = _rsi_value(avg_gain, avg_loss)
    return out


@njit(cache=True)
def _rsi_value(avg_gain, avg_loss):
    if avg_loss == 0.0:
        return 100.0 if avg_gain > 0.0 else 50.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


@njit(cache=True)
def _wilder_atr_kernel(high, low, close, period):
    n = high.shape[0]
    out = np.full(n, np.nan)
    if n < period:
        return out
    total = 0.0
    atr = 0.0
    for i in range(n):
        if i == 0:
            tr = high[0] - low[0]
        else:
            tr = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        if i < period:
            total += tr
            if i == period - 1:
                atr = total / period
                out[i] = atr
        else:
            atr = (atr * (period - 1) + tr) / period
            out[i] = atr
    return out


@njit(cache=True)
def _rolling_mean_kernel(values, window):
    n = values.shape[0]
    out = np.full(n, np.nan)
    for i in range(window - 1, n):
        total = 0.0
        for j in range(i - window + 1, i + 1):
            total += values[j]
        out[i] = total / window
    return out


@njit(cache=True)
def _rolling_std_kernel(values, window, ddof):
    # Two-pass per window: O(n * window) but exact and stable; windows here are <= 24.
    n = values.shape[0]
    out = np.full(n, np.nan)
    if window - ddof <= 0:
        return out
    for i in range(window - 1, n):
        total = 0.0
        for j in range(i - window + 1, i + 1):
            total += values[j]
        mean = total / window
        squares = 0.0
        for j in range(i - window + 1, i + 1):
            d = values[j] - mean
            squares += d * d
        out[i] = np.sqrt(squares / (window - ddof))
    return out


@njit(cache=True)
def _bollinger_pctb_kernel(close, window, num_std):
    mean = _rolling_mean_kernel(close, window)
    std = _rolling_std_kernel(close, window, 0)
    n = close.shape[0]
    out = np.full(n, np.nan)
    for i in range(n):
        if np.isnan(mean[i]):
            continue
        upper = mean[i] + num_std * std[i]
        lower = mean[i] - num_std * std[i]
        out[i] = 0.5 if upper == lower else (close[i] - lower) / (upper - lower)
    return out


def _as_array(values, name: str) -> np.ndarray:
    array = np.ascontiguousarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _positive(value: int, name: str) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def log_return(close, periods: int) -> np.ndarray:
    return _log_return_kernel(_as_array(close, "close"), _positive(periods, "periods"))


def ema(values, span: int) -> np.ndarray:
    return _ema_kernel(_as_array(values, "values"), _positive(span, "span"))


def wilder_rsi(close, period: int) -> np.ndarray:
    return _wilder_rsi_kernel(_as_array(close, "close"), _positive(period, "period"))


def wilder_atr(high, low, close, period: int) -> np.ndarray:
    high, low, close = _as_array(high, "high"), _as_array(low, "low"), _as_array(close, "close")
    if not high.shape == low.shape == close.shape:
        raise ValueError(f"high, low and close lengths differ: {high.shape[0]}, {low.shape[0]}, {close.shape[0]}")
    return _wilder_atr_kernel(high, low, close, _positive(period, "period"))


def rolling_mean(values, window: int) -> np.ndarray:
    return _rolling_mean_kernel(_as_array(values, "values"), _positive(window, "window"))


def rolling_std(values, window: int, ddof: int = 1) -> np.ndarray:
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
    return _rolling_std_kernel(_as_array(values, "values"), _positive(window, "window"), ddof)


def bollinger_pctb(close, window: int, num_std: float) -> np.ndarray:
    if not num_std > 0:
        raise ValueError(f"num_std must be > 0, got {num_std!r}")
    return _bollinger_pctb_kernel(_as_array(close, "close"), _positive(window, "window"), float(num_std))


# --- The OHLCV family in one pass ---------------------------------------------------------------
# Column order of ``ohlcv_family_range``'s output; features/ohlcv_features.py names them.
OHLCV_FAMILY_WIDTH = 11
RESUM_EVERY = 256


@njit(cache=True)
def _window_mean_std(values, start, stop, ddof):
    total = 0.0
    for j in range(start, stop):
        total += values[j]
    count = stop - start
    mean = total / count
    squares = 0.0
    for j in range(start, stop):
        d = values[j] - mean
        squares += d * d
    return mean, np.sqrt(squares / (count - ddof))


@njit(cache=True)
def ohlcv_family_range(open_, high, low, close, volume, lo, first, hi, out, row0):
    """The OHLCV family's 11 columns for bars [first, hi), computed from the bars [lo, hi) only:
    recursive indicators (EMA 12/26, MACD signal 9, Wilder RSI 14 and ATR 14) are seeded at ``lo``,
    windows never reach before ``lo``. Row i is written to out[row0 + i - first]. Recursive
    indicators use the single-indicator kernels' arithmetic exactly; windowed statistics use
    sliding sums (equal to the two-pass kernels to ~1e-12 relative). Allocates nothing but a
    24-value ring."""
    span_fast, span_slow, span_signal, period = 12, 26, 9, 14
    a_fast = 2.0 / (span_fast + 1.0)
    a_slow = 2.0 / (span_slow + 1.0)
    a_signal = 2.0 / (span_signal + 1.0)
    fast = slow = signal = np.nan
    fast_total = slow_total = signal_total = 0.0
    signal_seen = 0
    gain_sum = loss_sum = avg_gain = avg_loss = 0.0
    tr_total = atr = 0.0
    returns = np.zeros(24)  # ring of the last 24 one-hour log returns (the one temporary)
    c_shift = c_s1 = c_s2 = v_shift = v_s1 = v_s2 = r_s1 = r_s2 = 0.0
    for i in range(lo, hi):
        k = i - lo
        c = close[i]
        last_out_return = returns[k % 24] if k >= 25 else 0.0
        if k >= 1:
            returns[k % 24] = np.log(c / close[i - 1])
        # EMA 12 / 26, SMA-seeded
        if k < span_fast:
            fast_total += c
            if k == span_fast - 1:
                fast = fast_total / span_fast
        else:
            fast = a_fast * c + (1.0 - a_fast) * fast
        if k < span_slow:
            slow_total += c
            if k == span_slow - 1:
                slow = slow_total / span_slow
        else:
            slow = a_slow * c + (1.0 - a_slow) * slow
        macd = fast - slow
        macd_hist = np.nan
        if k >= span_slow - 1:
            if signal_seen < span_signal:
                signal_total += macd
                signal_seen += 1
                if signal_seen == span_signal:
                    signal = signal_total / span_signal
                    macd_hist = macd - signal
            else:
                signal = a_signal * macd + (1.0 - a_signal) * signal
                macd_hist = macd - signal
        # Wilder RSI 14
        rsi = np.nan
        if k >= 1:
            change = c - close[i - 1]
            if k <= period:
                if change > 0:
                    gain_sum += change
                else:
                    loss_sum -= change
                if k == period:
                    avg_gain = gain_sum / period
                    avg_loss = loss_sum / period
                    rsi = _rsi_value(avg_gain, avg_loss)
            else:
                gain = change if change > 0 else 0.0
                loss = -change if change < 0 else 0.0
                avg_gain = (avg_gain * (period - 1) + gain) / period
                avg_loss = (avg_loss * (period - 1) + loss) / period
                rsi = _rsi_value(avg_gain, avg_loss)
        # Wilder ATR 14
        if k == 0:
            tr = high[i] - low[i]
        else:
            tr = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        atr_value = np.nan
        if k < period:
            tr_total += tr
            if k == period - 1:
                atr = tr_total / period
                atr_value = atr
        else:
            atr = (atr * (period - 1) + tr) / period
            atr_value = atr
        # Windowed statistics from sliding shifted sums, re-summed exactly at the first full window
        # and every RESUM_EVERY rows after it (counted from lo, maintained through the warm-up rows
        # too, so values depend only on lo): rounding cannot accumulate, O(1) per bar.
        if k >= 19:
            if k == 19 or (k - 19) % RESUM_EVERY == 0:
                c_shift = close[i]
                c_s1 = c_s2 = 0.0
                for j in range(i - 19, i + 1):
                    d = close[j] - c_shift
                    c_s1 += d
                    c_s2 += d * d
            else:
                d_in, d_out = c - c_shift, close[i - 20] - c_shift
                c_s1 += d_in - d_out
                c_s2 += d_in * d_in - d_out * d_out
            m = c_s1 / 20.0
            var = c_s2 / 20.0 - m * m
            std = np.sqrt(var) if var > 1e-24 * (c * c) else 0.0
            mean = c_shift + m
            upper = mean + 2.0 * std
            lower = mean - 2.0 * std
            pctb = 0.5 if upper == lower else (c - lower) / (upper - lower)
        else:
            pctb = np.nan
        if k >= 24:
            # sample std of the 24 one-hour log returns ending at i (ring buffer)
            if k == 24 or (k - 24) % RESUM_EVERY == 0:
                r_s1 = r_s2 = 0.0
                for j in range(k - 23, k + 1):
                    r = returns[j % 24]
                    r_s1 += r
                    r_s2 += r * r
            else:
                r_in, r_out = returns[k % 24], last_out_return
                r_s1 += r_in - r_out
                r_s2 += r_in * r_in - r_out * r_out
            var = (r_s2 - r_s1 * r_s1 / 24.0) / 23.0
            rv = np.sqrt(var) if var > 0 else 0.0
        else:
            rv = np.nan
        if k >= 23:
            if k == 23 or (k - 23) % RESUM_EVERY == 0:
                v_shift = volume[i]
                v_s1 = v_s2 = 0.0
                for j in range(i - 23, i + 1):
                    d = volume[j] - v_shift
                    v_s1 += d
                    v_s2 += d * d
            else:
                d_in, d_out = volume[i] - v_shift, volume[i - 24] - v_shift
                v_s1 += d_in - d_out
                v_s2 += d_in * d_in - d_out * d_out
            m = v_s1 / 24.0
            var = (v_s2 - 24.0 * m * m) / 23.0
            scale = abs(v_shift + m)
            std = np.sqrt(var) if var > 1e-24 * (scale * scale + 1e-300) else 0.0
            vz = (volume[i] - (v_shift + m)) / std if std > 0 else 0.0
        else:
            vz = np.nan
        if i < first:
            continue
        row = row0 + i - first
        out[row, 0] = returns[k % 24] if k >= 1 else np.nan
        out[row, 1] = np.log(c / close[i - 4]) if k >= 4 else np.nan
        out[row, 2] = np.log(c / close[i - 24]) if k >= 24 else np.nan
        out[row, 3] = rsi
        out[row, 4] = fast / slow - 1.0
        out[row, 5] = macd_hist / c
        out[row, 6] = pctb
        out[row, 7] = atr_value / c
        out[row, 8] = rv
        out[row, 9] = vz
        out[row, 10] = (high[i] - low[i]) / c


@njit(cache=True)
def ohlcv_range_at(rows, lo, first, hi, out, row0, col0):
    """``ohlcv_family_range`` on (open, high, low, close, volume) stacked as ``rows`` (5, n), into
    ``out`` from column ``col0``. Every caller (the feature tables, the families, the state
    vector) goes through this one compiled form, so their values agree to the last bit."""
    ohlcv_family_range(rows[0], rows[1], rows[2], rows[3], rows[4], lo, first, hi, out[:, col0:], row0)
