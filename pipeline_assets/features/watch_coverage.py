"""Coverage of a forward-collected stream (the liquidation websocket): intervals during which the
stream was connected and its subscription confirmed, merged (overlaps and touching intervals
become one; lengths are never summed), and the hours they cover entirely.

An hour [t, t + 1h) counts as watched only if one merged interval contains all of it: a gap of a
second (a reconnect) leaves the hour unwatched, and its liquidation values are missing, not 0."""

from __future__ import annotations

import numpy as np
import pandas as pd

UNWATCHED_REASON = "liquidation stream not watched"


def merge_intervals(intervals: pd.DataFrame) -> pd.DataFrame:
    """``intervals`` with columns watched_from, watched_until (UTC) -> the union as disjoint
    intervals sorted by start. Empty or inverted intervals (until <= from) cover nothing."""
    if intervals.empty:
        empty = pd.DatetimeIndex([], tz="UTC")
        return pd.DataFrame({"watched_from": empty, "watched_until": empty})
    data = intervals[["watched_from", "watched_until"]].copy()
    data = data[data["watched_until"] > data["watched_from"]].sort_values(["watched_from", "watched_until"])
    merged: list[list[pd.Timestamp]] = []
    for start, end in zip(data["watched_from"], data["watched_until"], strict=True):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return pd.DataFrame(
        {
            "watched_from": pd.DatetimeIndex([m[0] for m in merged], tz="UTC"),
            "watched_until": pd.DatetimeIndex([m[1] for m in merged], tz="UTC"),
        }
    )


def watched_hours(intervals: pd.DataFrame, hours: pd.DatetimeIndex) -> np.ndarray:
    """For each hour start in ``hours``: True iff the union of ``intervals`` covers [t, t + 1h)."""
    merged = merge_intervals(intervals)
    if merged.empty or len(hours) == 0:
        return np.zeros(len(hours), dtype=bool)
    starts = merged["watched_from"].to_numpy(dtype="datetime64[ns]")
    ends = merged["watched_until"].to_numpy(dtype="datetime64[ns]")
    hour_starts = pd.DatetimeIndex(hours).tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")
    # the last merged interval starting at or before the hour's start is the only one that can hold it
    index = np.searchsorted(starts, hour_starts, side="right") - 1
    ok = index >= 0
    covered = np.zeros(len(hour_starts), dtype=bool)
    covered[ok] = ends[index[ok]] >= hour_starts[ok] + np.timedelta64(1, "h")
    return covered


def unwatched_runs(hours: pd.DatetimeIndex, watched: np.ndarray) -> list[dict]:
    """Consecutive unwatched hours as [{"first": iso, "last": iso, "hours": n}] (for metadata)."""
    runs: list[dict] = []
    for t, ok in zip(hours, watched, strict=True):
        if ok:
            continue
        if runs and pd.Timestamp(runs[-1]["last"]) + pd.Timedelta(hours=1) == t:
            runs[-1]["last"] = t.isoformat()
            runs[-1]["hours"] += 1
        else:
            runs.append({"first": t.isoformat(), "last": t.isoformat(), "hours": 1})
    return runs
