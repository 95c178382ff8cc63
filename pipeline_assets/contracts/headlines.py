"""The headline contract: which headlines may be scored and stored, and why others may not."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from pipeline_assets.contracts.frames import require_utc_frame
from pipeline_assets.contracts.ohlcv import ContractInputError, ContractResult
from pipeline_assets.contracts.spec import HEADLINE_CONTRACT

HEADLINE_COLUMNS = ("published_at", "symbol", "source", "headline")


def validate_headlines(frame: pd.DataFrame, symbol: str, start: datetime, end: datetime) -> ContractResult:
    """Reject empty headlines, headlines about another symbol or outside [start, end), and
    exact repeats (same source, time and text); everything else is valid."""
    require_utc_frame(frame, HEADLINE_COLUMNS, ContractInputError, context=symbol, ts_column="published_at")
    carried = [c for c in ("headline_id",) if c in frame.columns]  # a source's own identity, if any
    data = frame.loc[:, [*HEADLINE_COLUMNS, *carried]].reset_index(drop=True)
    declared = HEADLINE_CONTRACT.violations(data)
    checks = {
        **{HEADLINE_CONTRACT.rule(name).reason: mask for name, mask in declared.items()},
        "published_at outside partition window": data["published_at"].isna()
        | (data["published_at"] < pd.Timestamp(start))
        | (data["published_at"] >= pd.Timestamp(end)),
        f"symbol is not {symbol}": data["symbol"].astype(str) != symbol,
    }
    reasons = pd.Series([[] for _ in range(len(data))], dtype=object)
    for reason, mask in checks.items():
        for index in data.index[mask]:
            reasons[index].append(reason)
    clean = reasons.map(len) == 0
    repeated = clean & data.duplicated(subset=["source", "published_at", "headline"], keep="first")
    for index in data.index[repeated]:
        reasons[index].append("duplicate headline (same source, time and text)")
    rejected_mask = reasons.map(len) > 0
    rejected = data[rejected_mask].assign(reason=reasons[rejected_mask].map("; ".join))
    return ContractResult(valid=data[~rejected_mask].reset_index(drop=True), rejected=rejected.reset_index(drop=True))
