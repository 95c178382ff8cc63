"""Feature scalers fitted on the training slice only, stored as plain numbers (JSON, no pickle).

Kinds (``x' = (x - center) / scale``):

- ``standard``: center = mean, scale = population standard deviation (ddof=0, as scikit-learn);
- ``minmax``: center = min, scale = max - min (training rows map onto [0, 1]; later rows may fall
  outside it, they are not clipped);
- ``robust``: center = median, scale = interquartile range (q75 - q25).

A column whose training scale is zero (constant in the training slice) gets scale 1: it is only
centred, so it becomes 0 on training rows and keeps its raw deviation later, instead of dividing
by zero. Such columns are listed in ``Scaler.constant_columns``.

Per-symbol scalers keep one set of statistics per symbol seen in training, plus the global
statistics of all training rows. A symbol not seen in training raises ``UnseenSymbolError`` naming
it (``unseen_symbol="error"``, the default); with ``unseen_symbol="global"`` such rows use the
global statistics instead, and ``Scaler.unseen_symbols(frame)`` lists them so callers can report
them. Missing values (NaN) are refused at fit time (naming column, symbol and time) and pass
through ``transform`` unchanged: missing stays missing, the model decides what to do with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline_assets.contracts.versioning import content_id

SCALER_FORMAT = "scaler-v1"
KINDS = ("standard", "minmax", "robust")
UNSEEN_SYMBOL_POLICIES = ("error", "global")


class ScalerError(ValueError):
    pass


class UnseenSymbolError(ScalerError):
    pass


@dataclass(frozen=True)
class Stats:
    center: tuple[float, ...]
    scale: tuple[float, ...]
    rows: int


@dataclass(frozen=True)
class Scaler:
    kind: str
    columns: tuple[str, ...]
    per_symbol: bool
    unseen_symbol: str
    global_stats: Stats
    symbol_stats: dict[str, Stats] = field(default_factory=dict)
    constant_columns: tuple[str, ...] = ()

    @property
    def scaler_id(self) -> str:
        return content_id("scaler", _payload(self))

    def to_dict(self) -> dict:
        return {**_payload(self), "scaler_id": self.scaler_id}

    @classmethod
    def from_dict(cls, data: dict) -> Scaler:
        if data.get("format") != SCALER_FORMAT:
            raise ScalerError(f"scaler dict has format {data.get('format')!r}, expected {SCALER_FORMAT!r}")
        columns = tuple(data["columns"])

        def stats(entry: dict, where: str) -> Stats:
            center, scale = tuple(float(v) for v in entry["center"]), tuple(float(v) for v in entry["scale"])
            if len(center) != len(columns) or len(scale) != len(columns):
                raise ScalerError(f"scaler dict {where}: {len(center)}/{len(scale)} values for {len(columns)} columns")
            return Stats(center, scale, int(entry["rows"]))

        scaler = cls(
            kind=data["kind"],
            columns=columns,
            per_symbol=bool(data["per_symbol"]),
            unseen_symbol=data["unseen_symbol"],
            global_stats=stats(data["global"], "global"),
            symbol_stats={s: stats(e, f"symbol {s}") for s, e in data["symbols"].items()},
            constant_columns=tuple(data["constant_columns"]),
        )
        _check_options(scaler.kind, scaler.unseen_symbol)
        if "scaler_id" in data and data["scaler_id"] != scaler.scaler_id:
            raise ScalerError(f"scaler dict says id {data['scaler_id']}, its numbers hash to {scaler.scaler_id}")
        return scaler

    def unseen_symbols(self, frame: pd.DataFrame) -> list[str]:
        if not self.per_symbol:
            return []
        return sorted(set(frame["symbol"].unique()) - set(self.symbol_stats))

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``frame`` with the scaler's columns scaled (float64); other columns untouched."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ScalerError(f"frame lacks scaled column(s) {missing}")
        values = frame[list(self.columns)].to_numpy(dtype=np.float64)
        if not self.per_symbol:
            center = np.asarray(self.global_stats.center)
            scale = np.asarray(self.global_stats.scale)
            scaled = (values - center) / scale
        else:
            if "symbol" not in frame.columns:
                raise ScalerError("per-symbol scaler needs a 'symbol' column")
            unseen = self.unseen_symbols(frame)
            if unseen and self.unseen_symbol == "error":
                first = frame.loc[frame["symbol"].isin(unseen), "ts"].min() if "ts" in frame.columns else None
                when = f" (first row ts {pd.Timestamp(first).isoformat()})" if first is not None else ""
                raise UnseenSymbolError(
                    f"symbol(s) {unseen} have no per-symbol scaler statistics: not in the training slice{when}; "
                    "retrain, or fit with unseen_symbol='global' to use the global statistics"
                )
            symbols = frame["symbol"].to_numpy()
            center = np.empty_like(values)
            scale = np.empty_like(values)
            for symbol in pd.unique(symbols):
                stats = self.symbol_stats.get(symbol, self.global_stats)
                rows = symbols == symbol
                center[rows] = stats.center
                scale[rows] = stats.scale
            scaled = (values - center) / scale
        out = frame.copy()
        out[list(self.columns)] = scaled
        return out


def _payload(scaler: Scaler) -> dict:
    def stats(s: Stats) -> dict:
        return {"center": list(s.center), "scale": list(s.scale), "rows": s.rows}

    return {
        "format": SCALER_FORMAT,
        "kind": scaler.kind,
        "columns": list(scaler.columns),
        "per_symbol": scaler.per_symbol,
        "unseen_symbol": scaler.unseen_symbol,
        "global": stats(scaler.global_stats),
        "symbols": {s: stats(scaler.symbol_stats[s]) for s in sorted(scaler.symbol_stats)},
        "constant_columns": list(scaler.constant_columns),
    }


def _check_options(kind: str, unseen_symbol: str) -> None:
    if kind not in KINDS:
        raise ScalerError(f"unknown scaler kind {kind!r}; one of {KINDS}")
    if unseen_symbol not in UNSEEN_SYMBOL_POLICIES:
        raise ScalerError(f"unknown unseen_symbol policy {unseen_symbol!r}; one of {UNSEEN_SYMBOL_POLICIES}")


def _stats(values: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "standard":
        center, scale = values.mean(axis=0), values.std(axis=0)
    elif kind == "minmax":
        center, scale = values.min(axis=0), values.max(axis=0) - values.min(axis=0)
    else:
        q25, center, q75 = np.quantile(values, [0.25, 0.5, 0.75], axis=0)
        scale = q75 - q25
    return center, scale


def _constant_to_one(scale: np.ndarray) -> np.ndarray:
    return np.where(scale > 0, scale, 1.0)


def fit(
    frame_train: pd.DataFrame,
    columns: Sequence[str],
    kind: str = "standard",
    per_symbol: bool = False,
    unseen_symbol: str = "error",
) -> Scaler:
    """Fit on the training slice only: the statistics are numbers derived from ``frame_train`` and
    nothing else, so later (validation, test, live) rows cannot change them."""
    _check_options(kind, unseen_symbol)
    columns = tuple(columns)
    if not columns:
        raise ScalerError("no columns to scale")
    missing = [c for c in columns if c not in frame_train.columns]
    if missing:
        raise ScalerError(f"training frame lacks column(s) {missing}")
    if frame_train.empty:
        raise ScalerError("cannot fit a scaler on an empty training frame")
    if per_symbol and "symbol" not in frame_train.columns:
        raise ScalerError("per_symbol=True needs a 'symbol' column")
    values = frame_train[list(columns)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        symbol = frame_train["symbol"].iloc[row] if "symbol" in frame_train.columns else "?"
        ts = pd.Timestamp(frame_train["ts"].iloc[row]).isoformat() if "ts" in frame_train.columns else "?"
        raise ScalerError(
            f"training frame has {int(bad.sum())} missing/non-finite value(s); first: column {columns[col]!r}, "
            f"symbol {symbol}, ts {ts}; fit on complete rows only"
        )
    center, scale = _stats(values, kind)
    constant = tuple(c for c, s in zip(columns, scale, strict=True) if not s > 0)
    global_stats = Stats(tuple(map(float, center)), tuple(map(float, _constant_to_one(scale))), len(values))
    symbol_stats: dict[str, Stats] = {}
    if per_symbol:
        symbols = frame_train["symbol"].to_numpy()
        for symbol in sorted(pd.unique(symbols)):
            part = values[symbols == symbol]
            c, s = _stats(part, kind)
            constant += tuple(f"{symbol}:{name}" for name, v in zip(columns, s, strict=True) if not v > 0)
            symbol_stats[str(symbol)] = Stats(tuple(map(float, c)), tuple(map(float, _constant_to_one(s))), len(part))
    for stats in (global_stats, *symbol_stats.values()):
        if not all(math.isfinite(v) for v in (*stats.center, *stats.scale)):
            raise ScalerError("scaler statistics are not finite (values too large?)")
    return Scaler(kind, columns, per_symbol, unseen_symbol, global_stats, symbol_stats, constant)
