"""Real headlines from files: JSONL or CSV (by extension), or a directory of such files.

Fields: ``published_at`` (ISO-8601 with a UTC offset, or epoch seconds / milliseconds), ``title``,
optional ``symbols`` (a list, or comma-separated), optional ``source`` (default: the file name),
optional ``id`` (then the headline's identity is source:id, so a corrected title is a revision of
the same headline, kept as history; without an id a changed title is a new headline). A headline
without symbols is market-wide: it is returned for every symbol.
``headlines(symbol, start, end)`` returns HEADLINE_COLUMNS for published_at in [start, end).
``unreadable()`` lists the lines that could not be read (an unparseable or offset-less time, no
title, broken JSON) with the reason and the line: raw_sentiment puts them in quarantine, never
silently dropped. A file
that cannot be read at all raises SourceFormatError naming the path. Files are parsed once per
modification time.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pandas as pd

from pipeline_assets.sources.base import HEADLINE_COLUMNS, SourceFormatError, require_utc_window

SUFFIXES = (".jsonl", ".csv")
MARKET_WIDE = "*"


def _time(value) -> pd.Timestamp:
    text = str(value).strip()
    if text.isdigit() and len(text) in (10, 13):
        return pd.Timestamp(int(text), unit="s" if len(text) == 10 else "ms", tz="UTC")
    stamp = pd.Timestamp(text)
    if stamp.tzinfo is None:
        raise ValueError(f"published_at {text!r} has no UTC offset")
    return stamp.tz_convert("UTC")


def _symbols(value) -> list[str]:
    if value is None or value == "" or (isinstance(value, float) and pd.isna(value)):
        return [MARKET_WIDE]
    if isinstance(value, list):
        return [str(v).strip().upper() for v in value if str(v).strip()] or [MARKET_WIDE]
    return [s.strip().upper() for s in str(value).split(",") if s.strip()] or [MARKET_WIDE]


def _records(path: Path) -> list[tuple[dict | None, str, str | None]]:
    """(record, raw line, error) per line/row of one file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceFormatError(f"headline file {path} cannot be read: {exc}") from exc
    out = []
    if path.suffix == ".jsonl":
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                out.append((record, line, None))
            except ValueError as exc:
                out.append((None, line, f"unreadable JSON line: {exc}"))
        return out
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "published_at" not in reader.fieldnames or "title" not in reader.fieldnames:
        raise SourceFormatError(
            f"headline file {path}: the CSV header needs published_at and title, got {reader.fieldnames}"
        )
    for row in reader:
        out.append((row, ",".join(str(v) for v in row.values()), None))
    return out


class HeadlineFileSource:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.name = f"file:{self.path.name}"
        self._parsed: dict[Path, tuple[float, pd.DataFrame]] = {}

    def files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(p for p in self.path.iterdir() if p.suffix in SUFFIXES)
        if self.path.is_file() and self.path.suffix in SUFFIXES:
            return [self.path]
        raise SourceFormatError(f"headline path {self.path} is not a .jsonl/.csv file or a directory of them")

    def _frame(self, path: Path) -> pd.DataFrame:
        mtime = path.stat().st_mtime
        cached = self._parsed.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        rows = []
        for record, raw, error in _records(path):
            if error is None:
                try:
                    published = _time(record.get("published_at"))
                    title = str(record.get("title") or "").strip()
                    if not title:
                        raise ValueError("no title")
                except (ValueError, TypeError) as exc:
                    error = str(exc)
            if error is not None:
                rows.append((pd.NaT, MARKET_WIDE, path.name, None, None, error, raw))
                continue
            source = str(record.get("source") or path.stem)
            source_id = record.get("id")
            headline_id = f"{source}:{source_id}" if source_id not in (None, "") else None
            for symbol in _symbols(record.get("symbols")):
                rows.append((published, symbol, source, title, headline_id, None, raw))
        frame = pd.DataFrame(
            rows, columns=["published_at", "symbol", "source", "headline", "headline_id", "reject_reason", "raw"]
        )
        frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
        self._parsed[path] = (mtime, frame)
        return frame

    def headlines(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = require_utc_window(start, end)
        parts = []
        for path in self.files():
            frame = self._frame(path)
            mine = frame["reject_reason"].isna() & frame["symbol"].isin([symbol, MARKET_WIDE])
            mine &= (frame["published_at"] >= start_ts) & (frame["published_at"] < end_ts)
            parts.append(frame[mine].assign(symbol=symbol))
        columns = [*HEADLINE_COLUMNS, "headline_id"]
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
        return out[columns].sort_values("published_at", kind="stable", ignore_index=True)

    def unreadable(self) -> pd.DataFrame:
        """Lines of every file that could not be read: file, reason, raw."""
        parts = [
            self._frame(path).loc[lambda f: f["reject_reason"].notna(), ["source", "reject_reason", "raw"]]
            for path in self.files()
        ]
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["source", "reject_reason", "raw"])
        return out.rename(columns={"source": "file", "reject_reason": "reason"})
