"""Real headlines from files: JSONL or CSV (by extension), or a directory of such files.

Fields of a JSON object (one per line) or a CSV row (with a header line):

- ``published_at``: ISO-8601 with a UTC offset (``2024-03-05T09:15:00+01:00``, ``...Z``), or Unix
  epoch seconds or milliseconds (a number, or digits in text; values of 1e11 and more are read as
  milliseconds: 1e11 seconds would be the year 5138). Times without an offset are rejected, never
  guessed.
- ``title``: the headline text.
- ``symbols`` (optional): a JSON list, or comma-separated text (``"BTCUSDT, ETHUSDT"``); names are
  upper-cased. A row without symbols (or naming ``'*'``) is market-wide: it is kept once with
  symbol ``'*'`` and
  ``headlines(symbol, ...)`` returns it for every symbol (with that symbol), beside the rows that
  name the symbol.
- ``source`` (optional): defaults to the file name without its extension.
- ``id`` (optional): the headline's identity is then ``source:id``, so a corrected title is a
  revision of the same headline (kept as history by raw_sentiment); without an id a changed title
  is a new headline.

``headlines(symbol, start, end)`` returns the synthetic source's columns (HEADLINE_COLUMNS) plus
``headline_id`` (``None`` without an id), for published_at in [start, end), ordered by time.
Lines that cannot be read (broken JSON, a CSV row with the wrong number of fields, a missing,
unparseable or offset-less time, no title, symbols neither a list nor text) are never dropped:
``unreadable()`` returns each with the file, its line number, the reason and the raw line, and
raw_sentiment puts them in quarantine. Blank lines carry nothing and are skipped. A path that is
missing, a file that cannot be read or decoded as UTF-8, or a CSV header without published_at and
title raises SourceFormatError naming the path. Files are parsed once per (mtime, size).
"""

from __future__ import annotations

import csv
import json
import math
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

from pipeline_assets.sources.base import HEADLINE_COLUMNS, SourceFormatError, require_utc_window

SUFFIXES = (".jsonl", ".csv")
MARKET_WIDE = "*"
OUTPUT_COLUMNS = (*HEADLINE_COLUMNS, "headline_id")
UNREADABLE_COLUMNS = ("file", "line", "reason", "raw")
_EPOCH = re.compile(r"[+-]?\d+(\.\d*)?")
_MS_FROM = 1e11  # epoch values from here on are milliseconds


class _Unreadable(ValueError):
    pass


def _time(value) -> pd.Timestamp:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _Unreadable("no published_at")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Unreadable(f"published_at {value!r} is neither ISO-8601 text nor an epoch number")
    text = str(value).strip()
    if isinstance(value, (int, float)) or _EPOCH.fullmatch(text):
        number = float(text)
        if not math.isfinite(number):
            raise _Unreadable(f"published_at {text!r} is not a finite epoch number")
        unit = "ms" if abs(number) >= _MS_FROM else "s"
        try:
            return pd.Timestamp(round(number * (1000 if unit == "s" else 1)), unit="ms", tz="UTC").as_unit("ns")
        except (OverflowError, ValueError) as exc:
            raise _Unreadable(f"published_at {text!r} is out of range as epoch {unit}") from exc
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _Unreadable(f"published_at {text!r} is not ISO-8601") from exc
    if stamp.tzinfo is None:
        raise _Unreadable(f"published_at {text!r} has no UTC offset")
    try:
        return pd.Timestamp(stamp).tz_convert("UTC").as_unit("ns")
    except (OverflowError, ValueError) as exc:  # datetime64[ns] holds 1677-09-21 .. 2262-04-11
        raise _Unreadable(f"published_at {text!r} is out of range (1677..2262)") from exc


def _title(value) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _Unreadable("no title")
    if not isinstance(value, str):
        raise _Unreadable(f"title {value!r} is not text")
    return value.strip()


def _symbols(value) -> list[str]:
    if value is None:
        items = []
    elif isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise _Unreadable(f"symbols {value!r} holds something other than text")
        items = value
    elif isinstance(value, str):
        items = value.split(",")
    else:
        raise _Unreadable(f"symbols {value!r} is neither a list nor comma-separated text")
    symbols = list(dict.fromkeys(s.strip().upper() for s in items if s.strip()))
    return [MARKET_WIDE] if not symbols or MARKET_WIDE in symbols else symbols


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceFormatError(f"headline file {path} cannot be read: {exc}") from exc


def _records(path: Path) -> list[tuple[int, str, dict | None, str | None]]:
    """(line number, raw line, record, why it is unreadable) per JSON line or CSV row of one file."""
    # lines end at \n only: JSON strings and quoted CSV fields may hold other line separators
    lines = [line for line in re.split(r"(?<=\n)", _read_text(path)) if line]
    out = []
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate((line.rstrip("\r\n") for line in lines), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                out.append((number, line, None, f"unreadable JSON line: {exc}"))
                continue
            if not isinstance(record, dict):
                out.append((number, line, None, f"unreadable JSON line: a {type(record).__name__}, not an object"))
                continue
            out.append((number, line, record, None))
        return out
    reader = csv.reader(iter(lines), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise SourceFormatError(f"headline file {path}: unreadable CSV header: {exc}") from exc
    names = [h.strip() for h in header] if header else []
    if "published_at" not in names or "title" not in names:
        raise SourceFormatError(f"headline file {path}: the CSV header needs published_at and title, got {names}")
    done = reader.line_num
    while done < len(lines):
        try:
            row, error = next(reader, None), None
        except csv.Error as exc:  # e.g. a quote still open at the end of the file
            row, error = None, f"unreadable CSV row: {exc}"
        if reader.line_num == done:
            break
        raw = "".join(lines[done : reader.line_num]).rstrip("\r\n")
        first, done = done + 1, reader.line_num
        if error is not None:
            out.append((first, raw, None, error))
        elif row is None or not any(cell.strip() for cell in row):
            continue
        elif len(row) != len(names):
            out.append((first, raw, None, f"CSV row has {len(row)} fields, the header {len(names)}"))
        else:
            out.append((first, raw, {k: (v if v.strip() else None) for k, v in zip(names, row, strict=True)}, None))
    return out


def _id(value) -> str | None:
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        return None
    return str(value).strip()


class HeadlineFileSource:
    """Headlines from a JSONL/CSV file or a directory of them (see the module docstring)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.name = f"file:{self.path.name}"
        self._parsed: dict[Path, tuple[tuple[int, int], pd.DataFrame, pd.DataFrame]] = {}

    def files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if self.path.is_file() and self.path.suffix.lower() in SUFFIXES:
            return [self.path]
        raise SourceFormatError(f"headline path {self.path} is not a .jsonl/.csv file or a directory of them")

    def _parse(self, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(headlines, unreadable lines) of one file, parsed again only when it changed."""
        try:
            status = path.stat()
        except OSError as exc:
            raise SourceFormatError(f"headline file {path} cannot be read: {exc}") from exc
        version = (status.st_mtime_ns, status.st_size)
        cached = self._parsed.get(path)
        if cached and cached[0] == version:
            return cached[1], cached[2]
        rows, bad = [], []
        for number, raw, record, error in _records(path):
            if error is None:
                try:
                    published = _time(record.get("published_at"))
                    title = _title(record.get("title"))
                    symbols = _symbols(record.get("symbols"))
                except _Unreadable as exc:
                    error = str(exc)
            if error is not None:
                bad.append((path.name, number, error, raw))
                continue
            source = _id(record.get("source")) or path.stem
            own_id = _id(record.get("id"))
            headline_id = f"{source}:{own_id}" if own_id is not None else None
            rows += [(published, symbol, source, title, headline_id) for symbol in symbols]
        # text columns as the synthetic source gives them (pandas' string dtype); ids may be None
        columns = list(zip(*rows, strict=True)) if rows else [[]] * len(OUTPUT_COLUMNS)
        frame = pd.DataFrame(
            {
                "published_at": pd.to_datetime(pd.Series(columns[0], dtype=object), utc=True).astype(
                    "datetime64[ns, UTC]"
                ),
                **{
                    c: pd.Series(values, dtype="str")
                    for c, values in zip(OUTPUT_COLUMNS[1:4], columns[1:4], strict=True)
                },
                "headline_id": pd.Series(columns[4], dtype=object),  # None without an id
            }
        )
        unreadable = pd.DataFrame(bad, columns=list(UNREADABLE_COLUMNS)).astype({"line": "int64"})
        self._parsed[path] = (version, frame, unreadable)
        return frame, unreadable

    def headlines(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = require_utc_window(start, end)
        parts = []
        for path in self.files():
            frame, _ = self._parse(path)
            mine = frame["symbol"].isin([symbol, MARKET_WIDE])
            mine &= (frame["published_at"] >= start_ts) & (frame["published_at"] < end_ts)
            parts.append(frame[mine].assign(symbol=symbol))
        if not parts:
            dtypes = {"published_at": "datetime64[ns, UTC]", "headline_id": object}
            return pd.DataFrame({c: pd.Series([], dtype=dtypes.get(c, "str")) for c in OUTPUT_COLUMNS})
        out = pd.concat(parts, ignore_index=True)
        return out[list(OUTPUT_COLUMNS)].sort_values("published_at", kind="stable", ignore_index=True)

    def unreadable(self) -> pd.DataFrame:
        """Every line of every file that could not be read: file, line (1-based), reason, raw."""
        parts = [self._parse(path)[1] for path in self.files()]
        if not parts:
            return pd.DataFrame(
                {c: pd.Series([], dtype="int64" if c == "line" else object) for c in UNREADABLE_COLUMNS}
            )
        return pd.concat(parts, ignore_index=True)
