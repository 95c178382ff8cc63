"""The OHLCV data contract: which bars may enter the warehouse, and why others may not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from pipeline_assets.contracts.frames import require_utc_frame

OHLCV_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")


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
    """Boolean masks (True = violates) for each rule, aligned with ``frame``.

    The rules behind the blocking asset checks on raw_ohlcv and the ingestion filter.
    """
    _require_columns(frame, symbol)
    values = frame[list(VALUE_COLUMNS)].astype("float64")
    prices = values[list(PRICE_COLUMNS)]
    ts = frame["ts"]
    # NaN, +inf, -inf and overflowed literals such as 1e309 (read as inf) are all non-finite.
    nan_any = ~np.isfinite(values.to_numpy()).all(axis=1)
    nan_any = pd.Series(nan_any, index=frame.index)
    with np.errstate(invalid="ignore"):
        high_lt_low = values["high"] < values["low"]
        body_top = np.maximum(values["open"], values["close"])
        body_bottom = np.minimum(values["open"], values["close"])
        outside_range = (values["high"] < body_top) | (values["low"] > body_bottom)
        non_positive = (prices <= 0).any(axis=1)
        negative_volume = values["volume"] < 0
    not_aligned = ts.isna() | (ts != ts.dt.floor("h"))
    duplicated = ts.duplicated(keep=False) & ts.notna()
    # Out of order = earlier than some bar before it in the frame as given.
    out_of_order = ts < ts.cummax().shift(1)
    flat = (values["volume"] == 0) & (values["open"] == values["high"]) & (values["high"] == values["low"])
    flat &= values["low"] == values["close"]
    return {
        "no_nan": nan_any,
        # A zero-volume bar with open = high = low = close: an exchange outage the vendor filled
        # with the previous close. Stored, flagged (column vendor_filled, warning check), never
        # silently treated as trading.
        "vendor_filled": flat.fillna(False),
        "high_gte_low": high_lt_low.fillna(False),
        "ohlc_consistent": outside_range.fillna(False) & ~high_lt_low.fillna(False),
        "positive_prices": non_positive.fillna(False),
        "non_negative_volume": negative_volume.fillna(False),
        "hour_aligned_ts": not_aligned,
        "unique_monotonic_ts": duplicated | out_of_order.fillna(False),
    }


# Rules whose violation refuses the row; the others only flag it.
WARNING_RULES = ("vendor_filled",)

_REASON_TEXT = {
    "no_nan": "{cols}",
    "high_gte_low": "high < low",
    "ohlc_consistent": "open/close outside [low, high]",
    "positive_prices": "non-positive price in {cols}",
    "non_negative_volume": "negative volume",
    "hour_aligned_ts": "ts missing or not aligned to the hour",
}


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
