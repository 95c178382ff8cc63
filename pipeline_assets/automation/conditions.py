"""Declarative automation conditions for the range-first daily assets.

`AutomationCondition.eager()` considers only the latest time partition and waits for every
upstream partition. That misses two things this graph needs:

- corrections: re-materialising raw_ohlcv for an older day must recompute the features of that
  day and of the following days whose lookback covers it, and the labels of the day before
  (look-forward). The partition mappings declare those windows; `any_deps_updated` over *all*
  partitions (not only the latest) follows them, so the corrected day's dependents are requested.
- lookback parents that were never ingested (history that starts after the partition start, a
  user who ingests only recent days): features compute with whatever lookback exists and report
  it in their `full_lookback` check, so a missing lookback partition must not block them. Only
  the deps named in `require` must exist (e.g. a trained model before predictions).

New days enter through the hourly ingestion schedule (time is the trigger there); every hop
after it is automation.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import AssetKey, AssetSelection, AutomationCondition


def correction_aware(ignore: Sequence[str] = (), require: Sequence[str] = ()) -> AutomationCondition:
    """Request a partition when any of its upstream partitions was updated since it was last
    handled (any day, not only the latest), or when the latest day's partition newly appears.
    ``ignore``: deps whose updates do not trigger (e.g. a retrained model: past predictions stay
    point-in-time). ``require``: deps that must have been materialised before it runs."""
    updated = AutomationCondition.any_deps_updated()
    if ignore:
        updated = updated.ignore(AssetSelection.assets(*(AssetKey(n) for n in ignore)))
    condition = (
        (AutomationCondition.in_latest_time_window() & AutomationCondition.newly_missing()) | updated
    ).since_last_handled()
    if require:
        condition = condition & ~AutomationCondition.any_deps_missing().allow(
            AssetSelection.assets(*(AssetKey(n) for n in require))
        )
    return (condition & ~AutomationCondition.any_deps_in_progress() & ~AutomationCondition.in_progress()).with_label(
        "correction_aware"
    )
