"""Hourly bars from CSV files: DIR/SYMBOL.csv and/or DIR/SYMBOL/*.csv.

The time column (``ts``, ``timestamp`` or ``open_time``) holds epoch milliseconds or ISO-8601
with an offset; naive times are refused. Cells that do not parse as numbers become NaN and
the row is kept, so the OHLCV contract can quarantine it with a reason.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline_assets.sources.base import (
    OHLCV_COLUMNS,
    SourceDataMissing,
    SourceFormatError,
    require_utc_window,
)

TIME_COLUMNS = ("ts", "timestamp", "open_time")
VALUE_COLUMNS = OHLCV_COLUMNS[1:]


class CsvDirectorySource:
    name = "csv"

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)

    def files_for(self, symbol: str) -> list[Path]:
        files = []
        single = self.directory / f"{symbol}.csv"
        if single.is_file():
            files.append(single)
        folder = self.directory / symbol
        if folder.is_dir():
            files.extend(sorted(folder.glob("*.csv")))
        return files

    def available_symbols(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        names = {p.stem for p in self.directory.glob("*.csv")}
        names |= {p.name for p in self.directory.iterdir() if p.is_dir() and any(p.glob("*.csv"))}
        return sorted(names)

    def ohlcv(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = require_utc_window(start, end)
        files = self.files_for(symbol)
        if not files:
            raise SourceDataMissing(f"no CSV for {symbol} in {self.directory} ({symbol}.csv or {symbol}/*.csv)")
        frames = [_read_file(path, symbol) for path in files]
        bars = pd.concat(frames, ignore_index=True)
        bars = bars[(bars["ts"] >= start_ts) & (bars["ts"] < end_ts)]
        return bars.sort_values("ts", kind="stable").reset_index(drop=True)


def _parse_times(raw: pd.Series, path: Path, symbol: str, column: str) -> pd.Series:
    text = raw.astype(str).str.strip()
    numeric = text.str.fullmatch(r"\d{10,14}")
    parsed = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if numeric.any():
        parsed[numeric] = pd.to_datetime(text[numeric].astype("int64"), unit="ms", utc=True)
    for index in raw.index[~numeric]:
        value = text[index]
        line = int(index) + 2  # header is line 1
        try:
            stamp = pd.Timestamp(value)
        except ValueError as exc:
            raise SourceFormatError(f"{symbol}: {path} line {line}: {column}={value!r} is not a timestamp") from exc
        if stamp.tzinfo is None:
            raise SourceFormatError(
                f"{symbol}: {path} line {line}: {column}={value!r} has no UTC offset; write e.g. 2024-03-01T00:00:00Z"
            )
        parsed[index] = stamp.tz_convert("UTC")
    return parsed


def _read_file(path: Path, symbol: str) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw.columns = [c.strip().lower() for c in raw.columns]
    time_column = next((c for c in TIME_COLUMNS if c in raw.columns), None)
    if time_column is None:
        raise SourceFormatError(f"{symbol}: {path} has no time column (one of {list(TIME_COLUMNS)})")
    missing = [c for c in VALUE_COLUMNS if c not in raw.columns]
    if missing:
        raise SourceFormatError(f"{symbol}: {path} lacks column(s) {missing}")
    frame = pd.DataFrame({"ts": _parse_times(raw[time_column], path, symbol, time_column)})
    for column in VALUE_COLUMNS:
        frame[column] = pd.to_numeric(raw[column].str.strip(), errors="coerce").astype(np.float64)
    return frame


def write_csv(bars: pd.DataFrame, path: Path | str) -> Path:
    """Write bars in the format CsvDirectorySource reads (ISO-8601 UTC with Z)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = bars[list(OHLCV_COLUMNS)].copy()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False, float_format="%.17g", na_rep="NaN")
    return path
