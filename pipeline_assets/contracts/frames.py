"""Structural checks shared by every compute entry point that takes a time-indexed frame."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def require_utc_frame(
    frame: pd.DataFrame, required: Sequence[str], error: type[Exception], context: str = "", ts_column: str = "ts"
) -> None:
    """Raise ``error`` naming the missing columns, or a ``ts`` column that is not tz-aware UTC."""
    prefix = f"{context}: " if context else ""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise error(f"{prefix}frame lacks column(s) {missing}")
    ts = frame[ts_column]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype) or str(ts.dt.tz) != "UTC":
        raise error(f"{prefix}column {ts_column!r} must be tz-aware UTC, got dtype {ts.dtype}")
