"""The OHLCV data contract: which bars may enter the warehouse, and why others may not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from pipeline_assets.contracts.frames import require_utc_frame
from pipeline_assets.contracts.spec import OHLCV_CONTRACT, PRICE_COLUMNS, VALUE_COLUMNS

OHLCV_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class ContractInputError(ValueError):
    """The frame cannot be checked at all (missing columns, non-UTC timestamps)."""


@dataclass(frozen=True)
class ContractResult:
    valid: pd.DataFrame
    rejected: pd.DataFrame  # same columns plus ``reason``

    @property
    def reasons(self) -> dict[str, int]:
        if self.rejected.empty:
            return {}
        return self.rejected["reason"].value_counts().sort_index().to_dict()


def _require_columns(frame: pd.DataFrame, symbol: str) -> None:
    require_utc_frame(frame, OHLCV_COLUMNS, ContractInputError, context=symbol)


def rule_violations(frame: pd.DataFrame, symbol: str) -> dict[str, pd.Series]:
    """Boolean masks (True = violates) for each rule of OHLCV_CONTRACT, aligned with ``frame``:
    the rules behind the ingestion filter, the blocking asset checks and the whole-table scan."""
    _require_columns(frame, symbol)
    return OHLCV_CONTRACT.violations(frame)


# Rules whose violation only flags the row (stored, reported); the others refuse it.
WARNING_RULES = tuple(r.name for r in OHLCV_CONTRACT.rules if r.severity == "WARN")
_REASON_TEXT = {r.name: r.reason or "{cols}" for r in OHLCV_CONTRACT.rules if r.severity == "ERROR"}
_REASON_TEXT["positive_prices"] = "non-positive price in {cols}"
del _REASON_TEXT["unique_monotonic_ts"]  # duplicates get their own policy below


def validate_ohlcv(frame: pd.DataFrame, symbol: str, start: datetime, end: datetime) -> ContractResult:
    """Split a source's bars for [start, end) into valid rows (sorted, unique ts) and rejected
    rows with the reason. Identical duplicate bars keep one copy; conflicting duplicates are
    all rejected, since the source gives no way to tell which is right."""
    _require_columns(frame, symbol)
    # "raw" (the source's original text of the row, when it has one) travels with rejected rows
    # into the quarantine, so a refused cell is kept as it was written, not as NaN.
    data = frame.loc[:, [*OHLCV_COLUMNS, *(["raw"] if "raw" in frame.columns else [])]].copy()
    data["symbol"] = symbol
    for column in VALUE_COLUMNS:
        data[column] = data[column].astype("float64")
    data = data.sort_values("ts", kind="stable", ignore_index=True)

    reasons = pd.Series([[] for _ in range(len(data))], index=data.index, dtype=object)
    masks = rule_violations(data, symbol)
    for rule, template in _REASON_TEXT.items():
        mask = masks[rule]
        for index in data.index[mask]:
            cols = ""
            if rule == "no_nan":
                bad = [c for c in VALUE_COLUMNS if not np.isfinite(data.at[index, c])]
                nan = [c for c in bad if np.isnan(data.at[index, c])]
                infinite = [f"{c}={data.at[index, c]}" for c in bad if c not in nan]
                cols = "; ".join(
                    part
                    for part in (
                        f"NaN in {', '.join(nan)}" if nan else "",
                        f"infinite value in {', '.join(infinite)}" if infinite else "",
                    )
                    if part
                )
            elif rule == "positive_prices":
                cols = ", ".join(c for c in PRICE_COLUMNS if data.at[index, c] <= 0)
            reasons[index].append(template.format(cols=cols))

    outside = data["ts"].notna() & ((data["ts"] < pd.Timestamp(start)) | (data["ts"] >= pd.Timestamp(end)))
    for index in data.index[outside]:
        reasons[index].append(f"ts outside partition window [{start.isoformat()}, {end.isoformat()})")

    # Duplicates among rows that are otherwise fine.
    clean = reasons.map(len) == 0
    dup_groups = data[clean & data["ts"].duplicated(keep=False)].groupby("ts", sort=False)
    for _, group in dup_groups:
        distinct = group[list(VALUE_COLUMNS)].drop_duplicates()
        if len(distinct) == 1:
            for index in group.index[1:]:
                reasons[index].append("duplicate ts (identical copy of an accepted bar)")
        else:
            for index in group.index:
                reasons[index].append(f"conflicting duplicate ts ({len(group)} different bars)")

    rejected_mask = reasons.map(len) > 0
    rejected = data[rejected_mask].copy()
    rejected["reason"] = reasons[rejected_mask].map("; ".join)
    valid = data[~rejected_mask].copy()
    valid["vendor_filled"] = masks["vendor_filled"][~rejected_mask].to_numpy(dtype=bool)
    return ContractResult(valid=valid.reset_index(drop=True), rejected=rejected.reset_index(drop=True))
