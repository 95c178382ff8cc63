"""Causal chart-pattern detection on one symbol's hourly bars (numba, no database).

Causality
---------
A pivot high at bar j is a bar whose ``high`` is the maximum of ``high[j-w .. j+w]`` (strictly
greater than the w bars before it, >= the w bars after it; w = ``pivot_window``); a pivot low
mirrors this on ``low``. Its status depends on bar j+w, so the pivot is only CONFIRMED at bar
j+w. Confirmed pivots feed a zigzag (alternating highs and lows: a confirmed pivot of the same
kind as the last zigzag point replaces it when more extreme, else it is dropped). A detection
reported at bar t uses only the zigzag as it stands at t (pivots with index <= t - w), the
closes up to t, and ATR(``atr_period``, Wilder) at the formation's pivots. So every output row
with ``ts <= T`` is unchanged by anything that happens after T.

A detection is reported at the first bar t >= (last pivot of the formation) + w at which the
close is beyond the pattern's breakout line, at most ``breakout_max_bars`` after that pivot and
with ``ts[t] - ts[first pivot] <= max_pattern_hours``; each formation (first and last pivot) is
reported once per pattern, and at most one row per (bar, pattern) (the best score). Formations
end at the last or the one-but-last zigzag point.

Geometric rules (every tolerance is a field of ``PatternParams``)
-----------------------------------------------------------------
Heights are measured in price, tolerances as fractions of the pattern's own height (or width),
and the minimum size in ATRs, so rules do not depend on price level. "Line" means the straight
line through two pivots, extended in bar-index time. Mirrored variants are the same rules on
negated prices.

head_and_shoulders
    Pivots H1 L1 H2 L2 H3 (shoulder, neckline low, head, neckline low, shoulder). Neckline =
    line(L1, L2); height = H2 - neckline at H2 >= ``min_height_atr`` * ATR. Head above the higher
    shoulder by >= ``hs_head_margin`` * height; each shoulder above the neckline by >=
    ``hs_shoulder_min`` * height; |H1 - H3| <= ``hs_shoulder_tol`` * height; |L1 - L2| <=
    ``hs_neck_tol`` * height; the two halves' durations differ by at most a factor
    ``hs_time_ratio``. Breakout: close below the neckline -> direction -1, target = neckline(t) -
    height. The inverse form (mirrored) gives direction +1, target neckline(t) + height.
double_top
    Pivots L0 H1 L H2 with L0 < L (an advance into the top). Height = mean(H1, H2) - L >=
    ``min_height_atr`` * ATR; |H1 - H2| <= ``dt_peak_tol`` * height; H2 - H1 >= ``dt_min_separation``
    bars. Breakout: close below L -> direction -1, target = L - height.
double_bottom
    double_top mirrored: close above the middle high -> direction +1, target = H + height.
triangle
    Five alternating zigzag points (three touches of one line, two of the other, either kind
    first). Each line runs through its first and last touch; the middle touch of the three-touch
    line lies within ``touch_tol`` * w0 of it. Width w0 (upper - lower) at the first point >=
    ``min_height_atr`` * ATR; width at the last point > 0 and <= ``tri_converge_max`` * w0
    (converging); over the formation the upper line rises by at most ``tri_flat_tol`` * w0 and the
    lower line falls by at most that (symmetric, ascending and descending triangles; two
    same-direction lines are a wedge); >= ``contain_min`` of the closes lie inside the lines +-
    ``contain_tol`` * w0. Breakout before the apex: close above the upper line -> +1, target
    upper(t) + w0; below the lower line -> -1, target lower(t) - w0.
wedge
    The same five points, touch, size and containment rules, with both lines rising by more than
    ``tri_flat_tol`` * w0 (rising wedge) and converging (end width <= ``wedge_converge_max`` * w0).
    Breakout: close below the lower line -> -1, target lower(t) - w0. Falling wedge (mirrored):
    close above the upper line -> +1, target upper(t) + w0.
flag
    Pivots L0 H1 L1 H2 L2: the pole L0 -> H1 spans <= ``pole_max_bars`` bars and rises >=
    ``pole_min_atr`` * ATR; the flag H1 .. L2 lasts <= ``flag_max_bars`` bars, its lines
    line(H1, H2) and line(L1, L2) are parallel (|end width - start width| <= ``flag_parallel_tol``
    * start width), the upper line rises by at most ``tri_flat_tol`` * width (flat or against the
    pole), the flag is at most ``flag_max_width`` * pole wide, retraces at most
    ``flag_max_retrace`` * pole, and contains the closes as for triangles. Breakout: close above
    the upper line -> +1, target upper(t) + pole. Bear flag mirrored (-1, target lower(t) - pole).
pennant
    Pole and pivots as for the flag, but the lines converge (end width <= ``pennant_converge_max``
    * start width, > 0) with a falling upper and a rising lower line, start width <=
    ``pennant_max_width`` * pole; duration, retracement, containment, breakout and target as for
    the flag.

Outputs
-------
``detect_patterns``: one row per detection: ``ts`` (bar at which it became known), ``pattern``,
``score`` in [0, 1] (mean of per-rule fit scores, each 1 - deviation / tolerance, clipped),
``direction`` (+1 bullish / -1 bearish), ``target_price`` (measured move), ``expected_completion_hours``
(``completion_factor`` * hours from the first pivot to the detection bar, > 0), ``start_ts``
(first pivot of the formation; the pole base for flags and pennants).

``pattern_features``: per bar, ``<pattern>_score`` and ``<pattern>_direction`` of the most recent
detection still active (0 when none): a detection is active from its bar for
``expected_completion_hours`` hours, until the bar whose close reaches its target.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import numpy as np
import pandas as pd
from numba import njit

from pipeline_assets.contracts.frames import require_utc_frame
from pipeline_assets.features import indicators as ind
from pipeline_assets.features.ohlcv_features import FeatureInputError

PATTERNS: tuple[str, ...] = (
    "head_and_shoulders",
    "double_top",
    "double_bottom",
    "triangle",
    "flag",
    "pennant",
    "wedge",
)
REQUIRED_COLUMNS = ("ts", "open", "high", "low", "close")
DETECTION_COLUMNS: tuple[str, ...] = (
    "ts",
    "pattern",
    "score",
    "direction",
    "target_price",
    "expected_completion_hours",
    "start_ts",
)
_HS, _DT, _DB, _TRI, _FLAG, _PEN, _WEDGE = range(len(PATTERNS))
_RING = 8  # formations remembered per pattern for report-once


@dataclass(frozen=True)
class PatternParams:
    """Tolerances of the geometric rules (see the module docstring). Order matters: the kernel
    reads them by position."""

    min_height_atr: float = 3.0
    atr_period: float = 14
    breakout_max_bars: float = 24
    completion_factor: float = 1.0
    hs_head_margin: float = 0.10
    hs_shoulder_min: float = 0.25
    hs_shoulder_tol: float = 0.25
    hs_neck_tol: float = 0.35
    hs_time_ratio: float = 2.5
    dt_peak_tol: float = 0.15
    dt_min_separation: float = 10
    tri_flat_tol: float = 0.15
    touch_tol: float = 0.10
    tri_converge_max: float = 0.7
    wedge_converge_max: float = 0.7
    contain_tol: float = 0.15
    contain_min: float = 0.9
    pole_max_bars: float = 20
    pole_min_atr: float = 5.0
    flag_max_bars: float = 40
    flag_max_retrace: float = 0.5
    flag_max_width: float = 0.5
    flag_parallel_tol: float = 0.3
    pennant_converge_max: float = 0.7
    pennant_max_width: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"PatternParams.{f.name} must be finite and > 0, got {value!r}")
        if self.hs_time_ratio <= 1:
            raise ValueError(f"PatternParams.hs_time_ratio must be > 1, got {self.hs_time_ratio!r}")
        if self.contain_min > 1:
            raise ValueError(f"PatternParams.contain_min must be <= 1, got {self.contain_min!r}")
        if int(self.atr_period) != self.atr_period:
            raise ValueError(f"PatternParams.atr_period must be an integer, got {self.atr_period!r}")


(
    _P_MIN_HEIGHT,
    _P_ATR_PERIOD,
    _P_BREAKOUT_MAX,
    _P_COMPLETION,
    _P_HS_MARGIN,
    _P_HS_SHOULDER_MIN,
    _P_HS_SHOULDER_TOL,
    _P_HS_NECK_TOL,
    _P_HS_TIME_RATIO,
    _P_DT_PEAK_TOL,
    _P_DT_MIN_SEP,
    _P_FLAT_TOL,
    _P_TOUCH_TOL,
    _P_TRI_CONVERGE,
    _P_WEDGE_CONVERGE,
    _P_CONTAIN_TOL,
    _P_CONTAIN_MIN,
    _P_POLE_MAX_BARS,
    _P_POLE_MIN_ATR,
    _P_FLAG_MAX_BARS,
    _P_FLAG_RETRACE,
    _P_FLAG_WIDTH,
    _P_FLAG_PARALLEL,
    _P_PEN_CONVERGE,
    _P_PEN_WIDTH,
) = range(len(fields(PatternParams)))


def pattern_columns() -> tuple[str, ...]:
    """Columns of ``pattern_features`` after ``ts``: ``<pattern>_score``, ``<pattern>_direction``."""
    return tuple(f"{p}_{kind}" for p in PATTERNS for kind in ("score", "direction"))


# --- kernels ------------------------------------------------------------------------------------


@njit(cache=True)
def _line(j1, p1, j2, p2, x):
    return p1 + (p2 - p1) * (x - j1) / (j2 - j1)


@njit(cache=True)
def _unit(deviation, tolerance):
    """1 at no deviation, 0 at the tolerance."""
    v = 1.0 - deviation / tolerance
    return min(1.0, max(0.0, v))


@njit(cache=True)
def _fail():
    return False, 0.0, 0, 0.0, -1


@njit(cache=True)
def _zz_push(zi, zp, zt, m, j, price, kind):
    if m > 0 and zt[m - 1] == kind:
        if (kind == 1 and price > zp[m - 1]) or (kind == -1 and price < zp[m - 1]):
            zi[m - 1] = j
            zp[m - 1] = price
        return m
    zi[m] = j
    zp[m] = price
    zt[m] = kind
    return m + 1


@njit(cache=True)
def _containment(close, s, ja, jb, uj1, up1, uj2, up2, lj1, lp1, lj2, lp2, tol):
    inside = 0
    for i in range(ja, jb + 1):
        c = s * close[i]
        if _line(lj1, lp1, lj2, lp2, i) - tol <= c <= _line(uj1, up1, uj2, up2, i) + tol:
            inside += 1
    return inside / (jb - ja + 1)


@njit(cache=True)
def _head_shoulders(zi, zp, zt, end, s, close, atr, t, prm):
    if end < 4 or s * zt[end - 4] != 1:
        return _fail()
    k = end - 4
    j1, j2, j3, j4, j5 = zi[k], zi[k + 1], zi[k + 2], zi[k + 3], zi[k + 4]
    ls, n1, hd, n2, rs = s * zp[k], s * zp[k + 1], s * zp[k + 2], s * zp[k + 3], s * zp[k + 4]
    a = atr[j5]
    if np.isnan(a):
        return _fail()
    height = hd - _line(j2, n1, j4, n2, j3)
    if height < prm[_P_MIN_HEIGHT] * a:
        return _fail()
    margin = hd - max(ls, rs)
    if margin < prm[_P_HS_MARGIN] * height:
        return _fail()
    if min(ls - _line(j2, n1, j4, n2, j1), rs - _line(j2, n1, j4, n2, j5)) < prm[_P_HS_SHOULDER_MIN] * height:
        return _fail()
    sym = abs(ls - rs) / height
    if sym > prm[_P_HS_SHOULDER_TOL]:
        return _fail()
    neck = abs(n1 - n2) / height
    if neck > prm[_P_HS_NECK_TOL]:
        return _fail()
    ratio = max(j3 - j1, j5 - j3) / min(j3 - j1, j5 - j3)
    if ratio > prm[_P_HS_TIME_RATIO]:
        return _fail()
    neck_t = _line(j2, n1, j4, n2, t)
    if s * close[t] >= neck_t:
        return _fail()
    score = (
        _unit(sym, prm[_P_HS_SHOULDER_TOL])
        + _unit(neck, prm[_P_HS_NECK_TOL])
        + _unit(np.log(ratio), np.log(prm[_P_HS_TIME_RATIO]))
        + min(1.0, margin / height / 0.5)
    ) / 4.0
    return True, score, -s, s * (neck_t - height), j1


@njit(cache=True)
def _double_top(zi, zp, zt, end, s, close, atr, t, prm):
    if end < 3 or s * zt[end - 2] != 1:
        return _fail()
    k = end - 2
    j1, j2 = zi[k], zi[k + 2]
    before, h1, mid, h2 = s * zp[k - 1], s * zp[k], s * zp[k + 1], s * zp[k + 2]
    if before >= mid or j2 - j1 < prm[_P_DT_MIN_SEP]:
        return _fail()
    a = atr[j2]
    if np.isnan(a):
        return _fail()
    height = 0.5 * (h1 + h2) - mid
    if height < prm[_P_MIN_HEIGHT] * a:
        return _fail()
    equal = abs(h1 - h2) / height
    if equal > prm[_P_DT_PEAK_TOL]:
        return _fail()
    if s * close[t] >= mid:
        return _fail()
    score = 0.5 * (_unit(equal, prm[_P_DT_PEAK_TOL]) + min(1.0, height / (2.0 * prm[_P_MIN_HEIGHT] * a)))
    return True, score, -s, s * (mid - height), j1


@njit(cache=True)
def _four_lines(zi, zp, zt, k, s):
    """Upper line through the two highs, lower through the two lows of zigzag points k..k+3
    (in the sign-s price space)."""
    if s * zt[k] == 1:
        h, lo = k, k + 1
    else:
        h, lo = k + 1, k
    return (
        zi[h], s * zp[h], zi[h + 2], s * zp[h + 2],
        zi[lo], s * zp[lo], zi[lo + 2], s * zp[lo + 2],
    )  # fmt: skip


@njit(cache=True)
def _five_lines(zi, zp, zt, k, s):
    """Lines of zigzag points k..k+4 (sign-s space): the kind of point k has three touches, its
    line runs through the outer two; the other kind's line through its two. Also returns the
    middle touch's distance from its line (positive = beyond it, outside the formation)."""
    a1, a2, a3 = zi[k], zi[k + 2], zi[k + 4]
    b1, b2 = zi[k + 1], zi[k + 3]
    pa1, pa2, pa3 = s * zp[k], s * zp[k + 2], s * zp[k + 4]
    pb1, pb2 = s * zp[k + 1], s * zp[k + 3]
    beyond = pa2 - _line(a1, pa1, a3, pa3, a2)
    if s * zt[k] == 1:
        return a1, pa1, a3, pa3, b1, pb1, b2, pb2, beyond
    return b1, pb1, b2, pb2, a1, pa1, a3, pa3, -beyond


@njit(cache=True)
def _triangle_like(zi, zp, zt, end, s, close, atr, t, prm, wedge):
    if end < 4:
        return _fail()
    k = end - 4
    uj1, up1, uj2, up2, lj1, lp1, lj2, lp2, beyond = _five_lines(zi, zp, zt, k, s)
    j0, jn = zi[k], zi[end]
    a = atr[jn]
    if np.isnan(a):
        return _fail()
    w0 = _line(uj1, up1, uj2, up2, j0) - _line(lj1, lp1, lj2, lp2, j0)
    wn = _line(uj1, up1, uj2, up2, jn) - _line(lj1, lp1, lj2, lp2, jn)
    if wn <= 0.0 or w0 < prm[_P_MIN_HEIGHT] * a:
        return _fail()
    touch = abs(beyond) / w0
    if touch > prm[_P_TOUCH_TOL]:
        return _fail()
    ratio = wn / w0
    span = jn - j0
    up_rise = (up2 - up1) / (uj2 - uj1) * span
    lo_rise = (lp2 - lp1) / (lj2 - lj1) * span
    flat = prm[_P_FLAT_TOL] * w0
    if wedge:
        if ratio > prm[_P_WEDGE_CONVERGE] or up_rise <= flat or lo_rise <= flat:
            return _fail()
    elif ratio > prm[_P_TRI_CONVERGE] or up_rise > flat or lo_rise < -flat:
        return _fail()
    upper_t = _line(uj1, up1, uj2, up2, t)
    lower_t = _line(lj1, lp1, lj2, lp2, t)
    if upper_t <= lower_t:  # past the apex
        return _fail()
    c = s * close[t]
    if c > upper_t and not wedge:
        direction, target = 1, upper_t + w0
    elif c < lower_t:
        direction, target = -1, lower_t - w0
    else:
        return _fail()
    inside = _containment(close, s, j0, jn, uj1, up1, uj2, up2, lj1, lp1, lj2, lp2, prm[_P_CONTAIN_TOL] * w0)
    if inside < prm[_P_CONTAIN_MIN]:
        return _fail()
    fit = 1.0 if prm[_P_CONTAIN_MIN] >= 1.0 else (inside - prm[_P_CONTAIN_MIN]) / (1.0 - prm[_P_CONTAIN_MIN])
    score = (min(1.0, max(0.0, 1.0 - ratio)) + _unit(touch, prm[_P_TOUCH_TOL]) + min(1.0, max(0.0, fit))) / 3.0
    return True, score, s * direction, s * target, j0


@njit(cache=True)
def _flag_like(zi, zp, zt, end, s, close, atr, t, prm, pennant):
    if end < 4 or s * zt[end - 4] != -1:
        return _fail()
    k = end - 4
    jb, jt, jn = zi[k], zi[k + 1], zi[end]
    base, top = s * zp[k], s * zp[k + 1]
    pole = top - base
    a = atr[jt]
    if np.isnan(a) or jt - jb > prm[_P_POLE_MAX_BARS] or pole < prm[_P_POLE_MIN_ATR] * a:
        return _fail()
    if jn - jt > prm[_P_FLAG_MAX_BARS]:
        return _fail()
    uj1, up1, uj2, up2, lj1, lp1, lj2, lp2 = _four_lines(zi, zp, zt, k + 1, s)
    w0 = _line(uj1, up1, uj2, up2, jt) - _line(lj1, lp1, lj2, lp2, jt)
    wn = _line(uj1, up1, uj2, up2, jn) - _line(lj1, lp1, lj2, lp2, jn)
    if w0 <= 0.0 or wn <= 0.0:
        return _fail()
    retrace = (top - min(lp1, lp2)) / pole
    if retrace > prm[_P_FLAG_RETRACE]:
        return _fail()
    up_slope = (up2 - up1) / (uj2 - uj1)
    lo_slope = (lp2 - lp1) / (lj2 - lj1)
    if pennant:
        shape = wn / w0
        if shape > prm[_P_PEN_CONVERGE] or up_slope >= 0.0 or lo_slope <= 0.0 or w0 > prm[_P_PEN_WIDTH] * pole:
            return _fail()
        shape_score = min(1.0, (1.0 - shape) / 0.75)
    else:
        shape = abs(wn - w0) / w0
        if shape > prm[_P_FLAG_PARALLEL] or max(w0, wn) > prm[_P_FLAG_WIDTH] * pole:
            return _fail()
        if up_slope * (jn - jt) > prm[_P_FLAT_TOL] * w0:
            return _fail()
        shape_score = _unit(shape, prm[_P_FLAG_PARALLEL])
    upper_t = _line(uj1, up1, uj2, up2, t)
    if s * close[t] <= upper_t or upper_t <= _line(lj1, lp1, lj2, lp2, t):
        return _fail()
    inside = _containment(close, s, jt, jn, uj1, up1, uj2, up2, lj1, lp1, lj2, lp2, prm[_P_CONTAIN_TOL] * w0)
    if inside < prm[_P_CONTAIN_MIN]:
        return _fail()
    fit = 1.0 if prm[_P_CONTAIN_MIN] >= 1.0 else (inside - prm[_P_CONTAIN_MIN]) / (1.0 - prm[_P_CONTAIN_MIN])
    score = (shape_score + _unit(retrace, prm[_P_FLAG_RETRACE]) + min(1.0, max(0.0, fit))) / 3.0
    return True, score, s, s * (upper_t + pole), jb


@njit(cache=True)
def _evaluate(pattern, zi, zp, zt, end, s, close, atr, t, prm):
    if pattern == _HS:
        return _head_shoulders(zi, zp, zt, end, s, close, atr, t, prm)
    if pattern in (_DT, _DB):
        return _double_top(zi, zp, zt, end, s, close, atr, t, prm)
    if pattern == _TRI:
        return _triangle_like(zi, zp, zt, end, s, close, atr, t, prm, False)
    if pattern == _WEDGE:
        return _triangle_like(zi, zp, zt, end, s, close, atr, t, prm, True)
    return _flag_like(zi, zp, zt, end, s, close, atr, t, prm, pattern == _PEN)


@njit(cache=True)
def _is_pivot(values, j, w, sign):
    v = sign * values[j]
    for k in range(j - w, j):
        if sign * values[k] >= v:
            return False
    for k in range(j + 1, j + w + 1):  # noqa: SIM110 (numba: no all() over a generator)
        if sign * values[k] > v:
            return False
    return True


@njit(cache=True)
def _detect_kernel(high, low, close, hours, atr, w, max_hours, prm, n_patterns):
    n = close.shape[0]
    zi = np.empty(n, np.int64)
    zp = np.empty(n)
    zt = np.empty(n, np.int64)
    m = 0
    cap = 16
    out_t = np.empty(cap, np.int64)
    out_p = np.empty(cap, np.int64)
    out_score = np.empty(cap)
    out_dir = np.empty(cap, np.int64)
    out_target = np.empty(cap)
    out_start = np.empty(cap, np.int64)
    count = 0
    fired = np.full((n_patterns, _RING, 2), -1, np.int64)
    fired_next = np.zeros(n_patterns, np.int64)
    breakout_max = prm[_P_BREAKOUT_MAX]
    for t in range(n):
        j = t - w
        if j - w >= 0:
            is_high = _is_pivot(high, j, w, 1.0)
            is_low = _is_pivot(low, j, w, -1.0)
            if is_high and is_low:  # an outside bar: keep the kind that continues the zigzag
                if m > 0 and zt[m - 1] == 1:
                    is_high = False
                elif m > 0:
                    is_low = False
                else:
                    is_high = is_low = False
            if is_high:
                m = _zz_push(zi, zp, zt, m, j, high[j], 1)
            if is_low:
                m = _zz_push(zi, zp, zt, m, j, low[j], -1)
        if m < 4:
            continue
        for pattern in range(n_patterns):
            best = -1.0
            best_dir = 0
            best_target = 0.0
            best_start = -1
            for e in range(2):
                end = m - 1 - e
                if t - zi[end] > breakout_max:
                    continue
                for s in (1, -1):
                    if pattern in (_DT, _TRI) and s == -1:
                        continue
                    if pattern == _DB and s == 1:
                        continue
                    ok, score, direction, target, start = _evaluate(pattern, zi, zp, zt, end, s, close, atr, t, prm)
                    if not ok or hours[t] - hours[start] > max_hours:
                        continue
                    seen = False
                    for r in range(_RING):
                        if fired[pattern, r, 0] == start and fired[pattern, r, 1] == zi[end]:
                            seen = True
                    if seen:
                        continue
                    slot = fired_next[pattern] % _RING
                    fired[pattern, slot, 0] = start
                    fired[pattern, slot, 1] = zi[end]
                    fired_next[pattern] += 1
                    if score > best:
                        best, best_dir, best_target, best_start = score, direction, target, start
            if best_start < 0:
                continue
            if count == cap:
                cap *= 2
                out_t = _grow_int(out_t, cap)
                out_p = _grow_int(out_p, cap)
                out_dir = _grow_int(out_dir, cap)
                out_start = _grow_int(out_start, cap)
                out_score = _grow_float(out_score, cap)
                out_target = _grow_float(out_target, cap)
            out_t[count] = t
            out_p[count] = pattern
            out_score[count] = best
            out_dir[count] = best_dir
            out_target[count] = best_target
            out_start[count] = best_start
            count += 1
    return (
        out_t[:count].copy(), out_p[:count].copy(), out_score[:count].copy(),
        out_dir[:count].copy(), out_target[:count].copy(), out_start[:count].copy(),
    )  # fmt: skip


@njit(cache=True)
def _grow_int(a, cap):
    b = np.empty(cap, np.int64)
    b[: a.shape[0]] = a
    return b


@njit(cache=True)
def _grow_float(a, cap):
    b = np.empty(cap)
    b[: a.shape[0]] = a
    return b


# --- DataFrame entry points ---------------------------------------------------------------------


def _validate(bars: pd.DataFrame) -> None:
    require_utc_frame(bars, REQUIRED_COLUMNS, FeatureInputError, context="bars")
    ts = bars["ts"]
    not_increasing = ts.diff().iloc[1:] <= pd.Timedelta(0)
    if not_increasing.any():
        raise FeatureInputError(f"ts not strictly increasing at {ts[not_increasing.index[not_increasing]].iloc[0]}")
    for column in REQUIRED_COLUMNS[1:]:
        bad = ~np.isfinite(bars[column].to_numpy(dtype=np.float64))
        if bad.any():
            raise FeatureInputError(f"NaN or infinite value in column {column!r} at {ts[bad].iloc[0]}")
    inverted = (bars["high"] < bars["low"]).to_numpy()
    if inverted.any():
        raise FeatureInputError(f"high below low in columns 'high'/'low' at {ts[inverted].iloc[0]}")


def _check_args(pivot_window: int, max_pattern_hours: float, params: PatternParams | None) -> PatternParams:
    if int(pivot_window) != pivot_window or pivot_window < 1:
        raise ValueError(f"pivot_window must be an integer >= 1, got {pivot_window!r}")
    if not max_pattern_hours > 0:
        raise ValueError(f"max_pattern_hours must be > 0, got {max_pattern_hours!r}")
    if params is None:
        return PatternParams()
    if not isinstance(params, PatternParams):
        raise ValueError(f"params must be a PatternParams, got {type(params).__name__}")
    return params


def _empty_detections() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.Series(dtype="datetime64[ns, UTC]"),
            "pattern": pd.Series(dtype="object"),
            "score": pd.Series(dtype="float64"),
            "direction": pd.Series(dtype="int64"),
            "target_price": pd.Series(dtype="float64"),
            "expected_completion_hours": pd.Series(dtype="float64"),
            "start_ts": pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )


def _run(bars: pd.DataFrame, pivot_window: int, max_pattern_hours: float, params: PatternParams | None):
    params = _check_args(pivot_window, max_pattern_hours, params)
    _validate(bars)
    high = bars["high"].to_numpy(dtype=np.float64)
    low = bars["low"].to_numpy(dtype=np.float64)
    close = bars["close"].to_numpy(dtype=np.float64)
    ts = bars["ts"]
    hours = np.empty(0) if len(bars) == 0 else ((ts - ts.iloc[0]) / pd.Timedelta(hours=1)).to_numpy(np.float64)
    atr = ind.wilder_atr(high, low, close, int(params.atr_period))
    prm = np.array(astuple(params), dtype=np.float64)
    raw = _detect_kernel(high, low, close, hours, atr, int(pivot_window), float(max_pattern_hours), prm, len(PATTERNS))
    return raw, close, hours, params


def _frame(bars: pd.DataFrame, raw, hours: np.ndarray, params: PatternParams) -> pd.DataFrame:
    t, pattern, score, direction, target, start = raw
    if t.shape[0] == 0:
        return _empty_detections()
    ts = bars["ts"].reset_index(drop=True)
    return pd.DataFrame(
        {
            "ts": ts.iloc[t].to_numpy(),
            "pattern": np.asarray(PATTERNS, dtype=object)[pattern],
            "score": score,
            "direction": direction,
            "target_price": target,
            "expected_completion_hours": params.completion_factor * (hours[t] - hours[start]),
            "start_ts": ts.iloc[start].to_numpy(),
        }
    ).assign(ts=lambda f: pd.to_datetime(f["ts"], utc=True), start_ts=lambda f: pd.to_datetime(f["start_ts"], utc=True))


def detect_patterns(
    bars: pd.DataFrame,
    pivot_window: int = 5,
    max_pattern_hours: int = 120,
    params: PatternParams | None = None,
) -> pd.DataFrame:
    """One row per detection (columns DETECTION_COLUMNS), in bar order then PATTERNS order.
    ``bars``: one symbol's bars with a tz-aware UTC, strictly increasing ``ts`` and finite
    open/high/low/close; raises FeatureInputError (a ValueError) naming column and time otherwise."""
    raw, _, hours, params = _run(bars, pivot_window, max_pattern_hours, params)
    return _frame(bars, raw, hours, params)


def pattern_features(
    bars: pd.DataFrame,
    pivot_window: int = 5,
    max_pattern_hours: int = 120,
    params: PatternParams | None = None,
) -> pd.DataFrame:
    """``ts`` plus ``pattern_columns()`` for every input bar: score and direction of the most
    recent active detection per pattern, 0 when none is active (see the module docstring)."""
    raw, close, hours, params = _run(bars, pivot_window, max_pattern_hours, params)
    t_idx, pattern, score, direction, target, start = raw
    n = close.shape[0]
    scores = np.zeros((len(PATTERNS), n))
    directions = np.zeros((len(PATTERNS), n), dtype=np.int64)
    for t, p, sc, d, tg, st in zip(t_idx, pattern, score, direction, target, start, strict=True):
        horizon = hours[t] + params.completion_factor * (hours[t] - hours[st])
        stop = int(np.searchsorted(hours, horizon, side="left"))
        later = close[t + 1 : stop]
        reached = later >= tg if d > 0 else later <= tg
        if reached.any():
            stop = t + 1 + int(np.argmax(reached))
        scores[p, t:stop] = sc
        directions[p, t:stop] = d
    columns: dict = {"ts": bars["ts"].to_numpy()}
    for k, name in enumerate(PATTERNS):
        columns[f"{name}_score"] = scores[k]
        columns[f"{name}_direction"] = directions[k]
    return pd.DataFrame(columns).assign(ts=lambda f: pd.to_datetime(f["ts"], utc=True))
