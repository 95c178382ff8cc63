"""Data contracts declared once, as data: columns (type, unit, nullability) and row rules
(description, severity, reason text, vectorised check) per raw table.

The validators (`contracts/ohlcv.py`, `contracts/headlines.py`), the blocking asset checks, the
whole-table scans and the UI's column schema and rule list are all derived from these
declarations; `tests/test_contracts.py` checks them against the SQL tables. Severity ERROR refuses
the row (quarantine with the reason), WARN stores it and flags it. A new raw table (derivatives,
order books) declares a ContractSpec the same way.

Hand-written pandas rather than pandera: the rules need the run's window, a duplicate policy
(identical copies vs conflicting rows) and per-row reason texts for the quarantine; these specs
carry exactly that, and nothing here imports Dagster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    sql_type: str
    description: str
    unit: str = ""
    nullable: bool = False


@dataclass(frozen=True)
class RuleSpec:
    name: str
    description: str
    severity: Literal["ERROR", "WARN"]
    check: Callable[[pd.DataFrame], pd.Series]  # True = the row violates the rule
    reason: str = ""  # quarantine reason text ("" = built by the validator, e.g. naming columns)


@dataclass(frozen=True)
class ContractSpec:
    table: str
    key: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    rules: tuple[RuleSpec, ...]

    def rule(self, name: str) -> RuleSpec:
        return next(r for r in self.rules if r.name == name)

    def violations(self, frame: pd.DataFrame) -> dict[str, pd.Series]:
        """Boolean masks per rule (True = violates), aligned with ``frame``, in declaration order."""
        out = {}
        for rule in self.rules:
            mask = rule.check(frame)
            out[rule.name] = pd.Series(mask, index=frame.index).fillna(False).astype(bool)
        return out

    def describe(self) -> dict:
        """A Dagster-free description for the UI: columns and rules."""
        return {
            "table": self.table,
            "key": list(self.key),
            "columns": [
                {
                    "name": c.name,
                    "type": c.sql_type,
                    "unit": c.unit,
                    "nullable": c.nullable,
                    "description": c.description,
                }
                for c in self.columns
            ],
            "rules": [{"name": r.name, "severity": r.severity, "description": r.description} for r in self.rules],
        }


PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")


def _values(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(VALUE_COLUMNS)].astype("float64")


def _non_finite(frame: pd.DataFrame) -> np.ndarray:
    # NaN, +inf, -inf and overflowed literals such as 1e309 (read as inf) are all non-finite.
    return ~np.isfinite(_values(frame).to_numpy()).all(axis=1)


def _high_below_low(frame: pd.DataFrame) -> pd.Series:
    v = _values(frame)
    return v["high"] < v["low"]


def _body_outside_range(frame: pd.DataFrame) -> pd.Series:
    v = _values(frame)
    top, bottom = np.maximum(v["open"], v["close"]), np.minimum(v["open"], v["close"])
    return ((v["high"] < top) | (v["low"] > bottom)) & ~(v["high"] < v["low"])


def _non_positive(frame: pd.DataFrame) -> pd.Series:
    return (_values(frame)[list(PRICE_COLUMNS)] <= 0).any(axis=1)


def _negative_volume(frame: pd.DataFrame) -> pd.Series:
    return _values(frame)["volume"] < 0


def _not_hour_aligned(frame: pd.DataFrame) -> pd.Series:
    ts = frame["ts"]
    return ts.isna() | (ts != ts.dt.floor("h"))


def _duplicate_or_out_of_order(frame: pd.DataFrame) -> pd.Series:
    ts = frame["ts"]
    duplicated = ts.duplicated(keep=False) & ts.notna()
    out_of_order = ts < ts.cummax().shift(1)  # earlier than some bar before it in the frame as given
    return duplicated | out_of_order.fillna(False)


def _vendor_filled(frame: pd.DataFrame) -> pd.Series:
    v = _values(frame)
    return (v["volume"] == 0) & (v["open"] == v["high"]) & (v["high"] == v["low"]) & (v["low"] == v["close"])


OHLCV_CONTRACT = ContractSpec(
    table="raw_ohlcv",
    key=("symbol", "ts"),
    columns=(
        ColumnSpec("symbol", "text", "Configured symbol (PIPELINE_SYMBOLS)"),
        ColumnSpec("ts", "timestamp with time zone", "Bar open time, UTC, on the hour"),
        ColumnSpec("open", "double precision", "First trade price of the hour", "quote currency"),
        ColumnSpec("high", "double precision", "Highest price, >= open, close, low", "quote currency"),
        ColumnSpec("low", "double precision", "Lowest price, <= open, close, high; > 0", "quote currency"),
        ColumnSpec("close", "double precision", "Last trade price of the hour", "quote currency"),
        ColumnSpec("volume", "double precision", "Traded volume, >= 0", "base currency"),
        ColumnSpec("source", "text", "Source name (synthetic, csv, exchange id)"),
        ColumnSpec("vendor_filled", "boolean", "Zero volume and open = high = low = close: an outage filled"),
        ColumnSpec(
            "available_at",
            "timestamp with time zone",
            "When these values became known: the bar's close for a first version, the ingestion time of a "
            "restatement (earlier versions are in raw_ohlcv_history)",
            nullable=True,
        ),
    ),
    rules=(
        RuleSpec("no_nan", "Every price and the volume are finite (no NaN, inf or overflow).", "ERROR", _non_finite),
        RuleSpec("high_gte_low", "high >= low.", "ERROR", _high_below_low, "high < low"),
        RuleSpec(
            "ohlc_consistent",
            "open and close lie inside [low, high].",
            "ERROR",
            _body_outside_range,
            "open/close outside [low, high]",
        ),
        RuleSpec("positive_prices", "open, high, low and close are > 0.", "ERROR", _non_positive),
        RuleSpec("non_negative_volume", "volume >= 0.", "ERROR", _negative_volume, "negative volume"),
        RuleSpec(
            "hour_aligned_ts",
            "ts is present and on the hour (UTC).",
            "ERROR",
            _not_hour_aligned,
            "ts missing or not aligned to the hour",
        ),
        RuleSpec(
            "unique_monotonic_ts",
            "ts is unique and increasing (duplicates: identical copies kept once, conflicting bars all refused).",
            "ERROR",
            _duplicate_or_out_of_order,
        ),
        RuleSpec(
            "vendor_filled",
            "Zero volume with open = high = low = close (an outage filled by the vendor): "
            "stored with vendor_filled = true and reported.",
            "WARN",
            _vendor_filled,
        ),
    ),
)


def _empty_headline(frame: pd.DataFrame) -> pd.Series:
    return frame["headline"].fillna("").astype(str).str.strip() == ""


HEADLINE_CONTRACT = ContractSpec(
    table="raw_sentiment",
    key=("symbol", "published_at", "headline_id"),
    columns=(
        ColumnSpec("symbol", "text", "The symbol the headline is about"),
        ColumnSpec("published_at", "timestamp with time zone", "When the headline was published, UTC"),
        ColumnSpec("headline_id", "text", "Stable hash of source, time and text"),
        ColumnSpec("source", "text", "Publisher or feed"),
        ColumnSpec("headline", "text", "The headline text"),
        ColumnSpec("compound", "double precision", "VADER compound score", "[-1, 1]"),
        ColumnSpec("positive", "double precision", "VADER positive share", "[0, 1]"),
        ColumnSpec("neutral", "double precision", "VADER neutral share", "[0, 1]"),
        ColumnSpec("negative", "double precision", "VADER negative share", "[0, 1]"),
    ),
    rules=(RuleSpec("non_empty_headline", "The headline has text.", "ERROR", _empty_headline, "empty headline"),),
)

CONTRACTS = (OHLCV_CONTRACT, HEADLINE_CONTRACT)
