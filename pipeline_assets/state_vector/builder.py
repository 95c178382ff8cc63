"""StateVectorBuilder: the (window_hours, 768) float32 market state for one decision time.

A build has two steps, and everything else in the project uses the same two:
1. ``raw_rows``: un-normalised rows on the hourly grid that ends at the last closed hour. Per
   symbol: raw OHLCV, the OHLCV family and the multi-timeframe family (the feature tables' own
   kernels, day-anchored warm-up, so a row equals ``ml_features_ohlcv``'s row for the same bar),
   cross-asset values, the order book and the portfolio; plus the global time and cross-sectional
   columns. A raw row depends only on bars up to its own close, so it can be stored once
   (``ml_state_vectors``) and reused by every window that contains it.
2. ``normalise``: the window's rows rescaled from the window's own statistics (see layout.py).

Causality: with ``timestamp`` given, a bar is used only if its hour has closed by then
(bar open + 1h <= timestamp); later rows' values are never read. Without ``timestamp`` the grid
ends at the latest bar of any symbol.

Missing data: an hour without a bar (or, unless ``fill_method='raise'``, a bar with a NaN) is a
missing hour. 'forward' carries each column's last observed value for at most
FORWARD_FILL_LIMIT_HOURS hours, then 0; 'zero' writes 0; 'raise' raises ValueError naming
symbol, column and time. Warm-up values (too little history for an indicator) are 0 in every
mode. Every filled value is counted (``last_build``), and ``<SYMBOL>.data.filled`` is 1 on
missing hours.

Cache: keyed by a 64-bit content hash of every input value used (bars, book levels, portfolio)
and the decision hour; LRU bounded by ``cache_size``. A hit returns the *same* read-only array
as the miss that built it (no copy: ~0.5 MB per entry); copy it to modify it.
"""

from __future__ import annotations

import logging
import marshal
import math
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pandas as pd

from pipeline_assets.features.mtf import MTF_COLUMNS, MTF_LOOKBACK_HOURS, day_anchored
from pipeline_assets.features.ohlcv_features import FEATURE_COLUMNS
from pipeline_assets.features.ohlcv_features import LOOKBACK_HOURS as OHLCV_LOOKBACK_HOURS
from pipeline_assets.state_vector import kernels as k
from pipeline_assets.state_vector.config import StateVectorConfig
from pipeline_assets.state_vector.layout import (
    GLOBAL_COLUMNS,
    OFF_BOOK,
    OFF_FILLED,
    OFF_IND,
    OFF_WEIGHT,
    OFF_XASSET,
    SYMBOL_FEATURES,
    WIDTH,
    Layout,
    build_layout,
)

log = logging.getLogger(__name__)

FORWARD_FILL_LIMIT_HOURS = 24
# Grid rows computed before the window: 24 for the 24h cross-asset windows, 24 more so that the
# forward fill feeding them is itself complete; a raw row never depends on rows further back.
GRID_EXTENSION_HOURS = 48
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_FAMILY_WIDTH = len(FEATURE_COLUMNS) + len(MTF_COLUMNS)
_PER_HOUR = {"s": 3600, "ms": 3_600_000, "us": 3_600_000_000, "ns": 3_600_000_000_000}
_G = {name: i for i, name in enumerate(GLOBAL_COLUMNS)}


def _utc_label(hour: int) -> str:
    return pd.Timestamp(hour * 3600, unit="s", tz="UTC").isoformat()


def _raw_time(unit_value: int, per_hour: int) -> str:
    return pd.Timestamp(int(unit_value) * (3_600_000_000_000 // per_hour), unit="ns", tz="UTC").isoformat()


class _SymbolInput:
    __slots__ = ("symbol", "ts", "per_hour", "o", "h", "l", "c", "v", "lo", "hi")

    def __init__(self, symbol, ts, per_hour, o, h, l, c, v):  # noqa: E741
        self.symbol, self.ts, self.per_hour = symbol, ts, per_hour
        self.o, self.h, self.l, self.c, self.v = o, h, l, c, v
        self.lo = self.hi = 0


class _DatetimeColumn:
    """A datetime column taken from a DataFrame block: numpy datetime64 values and their tz."""

    __slots__ = ("raw", "tz")

    def __init__(self, raw, tz):
        self.raw, self.tz = raw, tz


def _timestamps(symbol: str, values) -> tuple[np.ndarray, int]:
    """int64 view of UTC timestamps and its units per hour; naive or non-datetime refused."""
    if isinstance(values, _DatetimeColumn):
        raw, tz = values.raw, values.tz
    else:
        if isinstance(values, pd.Series):
            values = values.array
        tz = getattr(getattr(values, "dtype", None), "tz", None)
        raw = values._ndarray if hasattr(values, "_ndarray") else np.asarray(values)
    if raw.dtype.kind != "M" or raw.ndim != 1:
        raise ValueError(f"{symbol}: column 'timestamp' must hold UTC datetimes, got dtype {raw.dtype}")
    if tz is None:
        raise ValueError(f"{symbol}: column 'timestamp' is timezone-naive; pass UTC timestamps (tz='UTC')")
    # any timezone names fixed instants: the int64 values are UTC already
    unit = np.datetime_data(raw.dtype)[0]
    if unit not in _PER_HOUR:
        raise ValueError(f"{symbol}: column 'timestamp' has unsupported resolution {unit!r}")
    return raw.view(np.int64), _PER_HOUR[unit]


_NAMES: OrderedDict = OrderedDict()


def _column_names(index: pd.Index) -> list:
    """``index.tolist()``, remembered per Index object (immutable; a strong reference is kept so
    its id cannot be reused while remembered): pandas' string Index is slow to list."""
    hit = _NAMES.get(id(index))
    if hit is not None and hit[0] is index:
        return hit[1]
    names = index.tolist()
    _NAMES[id(index)] = (index, names)
    if len(_NAMES) > 256:
        _NAMES.popitem(last=False)
    return names


def _frame_columns(symbol: str, frame) -> dict:
    """Column name -> 1-D array without copying. DataFrames are read through their blocks when
    the layout is the usual one (a public-API path gives the same arrays; tested)."""
    if isinstance(frame, pd.DataFrame):
        names = _column_names(frame.columns)
        try:
            out = {}
            for block in frame._mgr.blocks:
                values = block.values
                indexer = block.mgr_locs.indexer
                positions = (
                    range(indexer.start, indexer.stop, indexer.step or 1) if isinstance(indexer, slice) else indexer
                )
                for row, position in enumerate(positions):
                    name = names[position]
                    if name in out:
                        raise KeyError(name)
                    if isinstance(values, np.ndarray):
                        out[name] = values[row] if values.ndim == 2 else values
                    elif hasattr(values, "_ndarray") and getattr(values.dtype, "tz", None) is not None:
                        raw = values._ndarray
                        out[name] = _DatetimeColumn(raw[row] if raw.ndim == 2 else raw, values.dtype.tz)
                    else:
                        out[name] = frame.iloc[:, position]
            return out
        except (AttributeError, KeyError, TypeError):
            return {name: frame[name] for name in names}
    if isinstance(frame, Mapping):
        return dict(frame)
    raise ValueError(
        f"{symbol}: ohlcv_data values must be DataFrames or mappings of columns, got {type(frame).__name__}"
    )


def _float_column(symbol: str, name: str, values) -> np.ndarray:
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    array = np.asarray(values)
    if array.dtype != np.float64:
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{symbol}: column {name!r} is not numeric ({array.dtype})") from exc
    if array.ndim != 1:
        raise ValueError(f"{symbol}: column {name!r} must be one-dimensional, got shape {array.shape}")
    return array


_EXTRACTED: dict = {}


def _extract(symbol: str, frame) -> tuple:
    """(timestamps as int64, units per hour, open, high, low, close, volume) without copying.
    Remembered per DataFrame while the object, its block manager and its blocks are the same
    ones: values changed in place stay visible through the views (and change the content hash);
    any pandas operation that replaces a block gives a new manager or block tuple, hence a new
    extraction."""
    if isinstance(frame, pd.DataFrame):
        manager = frame._mgr
        hit = _EXTRACTED.get(id(frame))
        if hit is not None and hit[0]() is frame and hit[1] is manager and hit[2] is manager.blocks:
            return hit[3]
    columns = _frame_columns(symbol, frame)
    ts_values = columns.get("timestamp", columns.get("ts"))
    missing = [c for c in PRICE_COLUMNS if c not in columns]
    if ts_values is None:
        missing.append("timestamp")
    if missing:
        raise ValueError(f"{symbol}: missing columns {missing}")
    ts, per_hour = _timestamps(symbol, ts_values)
    values = tuple(_float_column(symbol, c, columns[c]) for c in PRICE_COLUMNS)
    if any(a.shape[0] != ts.shape[0] for a in values):
        raise ValueError(f"{symbol}: columns have different lengths")
    extracted = (ts, per_hour, *values)
    if isinstance(frame, pd.DataFrame) and all(v.base is not None or v.flags.owndata for v in values):
        if len(_EXTRACTED) > 256:
            _EXTRACTED.clear()
        _EXTRACTED[id(frame)] = (weakref.ref(frame), manager, manager.blocks, extracted)
    return extracted


class StateVectorBuilder:
    def __init__(self, config: StateVectorConfig | None = None):
        self.config = config or StateVectorConfig()
        self._layout: Layout = build_layout(self.config)
        self.build_time_ms: float = 0.0
        self.last_build: dict = {}
        self.cache_hits = 0
        self.cache_misses = 0
        self.slow_builds = 0
        self.builds = 0
        self._cache: OrderedDict = OrderedDict()
        n = len(self.config.symbols)
        self._sym_cols = np.asarray([self._layout.raw_symbol_offset(i) for i in range(n)], dtype=np.int64)
        self._ref_index = self.config.symbols.index(self.config.reference)
        self._r1 = np.empty(n)
        self._r24 = np.empty(n)
        self._vals: list[np.ndarray] = [np.empty((5, 0)) for _ in range(n)]
        self._ts_h: list[np.ndarray] = [np.empty(0, dtype=np.int64) for _ in range(n)]
        self._feat: list[np.ndarray] = [np.empty((0, _FAMILY_WIDTH)) for _ in range(n)]
        self._rows = np.zeros((0, self._layout.raw_width))
        self._info_by_id: dict = {}
        self._mean = np.empty(self._layout.raw_width)
        self._scale = np.empty(self._layout.raw_width)
        self._shift = np.empty(self._layout.raw_width)
        self._runs = self._layout.runs
        self._fill_mode = {"forward": 0, "zero": 1, "raise": 1}[self.config.fill_method]

    # -- public API ------------------------------------------------------------------------------
    def layout(self) -> list[str]:
        return list(self._layout.columns)

    @property
    def layout_id(self) -> str:
        return self._layout.layout_id

    @property
    def layout_spec(self) -> Layout:
        return self._layout

    @property
    def cache_hit_rate(self) -> float:
        total = self.cache_hits + self.cache_misses
        return self.cache_hits / total if total else 0.0

    def metrics(self) -> dict:
        return {
            "builds": self.builds,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "cache_hit_rate": self.cache_hit_rate,
            "cache_entries": len(self._cache),
            "slow_builds": self.slow_builds,
            "last_build_ms": self.build_time_ms,
        }

    def clear_cache(self) -> None:
        self._cache.clear()

    def build(
        self,
        ohlcv_data,
        orderbook_data=None,
        portfolio_state=None,
        timestamp: datetime | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """(window_hours, 768) float32, finite. ``out`` (C-contiguous float32 of that shape) is
        written instead of allocating; it bypasses the cache."""
        started = time.perf_counter()
        inputs, grid_end = self._inputs(ohlcv_data, timestamp)
        window = self.config.window_hours
        grid_start = grid_end - window + 1 - GRID_EXTENSION_HOURS
        earliest = (grid_start // 24) * 24 - max(MTF_LOOKBACK_HOURS, OHLCV_LOOKBACK_HOURS)
        for item in inputs:
            item.lo = int(item.ts.searchsorted(earliest * item.per_hour, side="left"))
        key = None
        if self.config.use_cache and out is None:
            key = self._cache_key(inputs, grid_end, orderbook_data, portfolio_state)
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                self._finish(started, hit=True, info=self.last_build_info_for(hit))
                return hit
            self.cache_misses += 1
        self._check_order(inputs)
        info = self._raw_rows(inputs, grid_start, window + GRID_EXTENSION_HOURS)
        rows = self._rows[: window + GRID_EXTENSION_HOURS]
        info.update(self._place_books(rows, grid_start, orderbook_data, timestamp))
        info.update(self._place_portfolio(rows, grid_start, grid_end, portfolio_state))
        zero_padding = out is not None
        if out is None:
            out = np.zeros((window, WIDTH), dtype=np.float32)
        elif out.shape != (window, WIDTH) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(
                f"out must be C-contiguous float32 of shape {(window, WIDTH)}, got {out.dtype} {out.shape}"
            )
        k.normalise(
            rows,
            GRID_EXTENSION_HOURS,
            window,
            self._runs,
            self._layout.raw_price_ref,
            out,
            self._mean,
            self._scale,
            self._shift,
            zero_padding,
        )
        info["end"] = _utc_label(grid_end)
        if key is not None:
            out.flags.writeable = False
            self._cache[key] = out
            self._info_by_id[id(out)] = info
            if len(self._cache) > self.config.cache_size:
                _, evicted = self._cache.popitem(last=False)
                self._info_by_id.pop(id(evicted), None)
        self._finish(started, hit=False, info=info)
        return out

    def last_build_info_for(self, array: np.ndarray) -> dict:
        return dict(self._info_by_id.get(id(array), {}))

    def raw_rows(self, ohlcv_data, start_hour: int, end_hour: int, orderbook_data=None) -> tuple[np.ndarray, dict]:
        """Un-normalised rows (float64, ``layout_spec.raw_columns``) for the hours
        [start_hour, end_hour] (hours since the epoch); ``orderbook_data`` maps symbol to a list of
        timestamped snapshots, each placed on the hour of the bar that closed last before it. No
        portfolio. A symbol without bars in the range is all missing hours (filled and flagged),
        not an error. Row values equal those of ``build`` for the same hours (the asset stores
        these and normalises windows on read)."""
        if end_hour < start_hour:
            raise ValueError(f"end_hour {end_hour} < start_hour {start_hour}")
        inputs, _ = self._inputs(ohlcv_data, None, need_rows=0, end_hour=end_hour)
        self._check_order(inputs)
        grid_start = start_hour - GRID_EXTENSION_HOURS
        n_rows = end_hour - grid_start + 1
        earliest = (grid_start // 24) * 24 - max(MTF_LOOKBACK_HOURS, OHLCV_LOOKBACK_HOURS)
        for item in inputs:
            item.lo = int(item.ts.searchsorted(earliest * item.per_hour, side="left"))
        info = self._raw_rows(inputs, grid_start, n_rows, allow_missing=True)
        extended = self._rows[:n_rows]
        info.update(self._place_books(extended, grid_start, orderbook_data, None))
        return extended[GRID_EXTENSION_HOURS:].copy(), info

    def normalise_windows(self, rows: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Vectors (len(ends), window, 768) float32 from stored raw rows: ``rows[e - window + 1 : e + 1]``
        for every e in ``ends`` (row indices)."""
        window = self.config.window_hours
        out = np.zeros((len(ends), window, WIDTH), dtype=np.float32)
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        for n, end in enumerate(ends):
            if end - window + 1 < 0 or end >= rows.shape[0]:
                raise ValueError(
                    f"window ending at row {end} needs rows {end - window + 1}..{end}, have 0..{rows.shape[0] - 1}"
                )
            k.normalise(
                rows,
                int(end) - window + 1,
                window,
                self._runs,
                self._layout.raw_price_ref,
                out[n],
                self._mean,
                self._scale,
                self._shift,
                False,
            )
        return out

    # -- steps -----------------------------------------------------------------------------------
    def _inputs(self, ohlcv_data, timestamp, need_rows: int | None = None, end_hour: int | None = None):
        symbols = self.config.symbols
        if not isinstance(ohlcv_data, Mapping):
            raise ValueError(f"ohlcv_data must map symbol to a DataFrame, got {type(ohlcv_data).__name__}")
        if len(ohlcv_data) != len(symbols) or any(s not in ohlcv_data for s in symbols):
            missing = [s for s in symbols if s not in ohlcv_data]
            extra = [s for s in ohlcv_data if s not in symbols]
            raise ValueError(f"ohlcv_data symbols differ from the config: missing {missing}, unexpected {extra}")
        if timestamp is not None:
            stamp = pd.Timestamp(timestamp)
            if stamp.tzinfo is None:
                raise ValueError(f"timestamp {timestamp!r} is timezone-naive; pass a UTC datetime")
            last_closed = math.floor(stamp.value / 3_600_000_000_000) - 1
        else:
            last_closed = None
        if end_hour is not None:
            last_closed = end_hour
        need = self.config.window_hours if need_rows is None else need_rows
        inputs = []
        grid_end = -(2**62)
        for symbol in symbols:
            item = _SymbolInput(symbol, *_extract(symbol, ohlcv_data[symbol]))
            ts, per_hour = item.ts, item.per_hour
            if last_closed is None:
                item.hi = ts.shape[0]
            else:
                item.hi = int(ts.searchsorted(last_closed * per_hour, side="right"))
            if item.hi < need:
                when = f"closed by {_utc_label(last_closed + 1)}" if last_closed is not None else "given"
                raise ValueError(
                    f"{symbol}: {item.hi} rows {when}; window_hours={self.config.window_hours} needs at least {need}"
                )
            if item.hi:
                grid_end = max(grid_end, int(ts[item.hi - 1] // per_hour))
            inputs.append(item)
        if last_closed is not None:
            grid_end = last_closed
        return inputs, grid_end

    def _check_order(self, inputs) -> None:
        """Timestamps hour-aligned and strictly increasing (checked on a cache miss; a hit has
        the content of an input that passed)."""
        for item in inputs:
            ts, per_hour = item.ts, item.per_hour
            status, index = k.check_order(ts, per_hour)
            if status == k.NOT_ALIGNED:
                raise ValueError(
                    f"{item.symbol}: column 'timestamp' at {_raw_time(ts[index], per_hour)} is not on the hour"
                )
            if status == k.NOT_INCREASING:
                raise ValueError(
                    f"{item.symbol}: column 'timestamp' not strictly increasing at row {index} "
                    f"({_raw_time(ts[index], per_hour)} after {_raw_time(ts[index - 1], per_hour)})"
                )

    def _cache_key(self, inputs, grid_end, orderbook_data, portfolio_state):
        parts = [grid_end]
        for item in inputs:
            parts.append(k.digest(item.ts, item.o, item.h, item.l, item.c, item.v, item.lo, item.hi, 17))
        parts.append(_book_key(orderbook_data))
        parts.append(_portfolio_key(portfolio_state))
        return tuple(parts)

    def _raw_rows(self, inputs, grid_start: int, n_rows: int, allow_missing: bool = False) -> dict:
        layout = self._layout
        if self._rows.shape[0] < n_rows:
            self._rows = np.empty((n_rows, layout.raw_width))
        rows = self._rows[:n_rows]
        raise_nan = self.config.fill_method == "raise"
        info = {"missing_hours": {}, "input_nan_rows": {}, "filled_values": 0, "layout_id": layout.layout_id}
        for s, item in enumerate(inputs):
            n = item.hi - item.lo
            if self._vals[s].shape[1] < n:
                self._vals[s] = np.empty((5, n))
                self._ts_h[s] = np.empty(n, dtype=np.int64)
                self._feat[s] = np.empty((n, _FAMILY_WIDTH))
            vals, ts_h, feat = self._vals[s], self._ts_h[s], self._feat[s]
            count, nan_rows, status, index, column = k.ingest(
                item.ts, item.per_hour, item.o, item.h, item.l, item.c, item.v, item.lo, item.hi, raise_nan, vals, ts_h
            )
            if status != k.OK:
                self._raise_bad_value(item, status, index, column)
            first = int(np.searchsorted(ts_h[:count], grid_start, side="left"))
            if first == count and not allow_missing:
                raise ValueError(
                    f"{item.symbol}: no bar between {_utc_label(grid_start + GRID_EXTENSION_HOURS)} and "
                    f"{_utc_label(grid_start + n_rows)}"
                )
            # called from Python, as the feature tables' code does: the same compiled kernels, the
            # same bits (a kernel inlined into another compiled function may round differently)
            day_anchored(ts_h, OHLCV_LOOKBACK_HOURS, first, count, vals, feat, 0, 0, 0)
            day_anchored(ts_h, MTF_LOOKBACK_HOURS, first, count, vals, feat, 0, 11, 1)
            col = int(self._sym_cols[s])
            missing, filled = k.place_symbol(
                ts_h,
                vals,
                feat,
                first,
                count,
                grid_start,
                rows,
                col,
                5 + _FAMILY_WIDTH,
                self._fill_mode,
                FORWARD_FILL_LIMIT_HOURS,
                col + OFF_FILLED,
            )
            window_missing = int(np.count_nonzero(rows[GRID_EXTENSION_HOURS:, col + OFF_FILLED]))
            if raise_nan and window_missing and not allow_missing:
                gap = GRID_EXTENSION_HOURS + int(np.argmax(rows[GRID_EXTENSION_HOURS:, col + OFF_FILLED]))
                raise ValueError(
                    f"{item.symbol}: column 'close' has no bar at {_utc_label(grid_start + gap)} (fill_method='raise')"
                )
            info["missing_hours"][item.symbol] = window_missing
            info["input_nan_rows"][item.symbol] = nan_rows
            info["filled_values"] += filled
        info["filled_values"] += k.cross_asset(
            rows,
            grid_start,
            GRID_EXTENSION_HOURS,
            self._sym_cols,
            self._ref_index,
            OFF_IND,
            OFF_XASSET,
            _G["xasset.dispersion_1h"],
            _G["time.hour_sin"],
            self._r1,
            self._r24,
        )
        zero_book_and_portfolio(rows, layout)
        return info

    def _raise_bad_value(self, item: _SymbolInput, status: int, index: int, column: int):
        name = PRICE_COLUMNS[column] if column >= 0 else "?"
        when = _raw_time(item.ts[index], item.per_hour)
        what = {
            k.NAN_VALUE: "is NaN (fill_method='raise')",
            k.INFINITE: "is infinite",
            k.NON_POSITIVE: "is zero or negative",
            k.NEGATIVE_VOLUME: "is negative",
        }[status]
        value = float((item.o, item.h, item.l, item.c, item.v)[column][index])
        raise ValueError(f"{item.symbol}: column {name!r} at {when} {what} ({value!r})")

    def _place_books(self, rows, grid_start: int, orderbook_data, timestamp) -> dict:
        if not orderbook_data:
            return {"book_rows": 0}
        if not isinstance(orderbook_data, Mapping):
            raise ValueError(f"orderbook_data must map symbol to a snapshot, got {type(orderbook_data).__name__}")
        limit_ns = pd.Timestamp(timestamp).value if timestamp is not None else None
        placed = 0
        last_row = rows.shape[0] - 1
        for symbol, snapshots in orderbook_data.items():
            if symbol not in self.config.symbols:
                raise ValueError(f"orderbook_data: symbol {symbol!r} is not configured ({list(self.config.symbols)})")
            col = int(self._sym_cols[self.config.symbols.index(symbol)]) + OFF_BOOK
            for snapshot in [snapshots] if isinstance(snapshots, Mapping) else snapshots:
                row = last_row
                when = snapshot.get("timestamp")
                if when is not None:
                    stamp = pd.Timestamp(when)
                    if stamp.tzinfo is None:
                        raise ValueError(f"orderbook_data[{symbol!r}]: timestamp {when!r} is timezone-naive")
                    if limit_ns is not None and stamp.value > limit_ns:
                        raise ValueError(
                            f"orderbook_data[{symbol!r}]: snapshot at {stamp.isoformat()} is after the build's "
                            f"timestamp {pd.Timestamp(timestamp).isoformat()}"
                        )
                    # a snapshot belongs to the bar that closed last at or before it
                    row = stamp.value // 3_600_000_000_000 - 1 - grid_start
                    if row < GRID_EXTENSION_HOURS or row > last_row:
                        continue
                rows[row, col : col + len(BOOK_VALUES_ORDER)] = book_features(symbol, snapshot)
                placed += 1
        return {"book_rows": placed}

    def _place_portfolio(self, rows, grid_start, grid_end, portfolio_state) -> dict:
        if portfolio_state is None:
            return {"portfolio": False}
        try:
            positions = portfolio_state["positions"]
            cash = float(portfolio_state["cash"])
            total = float(portfolio_state["total_value"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"portfolio_state needs 'positions', 'cash' and 'total_value': {exc}") from exc
        if not (math.isfinite(total) and total > 0):
            raise ValueError(f"portfolio_state: total_value must be finite and > 0, got {total!r}")
        if not math.isfinite(cash):
            raise ValueError(f"portfolio_state: cash must be finite, got {cash!r}")
        row = rows.shape[0] - 1
        gross = net = 0.0
        for symbol, quantity in positions.items():
            if symbol not in self.config.symbols:
                raise ValueError(f"portfolio_state: position in {symbol!r}, which is not configured")
            quantity = float(quantity)
            if not math.isfinite(quantity):
                raise ValueError(f"portfolio_state: position in {symbol!r} is not finite ({quantity!r})")
            col = int(self._sym_cols[self.config.symbols.index(symbol)])
            weight = quantity * rows[row, col + 3] / total
            rows[row, col + OFF_WEIGHT] = weight
            gross += abs(weight)
            net += weight
        rows[row, _G["portfolio.present"]] = 1.0
        rows[row, _G["portfolio.cash_share"]] = cash / total
        rows[row, _G["portfolio.gross_exposure"]] = gross
        rows[row, _G["portfolio.net_exposure"]] = net
        return {"portfolio": True}

    def _finish(self, started: float, hit: bool, info: dict) -> None:
        self.build_time_ms = (time.perf_counter() - started) * 1000.0
        self.builds += 1
        info = dict(info)
        info.update(build_ms=self.build_time_ms, cache_hit=hit)
        self.last_build = info
        if self.config.log_build_time:
            log.info(
                "state vector built in %.3f ms (cache %s, hit rate %.3f over %d builds, %d slow)",
                self.build_time_ms,
                "hit" if hit else "miss",
                self.cache_hit_rate,
                self.builds,
                self.slow_builds,
            )
        if self.build_time_ms > self.config.slow_threshold_ms:
            self.slow_builds += 1
            if self.config.warn_slow_build:
                log.warning(
                    "slow state vector build: %.1f ms > slow_threshold_ms=%.1f",
                    self.build_time_ms,
                    self.config.slow_threshold_ms,
                )


BOOK_VALUES_ORDER = (
    "present",
    "spread_bps",
    "bid_depth_1_3",
    "ask_depth_1_3",
    "bid_depth_4_10",
    "ask_depth_4_10",
    "imbalance_1_3",
    "imbalance_4_10",
    "microprice_bps",
)


def _levels(symbol: str, side: str, levels) -> list[tuple[float, float]]:
    out = []
    for n, level in enumerate(levels[:10]):
        try:
            price, quantity = float(level[0]), float(level[1])
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"orderbook_data[{symbol!r}]['{side}'][{n}] is not [price, qty]: {level!r}") from exc
        if not (math.isfinite(price) and price > 0 and math.isfinite(quantity) and quantity >= 0):
            raise ValueError(
                f"orderbook_data[{symbol!r}]['{side}'][{n}]: price must be > 0 and qty >= 0, got {level!r}"
            )
        out.append((price, quantity))
    return out


def book_features(symbol: str, snapshot) -> list[float]:
    bids = _levels(symbol, "bids", snapshot.get("bids") or [])
    asks = _levels(symbol, "asks", snapshot.get("asks") or [])
    if not bids or not asks:
        raise ValueError(f"orderbook_data[{symbol!r}]: needs at least one bid and one ask")
    best_bid, bid_qty = bids[0]
    best_ask, ask_qty = asks[0]
    if best_bid >= best_ask:
        raise ValueError(f"orderbook_data[{symbol!r}]: crossed book (best bid {best_bid} >= best ask {best_ask})")
    mid = (best_bid + best_ask) / 2.0

    def depth(levels, lo, hi):
        return sum(p * q for p, q in levels[lo:hi])

    def imbalance(b, a):
        return (b - a) / (b + a) if b + a > 0 else 0.0

    b13, a13, b410, a410 = depth(bids, 0, 3), depth(asks, 0, 3), depth(bids, 3, 10), depth(asks, 3, 10)
    micro = (best_bid * ask_qty + best_ask * bid_qty) / (bid_qty + ask_qty) if bid_qty + ask_qty > 0 else mid
    return [
        1.0,
        (best_ask - best_bid) / mid * 1e4,
        math.log1p(b13),
        math.log1p(a13),
        math.log1p(b410),
        math.log1p(a410),
        imbalance(b13, a13),
        imbalance(b410, a410),
        (micro - mid) / mid * 1e4,
    ]


def zero_book_and_portfolio(rows: np.ndarray, layout: Layout) -> None:
    for index in range(len(layout.symbols)):
        col = layout.raw_symbol_offset(index)
        rows[:, col + OFF_BOOK : col + OFF_BOOK + len(BOOK_VALUES_ORDER)] = 0.0
        rows[:, col + OFF_WEIGHT] = 0.0
    start = _G["portfolio.present"]
    rows[:, start : start + 4] = 0.0


def _book_key(orderbook_data):
    if not orderbook_data:
        return None
    parts = []
    for symbol, snapshots in orderbook_data.items():
        for snapshot in (snapshots,) if type(snapshots) is dict or isinstance(snapshots, Mapping) else snapshots:
            parts.append(symbol)
            for side in (snapshot.get("bids"), snapshot.get("asks")):
                try:
                    parts.append(marshal.dumps(side))  # exact bytes of plain lists of floats
                except ValueError:  # numpy arrays, Decimals...: their values, as a tuple
                    parts.append(tuple(tuple(map(float, level)) for level in side or ()))
            parts.append(snapshot.get("timestamp"))
    return tuple(parts)


def _portfolio_key(portfolio_state):
    if portfolio_state is None:
        return None
    try:
        return (
            tuple(sorted(portfolio_state.get("positions", {}).items())),
            portfolio_state.get("cash"),
            portfolio_state.get("total_value"),
        )
    except (AttributeError, TypeError):
        return repr(portfolio_state)


assert len(SYMBOL_FEATURES) == OFF_FILLED + 1
