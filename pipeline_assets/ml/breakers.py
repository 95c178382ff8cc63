"""Per-member circuit breakers and the fallback chain of ensemble inference.

A breaker is a JSON-safe dict (``new_state``) changed only by pure functions returning a new dict:

- ``closed`` (member used). Trips to ``open`` on an ``exception``, an ``integrity_failure``
  (artifact bytes not matching their sha256), an ``invalid_output`` (probabilities missing, outside
  [0, 1] or not summing to 1) or a ``realised_loss`` event that says the member is worse than its
  baseline. ``tripped_at`` and ``reason`` record why.
- ``open`` (member not run). After ``cooldown_hours`` from ``tripped_at`` it becomes ``half_open``
  (at exactly tripped_at + cooldown, whenever that is noticed, so the result does not depend on how
  runs were batched). A failure while open restarts the cooldown.
- ``half_open`` (member used on trial). ``success_window`` consecutive ``success`` events close it;
  any failure, or a worse realised loss measured on predictions made since it became half-open,
  opens it again.

Realised loss rule (``realised_loss_event``): over the newest ``loss_window_rows`` matured rows,
per-row log loss of the member minus per-row log loss of its baseline (the caller passes the
baseline it is judged against, e.g. training-window class priors). Rule ``"margin"`` (default):
worse when the mean difference exceeds ``loss_margin`` nats. Rule ``"bootstrap"``: worse when the
whole 95% moving-block bootstrap interval of the mean difference (blocks of ``bootstrap_block``
rows, to respect overlapping label windows) lies above zero. Fewer than ``loss_min_rows`` rows give
no verdict. After a member is readmitted, only losses of predictions made since then count
(``loss_window_from``), so the rows that tripped it do not trip it again.

``realised_loss_gate`` applies that rule point-in-time per predicted day: only rows predicted
before the day whose labels matured before it count, so the verdict of a day does not depend on how
runs were batched (the ensemble leaves a member judged worse out of that day).

``run_members`` calls each usable member, turning any exception into an event for that member only,
so one failing member never stops the others. ``fallback_chain`` then decides per (symbol, ts):
the ensemble of usable members (``fallback_used="none"``), else the previous champion ensemble's
prediction (``"previous_champion"``), else the class priors (``"class_priors"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.ml.baselines import block_bootstrap_ci
from pipeline_assets.ml.ensemble import (
    KEY,
    PROBABILITY_COLUMNS,
    EnsembleError,
    EnsembleWeights,
    check_member_frame,
    combine,
)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
FAILURE_KINDS = ("exception", "integrity_failure", "invalid_output")
EVENT_KINDS = (*FAILURE_KINDS, "success", "realised_loss")
FALLBACKS = ("none", "previous_champion", "class_priors")


class BreakerError(ValueError):
    pass


class MemberIntegrityError(RuntimeError):
    """A member's artifact failed its integrity check (callers may map their own errors to it)."""


@dataclass(frozen=True)
class BreakerConfig:
    cooldown_hours: float = 6.0
    success_window: int = 3
    loss_rule: str = "margin"
    loss_window_rows: int = 240
    loss_min_rows: int = 100
    loss_margin: float = 0.02
    bootstrap_block: int = 20
    bootstrap_resamples: int = 400

    def __post_init__(self) -> None:
        if self.loss_rule not in ("margin", "bootstrap"):
            raise BreakerError(f"loss_rule must be 'margin' or 'bootstrap', got {self.loss_rule!r}")
        if self.cooldown_hours < 0 or self.success_window < 1 or self.loss_min_rows < 1:
            raise BreakerError(f"bad breaker config {self}")


def _iso(at: datetime | pd.Timestamp | str) -> str:
    ts = pd.Timestamp(at)
    if ts.tzinfo is None:
        raise BreakerError(f"time {ts} must be timezone-aware (UTC)")
    return ts.tz_convert("UTC").isoformat()


def _ts(value: str | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value)


def new_state(member: str) -> dict:
    return {
        "member": member,
        "state": CLOSED,
        "tripped_at": None,
        "reason": None,
        "trips": 0,
        "half_open_since": None,
        "half_open_successes": 0,
        "loss_window_from": None,
        "updated_at": None,
        "last_transition": None,
    }


def _transition(state: dict, to: str, at: str, reason: str | None) -> dict:
    out = dict(state)
    out["last_transition"] = {"from": state["state"], "to": to, "at": at, "reason": reason}
    out["state"] = to
    return out


def _trip(state: dict, at: str, reason: str) -> dict:
    out = _transition(state, OPEN, at, reason)
    out.update(tripped_at=at, reason=reason, trips=state["trips"] + 1, half_open_since=None, half_open_successes=0)
    return out


def advance(state: dict, now: datetime | str, config: BreakerConfig) -> dict:
    """Let time pass: an open breaker whose cooldown has elapsed by ``now`` becomes half-open at
    tripped_at + cooldown."""
    now_ts = pd.Timestamp(_iso(now))
    if state["state"] != OPEN:
        return state
    eligible = _ts(state["tripped_at"]) + pd.Timedelta(hours=config.cooldown_hours)
    if now_ts < eligible:
        return state
    at = eligible.isoformat()
    out = _transition(state, HALF_OPEN, at, "cooldown elapsed")
    out.update(half_open_since=at, half_open_successes=0, loss_window_from=at)
    return out


def is_usable(state: dict, now: datetime | str, config: BreakerConfig) -> bool:
    return advance(state, now, config)["state"] in (CLOSED, HALF_OPEN)


def event(kind: str, at: datetime | str, detail: str = "", **fields) -> dict:
    if kind not in EVENT_KINDS:
        raise BreakerError(f"unknown event kind {kind!r}; one of {EVENT_KINDS}")
    return {"kind": kind, "at": _iso(at), "detail": detail, **fields}


def realised_loss_event(
    at: datetime | str,
    ts: Sequence,
    member_log_loss: Sequence[float],
    baseline_log_loss: Sequence[float],
    config: BreakerConfig,
) -> dict:
    """Judge a member's realised per-row log loss against its baseline's on the same matured rows
    (``ts`` = the predicted bar of each row). See the module docstring for the rules."""
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(pd.Series(ts), utc=True),
            "model": np.asarray(member_log_loss, dtype=np.float64),
            "baseline": np.asarray(baseline_log_loss, dtype=np.float64),
        }
    )
    if not np.isfinite(frame[["model", "baseline"]].to_numpy()).all():
        raise BreakerError("realised log losses must be finite")
    frame = frame.sort_values("ts", kind="stable").tail(config.loss_window_rows)
    rows = len(frame)
    fields: dict = {"rows": rows, "rule": config.loss_rule}
    if rows:
        diff = (frame["model"] - frame["baseline"]).to_numpy()
        fields.update(
            model_log_loss=float(frame["model"].mean()),
            baseline_log_loss=float(frame["baseline"].mean()),
            difference=float(diff.mean()),
            window_start=frame["ts"].min().isoformat(),
            window_end=frame["ts"].max().isoformat(),
        )
    if rows < config.loss_min_rows:
        return event(
            "realised_loss", at, f"{rows} matured rows < {config.loss_min_rows}: no verdict", worse=False, **fields
        )
    if config.loss_rule == "margin":
        worse = fields["difference"] > config.loss_margin
        detail = f"mean log loss {fields['difference']:+.4f} vs baseline (margin {config.loss_margin})"
    else:
        low, high = block_bootstrap_ci(diff, config.bootstrap_block, config.bootstrap_resamples)
        fields["ci95"] = [low, high]
        worse = low > 0
        detail = f"mean log loss {fields['difference']:+.4f} vs baseline, 95% interval [{low:+.4f}, {high:+.4f}]"
    return event("realised_loss", at, detail, worse=bool(worse), **fields)


def realised_loss_gate(
    history: pd.DataFrame,
    labels: pd.DataFrame,
    day_start: datetime | pd.Timestamp,
    members: Sequence[str],
    config: BreakerConfig,
    baseline_priors: Sequence[float],
) -> dict[str, dict]:
    """Point-in-time realised-loss verdict per member for the day starting at ``day_start``.

    ``history``: member, symbol, ts, prob_sell, prob_hold, prob_buy (the members' own past rows);
    ``labels``: symbol, ts, direction, matured_at. Only rows predicted before ``day_start`` whose
    label matured before ``day_start`` count, so the verdict of a day depends on nothing later and
    is the same whether the day runs alone or inside a range run. Each member's per-row log loss is
    judged against ``baseline_priors`` (the class priors of the labels matured before the day) by
    ``realised_loss_event``; a ``worse`` verdict leaves the member out of that day's ensemble.
    """
    start = pd.Timestamp(day_start)
    if start.tzinfo is None:
        raise BreakerError(f"day_start {start} must be timezone-aware (UTC)")
    priors = np.asarray(baseline_priors, dtype=np.float64)
    matured = labels.loc[labels["matured_at"] < start, [*KEY, "direction"]]
    verdicts = {}
    for member in sorted(members):
        own = history.loc[(history["member"] == member) & (history["ts"] < start), [*KEY, *PROBABILITY_COLUMNS]]
        rows = own.merge(matured, on=KEY, how="inner").sort_values(["ts", "symbol"], kind="stable")
        y = rows["direction"].to_numpy(dtype=np.int64)
        proba = rows[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64)
        member_loss = -np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))
        baseline_loss = -np.log(np.clip(priors[y], 1e-12, 1.0))
        verdicts[member] = realised_loss_event(start, rows["ts"], member_loss, baseline_loss, config)
    return verdicts


def apply_event(state: dict, evt: dict, config: BreakerConfig) -> dict:
    """The breaker after ``evt``; ``state`` is not modified. Events must come in time order."""
    if evt.get("kind") not in EVENT_KINDS:
        raise BreakerError(f"member {state['member']}: unknown event kind {evt.get('kind')!r}")
    at = _iso(evt["at"])
    if state["updated_at"] is not None and pd.Timestamp(at) < pd.Timestamp(state["updated_at"]):
        raise BreakerError(
            f"member {state['member']}: event {evt['kind']} at {at} is older than the breaker's last update "
            f"{state['updated_at']}; apply events in time order"
        )
    state = advance(state, at, config)
    kind = evt["kind"]
    reason = f"{kind}: {evt.get('detail', '')}".rstrip(": ")
    loss_counts = kind == "realised_loss" and evt.get("worse", False)
    if loss_counts and state["loss_window_from"] is not None:
        # Evidence must come only from predictions made since the member was (re)admitted.
        loss_counts = evt.get("window_start") is not None and pd.Timestamp(evt["window_start"]) >= pd.Timestamp(
            state["loss_window_from"]
        )
    if state["state"] == CLOSED:
        if kind in FAILURE_KINDS or loss_counts:
            state = _trip(state, at, reason)
    elif state["state"] == OPEN:
        if kind in FAILURE_KINDS:
            state = {**state, "tripped_at": at, "reason": reason}  # cooldown restarts
    else:  # half-open
        if kind in FAILURE_KINDS or loss_counts:
            state = _trip(state, at, reason)
        elif kind == "success":
            successes = state["half_open_successes"] + 1
            if successes >= config.success_window:
                state = _transition(state, CLOSED, at, f"{successes} successes while half-open")
                state.update(half_open_successes=0, half_open_since=None, reason=None)
            else:
                state = {**state, "half_open_successes": successes}
    return {**state, "updated_at": at}


@dataclass(frozen=True)
class MemberRun:
    predictions: dict[str, pd.DataFrame]
    states: dict[str, dict]
    events: dict[str, dict]
    skipped: dict[str, str]


def run_members(
    member_calls: Mapping[str, Callable[[], pd.DataFrame]],
    states: Mapping[str, dict],
    at: datetime | str,
    config: BreakerConfig,
    integrity_errors: tuple[type[BaseException], ...] = (MemberIntegrityError,),
) -> MemberRun:
    """Call every member whose breaker lets it run, isolating failures: an exception, integrity
    error or invalid output of one member becomes that member's event (and opens its breaker),
    never an error of the run."""
    predictions, new_states, events, skipped = {}, {}, {}, {}
    for member in sorted(member_calls):
        state = advance(states.get(member) or new_state(member), at, config)
        if state["state"] == OPEN:
            skipped[member] = f"breaker open since {state['tripped_at']} ({state['reason']})"
            new_states[member] = state
            continue
        try:
            frame = member_calls[member]()
            check_member_frame(member, frame)
        except integrity_errors as exc:
            evt = event("integrity_failure", at, f"{type(exc).__name__}: {exc}")
        except EnsembleError as exc:
            evt = event("invalid_output", at, str(exc))
        except Exception as exc:  # any member failure is contained to that member
            evt = event("exception", at, f"{type(exc).__name__}: {exc}")
        else:
            evt = event("success", at, f"{len(frame)} rows")
            predictions[member] = frame
        events[member] = evt
        new_states[member] = apply_event(state, evt, config)
    return MemberRun(predictions, new_states, events, skipped)


def priors_id(class_priors: Sequence[float]) -> str:
    return content_id("priors", {"class_priors": [repr(float(p)) for p in class_priors]})


def fallback_chain(
    keys: pd.DataFrame,
    usable_predictions: Mapping[str, pd.DataFrame],
    weights: EnsembleWeights | None,
    previous_champion: pd.DataFrame | None = None,
    class_priors: Sequence[float] | None = None,
) -> pd.DataFrame:
    """One row per requested (symbol, ts) in ``keys``: the ensemble of the usable members' rows when
    any usable member predicted it; else the previous champion ensemble's row (symbol, ts, prob_*,
    weights_id, optional members_used); else the class priors. Raises naming the rows that none of
    the three can cover. Columns: symbol, ts, prob_*, predicted_direction, members_used, n_members,
    weights_id, fallback_used."""
    columns = [*KEY, *PROBABILITY_COLUMNS, "predicted_direction", "members_used", "n_members", "weights_id"]
    wanted = keys[KEY].drop_duplicates().reset_index(drop=True)
    parts = []
    remaining = wanted
    if usable_predictions:
        if weights is None:
            raise BreakerError(f"usable members {sorted(usable_predictions)} but no ensemble weights")
        in_keys = {m: f.merge(wanted, on=KEY, how="inner") for m, f in usable_predictions.items()}
        combined = combine(in_keys, weights)
        parts.append(combined[columns].assign(fallback_used="none"))
        remaining = _without(remaining, combined)
    if len(remaining) and previous_champion is not None:
        check_member_frame("previous_champion", previous_champion)
        if "weights_id" not in previous_champion.columns:
            raise BreakerError("previous champion rows need a weights_id column")
        champion = previous_champion.merge(remaining, on=KEY, how="inner")
        if len(champion):
            proba = champion[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64)
            champion = champion.assign(
                predicted_direction=proba.argmax(axis=1).astype(np.int16),
                members_used=champion.get("members_used", ""),
                n_members=champion.get("n_members", 0),
            )
            parts.append(champion[columns].assign(fallback_used="previous_champion"))
            remaining = _without(remaining, champion)
    if len(remaining) and class_priors is not None:
        priors = np.asarray(class_priors, dtype=np.float64)
        if priors.shape != (3,) or not np.isfinite(priors).all() or (priors < 0).any() or abs(priors.sum() - 1) > 1e-9:
            raise BreakerError(f"class priors {list(class_priors)} are not 3 probabilities summing to 1")
        filled = remaining.assign(
            **{c: priors[i] for i, c in enumerate(PROBABILITY_COLUMNS)},
            predicted_direction=np.int16(priors.argmax()),
            members_used="",
            n_members=0,
            weights_id=priors_id(priors),
        )
        parts.append(filled[columns].assign(fallback_used="class_priors"))
        remaining = remaining.iloc[0:0]
    if len(remaining):
        first = remaining.sort_values("ts").iloc[0]
        raise BreakerError(
            f"{len(remaining)} row(s) have no usable member, no previous champion row and no class priors; "
            f"first {first['symbol']} {pd.Timestamp(first['ts']).isoformat()}"
        )
    out = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
    if out is None:
        return pd.DataFrame(columns=[*columns, "fallback_used"])
    out["n_members"] = out["n_members"].astype(np.int64)
    out["predicted_direction"] = out["predicted_direction"].astype(np.int16)
    return out.sort_values(["ts", "symbol"], ignore_index=True)


def _without(keys: pd.DataFrame, covered: pd.DataFrame) -> pd.DataFrame:
    marked = keys.merge(covered[KEY].assign(_covered=True), on=KEY, how="left")
    return marked[marked["_covered"].isna()][KEY].reset_index(drop=True)
