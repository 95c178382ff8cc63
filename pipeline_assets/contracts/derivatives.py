"""Contracts of the derivatives feeds (funding, open interest, liquidations, long/short ratio),
declared as data like the OHLCV contract; one validator for all four.

Every row: symbol, venue, ``ts`` (the time the value refers to, UTC), ``available_at`` (when it
became known, >= ts), source. ERROR rules refuse the row into quarantine with the reason."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline_assets.contracts.spec import ColumnSpec, ContractSpec, RuleSpec

TS = "timestamp with time zone"
FLOAT = "double precision"
FUNDING_BOUND_ENV = "PIPELINE_FUNDING_RATE_BOUND"


def funding_bound() -> float:
    return float(os.environ.get(FUNDING_BOUND_ENV, "0.03"))


def _common(name_of_value: str) -> tuple[ColumnSpec, ...]:
    return (
        ColumnSpec("symbol", "text", "Configured symbol (the perpetual of the same coin)"),
        ColumnSpec("venue", "text", "Exchange and market type, e.g. binance:swap, or synthetic"),
        ColumnSpec("ts", TS, f"Time the {name_of_value} refers to, UTC"),
        ColumnSpec("available_at", TS, "When the value became known (published or fetched), >= ts"),
        ColumnSpec("source", "text", "Source name"),
    )


def _finite(columns):
    return lambda f: ~np.isfinite(f[list(columns)].astype("float64").to_numpy()).all(axis=1)


def _not_hour(frame: pd.DataFrame) -> pd.Series:
    return frame["ts"].isna() | (frame["ts"] != frame["ts"].dt.floor("h"))


def _late(frame: pd.DataFrame) -> pd.Series:
    return frame["available_at"].isna() | (frame["available_at"] < frame["ts"])


def _rules(values, extra) -> tuple[RuleSpec, ...]:
    return (
        RuleSpec(
            "finite", f"{', '.join(values)} finite (no NaN or inf).", "ERROR", _finite(values), "non-finite value"
        ),
        RuleSpec("known_after_event", "available_at >= ts.", "ERROR", _late, "available_at before ts"),
        *extra,
    )


FUNDING_CONTRACT = ContractSpec(
    table="raw_funding_rates",
    key=("symbol", "venue", "ts"),
    columns=(
        *_common("funding rate"),
        ColumnSpec("funding_rate", FLOAT, "Funding paid by longs per interval (negative: shorts pay)", "fraction"),
        ColumnSpec("interval_hours", "integer", "Hours between fundings", "hours"),
    ),
    rules=_rules(
        ("funding_rate",),
        (
            RuleSpec(
                "within_bound",
                f"|funding_rate| <= the configured bound ({FUNDING_BOUND_ENV}, default 0.03).",
                "ERROR",
                lambda f: f["funding_rate"].astype("float64").abs() > funding_bound(),
                "funding_rate beyond the configured bound",
            ),
            RuleSpec("on_the_hour", "ts on the hour.", "ERROR", _not_hour, "ts not on the hour"),
        ),
    ),
)
OPEN_INTEREST_CONTRACT = ContractSpec(
    table="raw_open_interest",
    key=("symbol", "venue", "ts"),
    columns=(
        *_common("open interest"),
        ColumnSpec("open_interest", FLOAT, "Open contracts at the end of the hour", "contracts"),
        ColumnSpec("open_interest_value", FLOAT, "Their value", "quote currency", nullable=True),
    ),
    rules=_rules(
        ("open_interest",),
        (
            RuleSpec(
                "non_negative",
                "open_interest >= 0 and its value >= 0.",
                "ERROR",
                lambda f: (f["open_interest"] < 0) | (f["open_interest_value"].fillna(0) < 0),
                "negative open interest",
            ),
            RuleSpec("on_the_hour", "ts on the hour.", "ERROR", _not_hour, "ts not on the hour"),
        ),
    ),
)
LIQUIDATIONS_CONTRACT = ContractSpec(
    table="raw_liquidations",
    key=("symbol", "venue", "ts", "event_id"),
    columns=(
        *_common("liquidation"),
        ColumnSpec("event_id", "text", "The venue's id of the forced order"),
        ColumnSpec("side", "text", "buy (shorts liquidated) or sell (longs liquidated)"),
        ColumnSpec("size", FLOAT, "Quantity", "base currency"),
        ColumnSpec("price", FLOAT, "Fill price", "quote currency"),
    ),
    rules=_rules(
        ("size", "price"),
        (
            RuleSpec(
                "side_known",
                "side in {buy, sell}.",
                "ERROR",
                lambda f: ~f["side"].isin(["buy", "sell"]),
                "side not buy/sell",
            ),
            RuleSpec(
                "positive",
                "size > 0 and price > 0.",
                "ERROR",
                lambda f: (f["size"] <= 0) | (f["price"] <= 0),
                "size or price not positive",
            ),
        ),
    ),
)
LONG_SHORT_CONTRACT = ContractSpec(
    table="raw_long_short_ratio",
    key=("symbol", "venue", "ts"),
    columns=(
        *_common("long/short ratio"),
        ColumnSpec("long_short_ratio", FLOAT, "Accounts long / accounts short", "ratio"),
        ColumnSpec("long_account", FLOAT, "Share of accounts long", "fraction", nullable=True),
        ColumnSpec("short_account", FLOAT, "Share of accounts short", "fraction", nullable=True),
    ),
    rules=_rules(
        ("long_short_ratio",),
        (
            RuleSpec(
                "positive_ratio",
                "long_short_ratio > 0; account shares in [0, 1].",
                "ERROR",
                lambda f: (
                    (f["long_short_ratio"] <= 0)
                    | ~f["long_account"].fillna(0.5).between(0, 1)
                    | ~f["short_account"].fillna(0.5).between(0, 1)
                ),
                "ratio not positive or share outside [0, 1]",
            ),
            RuleSpec("on_the_hour", "ts on the hour.", "ERROR", _not_hour, "ts not on the hour"),
        ),
    ),
)
DERIVATIVE_CONTRACTS = {
    "funding": FUNDING_CONTRACT,
    "open_interest": OPEN_INTEREST_CONTRACT,
    "liquidations": LIQUIDATIONS_CONTRACT,
    "long_short_ratio": LONG_SHORT_CONTRACT,
}


@dataclass(frozen=True)
class FeedResult:
    valid: pd.DataFrame
    rejected: pd.DataFrame  # the rows with a ``reason``


def validate_feed(contract: ContractSpec, frame: pd.DataFrame, start, end) -> FeedResult:
    """Rows of ``frame`` split into valid and refused (with every reason), for ts in [start, end);
    duplicate keys: identical copies collapse to one, conflicting copies are all refused."""
    names = [c.name for c in contract.columns]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValueError(f"{contract.table}: frame lacks column(s) {missing}")
    data = frame[names].reset_index(drop=True)
    data = data.drop_duplicates().reset_index(drop=True)
    reasons = pd.Series([[] for _ in range(len(data))], dtype=object)
    checks = {
        contract.rule(r.name).reason or r.name: m
        for r, m in zip(contract.rules, contract.violations(data).values(), strict=True)
    }
    checks["ts outside the partition window"] = (
        data["ts"].isna() | (data["ts"] < pd.Timestamp(start)) | (data["ts"] >= pd.Timestamp(end))
    )
    checks["conflicting rows for one key"] = data.duplicated(subset=list(contract.key), keep=False)
    for reason, mask in checks.items():
        for index in data.index[np.asarray(mask, dtype=bool)]:
            reasons[index].append(reason)
    bad = reasons.map(len) > 0
    rejected = data[bad].assign(reason=reasons[bad].map("; ".join))
    return FeedResult(data[~bad].reset_index(drop=True), rejected.reset_index(drop=True))
