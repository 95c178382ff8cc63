"""Compiled steps of a state-vector build. None of them allocates: they write into buffers the
builder owns (see builder.py), so a build allocates only the array it returns."""

from __future__ import annotations

import numpy as np
from numba import njit

# ingest status codes
OK, NOT_ALIGNED, NOT_INCREASING, NON_POSITIVE, NEGATIVE_VOLUME, NAN_VALUE, INFINITE = range(7)


@njit(cache=True)
def check_order(ts_raw, per_hour):
    """(status, index): every timestamp hour-aligned and strictly increasing."""
    prev = np.iinfo(np.int64).min
    for i in range(ts_raw.shape[0]):
        t = ts_raw[i]
        if t % per_hour != 0:
            return NOT_ALIGNED, i
        if t <= prev:
            return NOT_INCREASING, i
        prev = t
    return OK, -1


@njit(cache=True)
def _mix(acc, x):
    z = acc + x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def digest(ts_raw, o, h, l, c, v, lo, hi, seed):  # noqa: E741
    """64-bit content hash of rows [lo, hi): six independent multiply-xorshift lanes (one per
    column, so the CPU overlaps them) over every value's bits, folded with splitmix64. Any changed
    bit (a corrected bar) changes the key; not meant to resist adversarial collisions."""
    k = np.uint64(0x9E3779B97F4A7C15)
    s31 = np.uint64(31)
    ov, hv, lv, cv, vv = o.view(np.uint64), h.view(np.uint64), l.view(np.uint64), c.view(np.uint64), v.view(np.uint64)
    a0 = np.uint64(seed)
    a1 = a0 + np.uint64(1)
    a2 = a0 + np.uint64(2)
    a3 = a0 + np.uint64(3)
    a4 = a0 + np.uint64(4)
    a5 = a0 + np.uint64(5)
    for i in range(lo, hi):
        a0 = (a0 ^ np.uint64(ts_raw[i])) * k
        a0 ^= a0 >> s31
        a1 = (a1 ^ ov[i]) * k
        a1 ^= a1 >> s31
        a2 = (a2 ^ hv[i]) * k
        a2 ^= a2 >> s31
        a3 = (a3 ^ lv[i]) * k
        a3 ^= a3 >> s31
        a4 = (a4 ^ cv[i]) * k
        a4 ^= a4 >> s31
        a5 = (a5 ^ vv[i]) * k
        a5 ^= a5 >> s31
    acc = _mix(np.uint64(seed), np.uint64(hi - lo))
    for lane in (a0, a1, a2, a3, a4, a5):
        acc = _mix(acc, lane)
    return acc


@njit(cache=True)
def ingest(ts_raw, per_hour, o, h, l, c, v, lo, hi, raise_on_nan, vals, ts_h):  # noqa: E741
    """Copy rows [lo, hi) into ``vals`` (5, cap) and ``ts_h`` (hours), checking them. A row with a
    NaN is skipped (it becomes a missing hour) unless ``raise_on_nan``. Returns
    (rows_copied, nan_rows, status, index, column)."""
    k = 0
    nan_rows = 0
    for i in range(lo, hi):
        row_nan = False
        for j, x in enumerate((o[i], h[i], l[i], c[i], v[i])):
            if np.isnan(x):
                if raise_on_nan:
                    return k, nan_rows, NAN_VALUE, i, j
                row_nan = True
            elif not np.isfinite(x):
                return k, nan_rows, INFINITE, i, j
        if row_nan:
            nan_rows += 1
            continue
        for j, x in enumerate((o[i], h[i], l[i], c[i])):
            if x <= 0.0:
                return k, nan_rows, NON_POSITIVE, i, j
        if v[i] < 0.0:
            return k, nan_rows, NEGATIVE_VOLUME, i, 4
        vals[0, k] = o[i]
        vals[1, k] = h[i]
        vals[2, k] = l[i]
        vals[3, k] = c[i]
        vals[4, k] = v[i]
        ts_h[k] = ts_raw[i] // per_hour
        k += 1
    return k, nan_rows, OK, -1, -1


@njit(cache=True)
def place_symbol(ts_h, vals, feat, first, count, grid_start, rows, col, width, fill_mode, limit, filled_col):
    """Write one symbol's raw OHLCV (5) and family values (``width - 5``) onto the hourly grid
    ``rows`` at column ``col``; hours without a bar, and NaN values, are filled by ``fill_mode``
    (0 forward from a value at most ``limit`` rows back that was itself observed, else 0;
    1 zero). Returns (missing_hours, filled_values)."""
    n = rows.shape[0]
    for g in range(n):
        for j in range(width):
            rows[g, col + j] = np.nan
        rows[g, filled_col] = 1.0
    for r in range(first, count):
        g = ts_h[r] - grid_start
        if g < 0 or g >= n:
            continue
        for j in range(5):
            rows[g, col + j] = vals[j, r]
        for j in range(width - 5):
            rows[g, col + 5 + j] = feat[r - first, j]
        rows[g, filled_col] = 0.0
    missing = 0
    for g in range(n):
        if rows[g, filled_col] == 1.0:
            missing += 1
    filled = 0
    for j in range(width):
        last_g = -limit - 1
        last_value = 0.0
        for g in range(n):
            x = rows[g, col + j]
            if np.isnan(x):
                filled += 1
                if fill_mode == 0 and g - last_g <= limit:
                    rows[g, col + j] = last_value
                else:
                    rows[g, col + j] = 0.0
            else:
                last_g = g
                last_value = x
    return missing, filled


@njit(cache=True)
def cross_asset(rows, grid_start, first_row, sym_cols, ref_index, off_ind, off_x, global_x, global_time, r1, r24):
    """Cross-asset values per symbol and the global cross-sectional and time columns, from the
    (already filled) 1h and 24h log returns on the grid, for rows >= first_row (the rows before
    only feed the 24h windows). ``r1``/``r24`` are (n_symbols,) scratch."""
    n = rows.shape[0]
    m = sym_cols.shape[0]
    ref_col = sym_cols[ref_index]
    filled = 0
    for g in range(first_row, n):
        hour = grid_start + g
        hod = hour % 24
        dow = ((hour // 24) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        rows[g, global_time] = np.sin(2 * np.pi * hod / 24.0)
        rows[g, global_time + 1] = np.cos(2 * np.pi * hod / 24.0)
        rows[g, global_time + 2] = np.sin(2 * np.pi * dow / 7.0)
        rows[g, global_time + 3] = np.cos(2 * np.pi * dow / 7.0)
        for s in range(m):
            r1[s] = rows[g, sym_cols[s] + off_ind]
            r24[s] = rows[g, sym_cols[s] + off_ind + 2]
        for s in range(m):
            col = sym_cols[s] + off_x
            if g >= 23:
                sx = sy = sxx = syy = sxy = 0.0
                for q in range(g - 23, g + 1):
                    x = rows[q, sym_cols[s] + off_ind]
                    y = rows[q, ref_col + off_ind]
                    sx += x
                    sy += y
                    sxx += x * x
                    syy += y * y
                    sxy += x * y
                cov = sxy - sx * sy / 24.0
                vx = sxx - sx * sx / 24.0
                vy = syy - sy * sy / 24.0
                rows[g, col] = cov / np.sqrt(vx * vy) if vx > 1e-300 and vy > 1e-300 else 0.0
                rows[g, col + 1] = cov / vy if vy > 1e-300 else 0.0
            else:
                rows[g, col] = 0.0
                rows[g, col + 1] = 0.0
                filled += 2
            rows[g, col + 2] = r24[s] - r24[ref_index]
            for which in range(2):
                values = r1 if which == 0 else r24
                if m == 1:
                    rows[g, col + 3 + which] = 0.5
                else:
                    below = 0.0
                    for q in range(m):
                        if q != s:
                            if values[q] < values[s]:
                                below += 1.0
                            elif values[q] == values[s]:
                                below += 0.5
                    rows[g, col + 3 + which] = below / (m - 1)
        for which in range(2):
            values = r1 if which == 0 else r24
            mean = 0.0
            for s in range(m):
                mean += values[s]
            mean /= m
            var = 0.0
            for s in range(m):
                var += (values[s] - mean) ** 2
            rows[g, global_x + which] = np.sqrt(var / m)
            if which == 0:
                rows[g, global_x + 2] = mean
    return filled


@njit(cache=True)
def normalise(rows, start, window, runs, price_ref, out, mean, scale, shift, zero_first):
    """The window rows start..start+window-1 of ``rows`` (raw rows) normalised into ``out``
    (window, 768). ``runs`` (n, 4) lists raw column ranges [a, b) written to output columns from
    d on, of one kind: 0 copy, 1 z-score over the window clipped to [-10, 10] (0 for a column
    constant over the window), 2 log(price / the reference close at the window's last row),
    3 log1p(volume) z-scored. Output columns no run covers are padding: 0 (``zero_first`` zeroes
    ``out`` first; otherwise the caller passes zeroed memory). ``mean``/``scale``/``shift`` are
    (raw width,) scratch; shifted sums keep the variance exact."""
    last = start + window - 1
    if zero_first:
        for r in range(window):
            for j in range(out.shape[1]):
                out[r, j] = 0.0
    for q in range(runs.shape[0]):
        a, b, kind = runs[q, 0], runs[q, 1], runs[q, 3]
        for j in range(a, b):
            mean[j] = 0.0
            scale[j] = 0.0
            x = rows[last, j]
            if kind == 3:
                shift[j] = np.log1p(x) if x > 0 else 0.0
            elif kind == 2:
                ref = rows[last, price_ref[j]]
                shift[j] = np.log(ref) if ref > 0 else np.nan
            else:
                shift[j] = x
    for r in range(start, last + 1):
        for q in range(runs.shape[0]):
            a, b, kind = runs[q, 0], runs[q, 1], runs[q, 3]
            if kind == 1:
                for j in range(a, b):
                    d = rows[r, j] - shift[j]
                    mean[j] += d
                    scale[j] += d * d
            elif kind == 3:
                for j in range(a, b):
                    x = rows[r, j]
                    d = (np.log1p(x) if x > 0 else 0.0) - shift[j]
                    mean[j] += d
                    scale[j] += d * d
    for q in range(runs.shape[0]):
        a, b, kind = runs[q, 0], runs[q, 1], runs[q, 3]
        if kind == 1 or kind == 3:
            for j in range(a, b):
                m = mean[j] / window
                var = scale[j] / window - m * m
                mean[j] = shift[j] + m
                std = np.sqrt(var) if var > 0 else 0.0
                scale[j] = 1.0 / std if std > 1e-12 * (abs(mean[j]) + 1e-12) else 0.0
    for r in range(window):
        row = start + r
        for q in range(runs.shape[0]):
            a, b, d, kind = runs[q, 0], runs[q, 1], runs[q, 2] - runs[q, 0], runs[q, 3]
            if kind == 0:
                for j in range(a, b):
                    out[r, j + d] = rows[row, j]
            elif kind == 1:
                for j in range(a, b):
                    out[r, j + d] = min(10.0, max(-10.0, (rows[row, j] - mean[j]) * scale[j]))
            elif kind == 2:
                for j in range(a, b):
                    x = rows[row, j]
                    out[r, j + d] = np.log(x) - shift[j] if x > 0 and not np.isnan(shift[j]) else 0.0
            else:
                for j in range(a, b):
                    x = rows[row, j]
                    x = np.log1p(x) if x > 0 else 0.0
                    out[r, j + d] = min(10.0, max(-10.0, (x - mean[j]) * scale[j]))
