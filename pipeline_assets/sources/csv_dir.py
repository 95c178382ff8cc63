"""Hourly bars from CSV files: DIR/SYMBOL.csv and/or DIR/SYMBOL/*.csv.

Format: a header row with a time column (``ts``, ``timestamp`` or ``open_time``, the first
present wins) and ``open, high, low, close, volume``; names are case-insensitive, other columns
are ignored except ``symbol``, which must name the file's symbol. Times are epoch seconds (10
digits), epoch milliseconds (13 digits) or ISO-8601 with an offset or ``Z``.

Row-level handling: a row that cannot be read as a bar (not UTF-8, wrong number of fields, blank
or naive or unparsable time, an epoch of another length, a non-numeric or blank value, another
symbol) is returned with ``reject_reason`` and its original line in ``raw``, so the ingestion
asset quarantines it as written. Rows that parse go to the OHLCV contract (NaN literals, inf,
1e309, high < low, duplicates ... are its business). Only a file that cannot be read at all
(empty, no header, a missing column, no row with a usable time) raises SourceFormatError naming
the path and the cause. Each file is parsed once per source object (cached by path, size and
modification time), so a range run reads a file once.

A rejected row without a usable time is placed (``placed_at``) at the time of the nearest
preceding readable row in the file (else the next one), so it is quarantined in exactly one day.
"""

from __future__ import annotations

import csv
import re
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
OUTPUT_COLUMNS = (*OHLCV_COLUMNS, "placed_at", "reject_reason", "raw")
_HAS_OFFSET = re.compile(r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")
_DIGITS = re.compile(r"\d+")
_NAN_LITERALS = {"nan", "NaN", "NAN"}


class CsvDirectorySource:
    name = "csv"

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self._cache: dict[tuple[str, int, int], pd.DataFrame] = {}

    def files_for(self, symbol: str) -> list[Path]:
        files = []
        single = self.directory / f"{symbol}.csv"
        if single.is_file():
            files.append(single)
        folder = self.directory / symbol
        if folder.is_dir():
            files.extend(sorted(p for p in folder.glob("*.csv") if p.is_file()))
        return files

    def available_symbols(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        names = {p.stem for p in self.directory.glob("*.csv")}
        names |= {p.name for p in self.directory.iterdir() if p.is_dir() and any(p.glob("*.csv"))}
        return sorted(names)

    def _parsed(self, path: Path, symbol: str) -> pd.DataFrame:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._cache:
            self._cache[key] = read_ohlcv_csv(path, symbol)
        return self._cache[key]

    def ohlcv(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows placed in [start, end) from every file of ``symbol`` (columns OUTPUT_COLUMNS), in
        time order; rows with ``reject_reason`` set are for the quarantine, the rest for the contract."""
        start_ts, end_ts = require_utc_window(start, end)
        files = self.files_for(symbol)
        if not files:
            raise SourceDataMissing(f"no CSV for {symbol} in {self.directory} ({symbol}.csv or {symbol}/*.csv)")
        bars = pd.concat([self._parsed(path, symbol) for path in files], ignore_index=True)
        bars = bars[(bars["placed_at"] >= start_ts) & (bars["placed_at"] < end_ts)]
        return bars.sort_values("placed_at", kind="stable").reset_index(drop=True)


def _split_lines(path: Path, symbol: str) -> tuple[list[str], list[tuple[int, bytes]]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceFormatError(f"{symbol}: {path} cannot be read: {exc}") from exc
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = [(number, line.rstrip(b"\r")) for number, line in enumerate(data.split(b"\n"), start=1)]
    lines = [(number, line) for number, line in lines if line.strip()]
    if not lines:
        raise SourceFormatError(f"{symbol}: {path} is empty (no header line)")
    header_number, header_bytes = lines[0]
    try:
        header_text = header_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceFormatError(f"{symbol}: {path} line {header_number}: the header is not UTF-8 ({exc})") from exc
    header = [name.strip().lower() for name in next(csv.reader([header_text]))]
    return header, lines[1:]


def read_ohlcv_csv(path: Path | str, symbol: str) -> pd.DataFrame:
    """One file as rows of OUTPUT_COLUMNS in file order (see the module docstring)."""
    path = Path(path)
    header, lines = _split_lines(path, symbol)
    time_column = next((c for c in TIME_COLUMNS if c in header), None)
    if time_column is None:
        raise SourceFormatError(f"{symbol}: {path} has no time column (one of {list(TIME_COLUMNS)}); header {header}")
    missing = [c for c in VALUE_COLUMNS if c not in header]
    if missing:
        raise SourceFormatError(f"{symbol}: {path} lacks column(s) {missing}; header {header}")
    width = len(header)
    wanted = [time_column, *VALUE_COLUMNS] + (["symbol"] if "symbol" in header else [])
    positions = [header.index(c) for c in wanted]
    raw, reasons, cells = [], [], {c: [] for c in wanted}
    for number, line in lines:
        try:
            text = line.decode("utf-8")
            fields = next(csv.reader([text]))
            reason = None if len(fields) == width else f"line {number} has {len(fields)} fields, header has {width}"
        except UnicodeDecodeError:
            text, fields, reason = line.decode("utf-8", "backslashreplace"), [], f"line {number} is not UTF-8"
        except csv.Error as exc:
            text, fields, reason = line.decode("utf-8", "backslashreplace"), [], f"line {number}: {exc}"
        raw.append(text)
        reasons.append(reason)
        for column, position in zip(wanted, positions, strict=True):
            cells[column].append(fields[position].strip() if reason is None else "")
    n = len(raw)
    reasons = pd.Series(reasons, dtype=object)
    ts = pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]")
    time_text = pd.Series(cells[time_column], dtype=object)

    def reject(mask: pd.Series, message) -> None:
        mask = mask & reasons.isna()
        for index in mask[mask].index:
            reasons[index] = message(index) if callable(message) else message

    readable = reasons.isna()
    reject(readable & (time_text == ""), f"{time_column} is blank")
    digits = time_text.str.fullmatch(_DIGITS.pattern).fillna(False).astype(bool)
    for length, unit in ((10, "s"), (13, "ms")):
        chosen = digits & (time_text.str.len() == length) & reasons.isna()
        if chosen.any():
            ts[chosen] = pd.to_datetime(time_text[chosen].astype(np.int64), unit=unit, utc=True)
    reject(
        digits & ~time_text.str.len().isin([10, 13]),
        lambda i: (
            f"{time_column}={time_text[i]!r}: an epoch with {len(time_text[i])} digits is neither seconds "
            "(10) nor milliseconds (13)"
        ),
    )
    iso = ~digits & reasons.isna() & (time_text != "")
    has_offset = time_text.str.contains(_HAS_OFFSET.pattern, regex=True).fillna(False).astype(bool)
    parsed = pd.to_datetime(time_text.where(iso), format="ISO8601", utc=True, errors="coerce")
    reject(iso & parsed.isna(), lambda i: f"{time_column}={time_text[i]!r} is not a timestamp")
    reject(
        iso & parsed.notna() & ~has_offset,
        lambda i: f"{time_column}={time_text[i]!r} has no UTC offset (write e.g. 2024-03-01T00:00:00Z)",
    )
    good_iso = iso & parsed.notna() & has_offset & reasons.isna()
    ts[good_iso] = parsed[good_iso].astype("datetime64[us, UTC]")
    values = {}
    for column in VALUE_COLUMNS:
        text = pd.Series(cells[column], dtype=object)
        number = pd.to_numeric(text.where(~text.isin(_NAN_LITERALS)), errors="coerce").astype(np.float64)
        number[text.isin(_NAN_LITERALS)] = np.nan
        reject(text == "", f"{column} is blank")
        reject(
            number.isna() & ~text.isin(_NAN_LITERALS) & (text != ""),
            lambda i, column=column, text=text: f"{column}={text[i]!r} is not a number",
        )
        values[column] = number
    if "symbol" in cells:
        named = pd.Series(cells["symbol"], dtype=object).str.upper()
        reject(
            (named != symbol.upper()) & (named != ""),
            lambda i: f"symbol column says {named[i]!r}, the file is for {symbol}",
        )
    usable = reasons.isna() & ts.notna()
    if n and not usable.any() and not ts.notna().any():
        first = reasons.dropna()
        raise SourceFormatError(
            f"{symbol}: {path}: no row has a usable time ({len(first)} rows refused, first: {first.iloc[0]})"
        )
    placed = ts.where(ts.notna()).ffill().bfill()
    frame = pd.DataFrame({"ts": ts, **values})
    frame["placed_at"] = placed
    frame["reject_reason"] = reasons.where(reasons.notna(), None)
    frame["raw"] = raw
    return frame[list(OUTPUT_COLUMNS)]


def write_csv(bars: pd.DataFrame, path: Path | str) -> Path:
    """Write bars in the format CsvDirectorySource reads (ISO-8601 UTC with Z)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = bars[list(OHLCV_COLUMNS)].copy()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False, float_format="%.17g", na_rep="NaN")
    return path
