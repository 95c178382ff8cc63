"""Circuit breakers (closed / open / half-open) as pure functions over JSON-safe dicts, isolated
member runs and the fallback chain (ensemble -> previous champion -> class priors)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.ml import breakers, ensemble
from pipeline_assets.ml.breakers import CLOSED, HALF_OPEN, OPEN, BreakerConfig, apply_event, event
from pipeline_assets.ml.ensemble import PROBABILITY_COLUMNS

T0 = pd.Timestamp("2024-03-01", tz="UTC")
CONFIG = BreakerConfig(cooldown_hours=6, success_window=3, loss_min_rows=50, loss_window_rows=200, loss_margin=0.02)


def hours(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=n)


def tripped(kind: str = "exception") -> dict:
    return apply_event(breakers.new_state("xgb"), event(kind, hours(0), "boom"), CONFIG)


@pytest.mark.parametrize("kind", breakers.FAILURE_KINDS)
def test_closed_trips_open_on_each_failure_kind_without_mutating_its_input(kind):
    state = breakers.new_state("xgb")
    before = copy.deepcopy(state)
    after = apply_event(state, event(kind, hours(0), "boom"), CONFIG)
    assert state == before
    assert after["state"] == OPEN and after["tripped_at"] == hours(0).isoformat()
    assert after["reason"] == f"{kind}: boom" and after["trips"] == 1
    assert after["last_transition"] == {
        "from": CLOSED,
        "to": OPEN,
        "at": hours(0).isoformat(),
        "reason": f"{kind}: boom",
    }
    assert json.loads(json.dumps(after)) == after  # JSON-safe
    assert apply_event(state, event("success", hours(0)), CONFIG)["state"] == CLOSED


def test_open_waits_for_the_cooldown_then_half_opens_at_a_fixed_time():
    state = tripped()
    assert breakers.advance(state, hours(5.99), CONFIG)["state"] == OPEN
    assert not breakers.is_usable(state, hours(5.99), CONFIG)
    # Whenever it is noticed, the half-open time is tripped_at + cooldown (batch invariant).
    late = breakers.advance(state, hours(30), CONFIG)
    assert late == breakers.advance(state, hours(6), CONFIG)
    assert late["state"] == HALF_OPEN and late["half_open_since"] == hours(6).isoformat()
    assert breakers.is_usable(state, hours(6), CONFIG)
    # A failure while open restarts the cooldown.
    again = apply_event(state, event("exception", hours(4), "still down"), CONFIG)
    assert again["state"] == OPEN and breakers.advance(again, hours(9), CONFIG)["state"] == OPEN
    assert breakers.advance(again, hours(10), CONFIG)["state"] == HALF_OPEN


def test_half_open_closes_after_the_success_window_or_reopens_on_failure():
    state = tripped()
    for n in (7, 8):
        state = apply_event(state, event("success", hours(n)), CONFIG)
        assert state["state"] == HALF_OPEN
    assert state["half_open_successes"] == 2
    closed = apply_event(state, event("success", hours(9)), CONFIG)
    assert closed["state"] == CLOSED and closed["reason"] is None and closed["half_open_successes"] == 0
    reopened = apply_event(state, event("integrity_failure", hours(9), "sha256 mismatch"), CONFIG)
    assert reopened["state"] == OPEN and reopened["tripped_at"] == hours(9).isoformat() and reopened["trips"] == 2
    assert breakers.advance(reopened, hours(14.5), CONFIG)["state"] == OPEN


def _losses(n: int, extra: float, seed: int = 0, start: float = 0.0):
    rng = np.random.default_rng(seed)
    baseline = rng.gamma(4.0, 0.25, n)
    return [hours(start + i / 4) for i in range(n)], baseline + extra + rng.normal(0, 0.3, n), baseline


def test_realised_loss_rules_margin_and_bootstrap():
    ts, model, baseline = _losses(120, 0.10)
    worse = breakers.realised_loss_event(hours(40), ts, model, baseline, CONFIG)
    assert worse["worse"] and worse["rows"] == 120 and worse["difference"] == pytest.approx(0.10, abs=0.06)
    ts, model, baseline = _losses(120, 0.0)
    fine = breakers.realised_loss_event(hours(40), ts, model, baseline, CONFIG)
    assert not fine["worse"]
    few = breakers.realised_loss_event(hours(40), ts[:49], model[:49] + 5, baseline[:49], CONFIG)
    assert not few["worse"] and "no verdict" in few["detail"]
    bootstrap = BreakerConfig(loss_rule="bootstrap", loss_min_rows=50, bootstrap_block=8)
    ts, model, baseline = _losses(200, 0.25)
    strong = breakers.realised_loss_event(hours(60), ts, model, baseline, bootstrap)
    assert strong["worse"] and strong["ci95"][0] > 0
    ts, model, baseline = _losses(200, 0.03)
    # A small difference the margin rule flags is not significant for the bootstrap rule.
    assert breakers.realised_loss_event(hours(60), ts, model, baseline, CONFIG)["worse"]
    weak = breakers.realised_loss_event(hours(60), ts, model, baseline, bootstrap)
    assert not weak["worse"] and weak["ci95"][0] <= 0
    # Only the newest loss_window_rows rows are judged.
    ts, model, baseline = _losses(400, 0.0)
    model[:200] += 1.0
    assert not breakers.realised_loss_event(hours(200), ts, model, baseline, CONFIG)["worse"]


def test_worse_realised_loss_trips_closed_and_half_open_only_on_fresh_evidence():
    ts, model, baseline = _losses(120, 0.2)
    evt = breakers.realised_loss_event(hours(31), ts, model, baseline, CONFIG)
    state = apply_event(breakers.new_state("river"), evt, CONFIG)
    assert state["state"] == OPEN and state["reason"].startswith("realised_loss: mean log loss +0.")
    half = breakers.advance(state, hours(40), CONFIG)
    assert half["state"] == HALF_OPEN and half["loss_window_from"] == hours(37).isoformat()
    # The same old rows (predicted before readmission) do not trip it again ...
    stale = breakers.realised_loss_event(hours(41), ts, model, baseline, CONFIG)
    assert apply_event(half, stale, CONFIG)["state"] == HALF_OPEN
    # ... rows predicted since readmission do.
    ts2, model2, baseline2 = _losses(120, 0.2, seed=1, start=37)
    fresh = breakers.realised_loss_event(hours(80), ts2, model2, baseline2, CONFIG)
    assert apply_event(half, fresh, CONFIG)["state"] == OPEN
    with pytest.raises(breakers.BreakerError, match=r"river: event success at .* older than"):
        apply_event(state, event("success", hours(30)), CONFIG)


def _member_frame(keys: pd.DataFrame, proba) -> pd.DataFrame:
    return keys.assign(**{c: proba[i] for i, c in enumerate(PROBABILITY_COLUMNS)})


KEYS = pd.DataFrame({"symbol": ["AAA", "BBB", "AAA", "BBB"], "ts": [hours(1), hours(1), hours(2), hours(2)]})


def test_one_failing_member_never_fails_the_combined_prediction():
    calls = {"broken": 0}

    def broken():
        calls["broken"] += 1
        raise RuntimeError("xgboost booster corrupted")

    def good():
        return _member_frame(KEYS, (0.2, 0.3, 0.5))

    def nan_output():
        return _member_frame(KEYS, (np.nan, 0.5, 0.5))

    class StoreIntegrityError(Exception):
        pass

    def bad_bytes():
        raise StoreIntegrityError("artifact sha256 abc does not match")

    members = {"broken": broken, "good": good, "nan": nan_output, "tampered": bad_bytes}
    run = breakers.run_members(members, {}, hours(3), CONFIG, integrity_errors=(StoreIntegrityError,))
    assert set(run.predictions) == {"good"}
    assert {m: s["state"] for m, s in run.states.items()} == {
        "broken": OPEN,
        "good": CLOSED,
        "nan": OPEN,
        "tampered": OPEN,
    }
    assert (
        run.events["broken"]["kind"] == "exception"
        and "RuntimeError: xgboost booster corrupted" in (run.states["broken"]["reason"])
    )
    assert run.events["nan"]["kind"] == "invalid_output" and "member 'nan'" in run.events["nan"]["detail"]
    assert run.events["tampered"]["kind"] == "integrity_failure"
    weights = ensemble.uniform_weights(["broken", "good", "nan", "tampered"], hours(3))
    out = breakers.fallback_chain(KEYS, run.predictions, weights, class_priors=(0.4, 0.2, 0.4))
    assert set(out["fallback_used"]) == {"none"} and set(out["members_used"]) == {"good"}
    np.testing.assert_allclose(out[list(PROBABILITY_COLUMNS)].to_numpy(), [[0.2, 0.3, 0.5]] * 4)
    # Next hour the open breakers are skipped: the broken member is not even called.
    second = breakers.run_members(members, run.states, hours(4), CONFIG, integrity_errors=(StoreIntegrityError,))
    assert calls["broken"] == 1 and "breaker open since" in second.skipped["broken"]
    assert set(second.predictions) == {"good"}
    # After the cooldown it is tried again (half-open) and its failure reopens it.
    third = breakers.run_members(members, second.states, hours(9), CONFIG, integrity_errors=(StoreIntegrityError,))
    assert calls["broken"] == 2 and third.states["broken"]["state"] == OPEN
    assert third.states["broken"]["last_transition"]["from"] == HALF_OPEN


def test_fallback_chain_goes_to_previous_champion_then_class_priors_per_row():
    weights = ensemble.uniform_weights(["xgb", "linear"], hours(3))
    champion = _member_frame(KEYS.iloc[:3], (0.1, 0.1, 0.8)).assign(weights_id="ens-previous", members_used="xgb")
    partial = {"linear": _member_frame(KEYS.iloc[:1], (0.6, 0.2, 0.2))}
    out = breakers.fallback_chain(KEYS, partial, weights, champion, class_priors=(0.45, 0.1, 0.45))
    assert list(out["fallback_used"]) == ["none", "previous_champion", "previous_champion", "class_priors"]
    assert list(out["weights_id"][:3]) == [weights.weights_id, "ens-previous", "ens-previous"]
    assert out["weights_id"].iloc[3] == breakers.priors_id((0.45, 0.1, 0.45))
    np.testing.assert_allclose(out.loc[3, list(PROBABILITY_COLUMNS)].to_numpy(dtype=float), [0.45, 0.1, 0.45])
    assert list(out["predicted_direction"]) == [0, 2, 2, 0] and list(out["n_members"]) == [1, 0, 0, 0]
    # No member at all, no champion: class priors everywhere.
    only_priors = breakers.fallback_chain(KEYS, {}, None, None, class_priors=(0.2, 0.5, 0.3))
    assert set(only_priors["fallback_used"]) == {"class_priors"} and len(only_priors) == 4
    # Nothing can cover a row: named, not dropped.
    with pytest.raises(
        breakers.BreakerError, match=r"1 row\(s\) have no usable member.*BBB 2024-03-01T02:00:00\+00:00"
    ):
        breakers.fallback_chain(KEYS, partial, weights, champion, class_priors=None)
    with pytest.raises(breakers.BreakerError, match="not 3 probabilities"):
        breakers.fallback_chain(KEYS, {}, None, None, class_priors=(0.5, 0.5, 0.5))


def _gate_frames(n_hours: int, wrong_from: pd.Timestamp):
    """One symbol, hourly rows from T0; labels cycle through the classes and mature 4 h after the
    bar closes. Member 'good' gives the label 0.9; member 'bad' does too, except on bars from
    ``wrong_from`` on, where it gives the label 0.01."""
    ts = pd.date_range(T0, periods=n_hours, freq="h")
    y = np.arange(n_hours) % 3
    labels = pd.DataFrame({"symbol": "BTCUSDT", "ts": ts, "direction": y, "matured_at": ts + pd.Timedelta(hours=5)})
    right = np.full((n_hours, 3), 0.05)
    right[np.arange(n_hours), y] = 0.9
    wrong = right.copy()
    late = np.asarray(ts >= wrong_from)
    wrong[late] = 0.495
    wrong[np.flatnonzero(late), y[late]] = 0.01
    frames = [
        pd.DataFrame(p, columns=list(PROBABILITY_COLUMNS)).assign(member=m, symbol="BTCUSDT", ts=ts)
        for m, p in (("good", right), ("bad", wrong))
    ]
    return pd.concat(frames, ignore_index=True), labels


def test_realised_loss_gate_judges_only_rows_matured_before_the_day():
    priors = np.full(3, 1 / 3)
    day = hours(200)
    # 'bad' is wrong on every bar from hour 190: those labels mature from hour 195, some before the day
    history, labels = _gate_frames(260, hours(190))
    verdicts = breakers.realised_loss_gate(history, labels, day, ["good", "bad"], CONFIG, priors)
    assert not verdicts["good"]["worse"] and verdicts["good"]["rows"] == 195
    assert verdicts["bad"]["rows"] == 195 and verdicts["bad"]["window_end"] == hours(194).isoformat()
    # 5 wrong rows of 195 are not enough to lose to the priors by the margin...
    assert not verdicts["bad"]["worse"]
    # ...and what 'bad' does on bars whose labels mature after the day changes nothing
    changed = history.copy()
    after = (changed["member"] == "bad") & (changed["ts"] >= hours(195))  # labels mature at >= the day
    changed.loc[after, list(PROBABILITY_COLUMNS)] = [1.0, 0.0, 0.0]
    assert breakers.realised_loss_gate(changed, labels, day, ["bad"], CONFIG, priors)["bad"] == verdicts["bad"]
    # wrong on every matured row of the window: left out
    history, labels = _gate_frames(260, T0)
    verdicts = breakers.realised_loss_gate(history, labels, day, ["bad"], CONFIG, priors)
    assert verdicts["bad"]["worse"] and verdicts["bad"]["model_log_loss"] > verdicts["bad"]["baseline_log_loss"]
    with pytest.raises(breakers.BreakerError, match="timezone-aware"):
        breakers.realised_loss_gate(history, labels, pd.Timestamp("2024-03-09"), ["bad"], CONFIG, priors)
