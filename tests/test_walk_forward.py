"""Walk-forward evaluation: point-in-time folds, every metric beside its baselines, calibration,
and a strategy that trades at the next open and pays for its turnover."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.ml import direction_xgb
from pipeline_assets.ml import walk_forward as wf
from pipeline_assets.ml.baselines import class_priors
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS

HOUR = pd.Timedelta(hours=1)
# small, fast boosting: the folds are what is under test, not XGBoost
FAST = direction_xgb.XgbTrainingParams(n_estimators=40, learning_rate=0.3, early_stopping_rounds=10)


def _frame(days: int, signal: bool, seed: int = 0, symbols=("AAA", "BBB")) -> pd.DataFrame:
    """Hourly rows whose forward return is the next open-to-open move: driven by the first feature
    (signal) or by nothing the model sees (noise). Labels mature 5 h after their bar."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=days * 24, freq="h", tz="UTC")
    frames = []
    for symbol in symbols:
        x = rng.normal(0, 1, (len(ts), len(MODEL_FEATURE_COLUMNS)))
        driver = x[:, 0] if signal else rng.normal(0, 1, len(ts))
        forward = 0.01 * driver + rng.normal(0, 0.01, len(ts))
        direction = np.where(forward < -0.005, 0, np.where(forward > 0.005, 2, 1))
        frame = pd.DataFrame(x, columns=list(MODEL_FEATURE_COLUMNS))
        frame.insert(0, "ts", ts)
        frame.insert(0, "symbol", symbol)
        frames.append(frame.assign(direction=direction, forward_return=forward, matured_at=ts + 5 * HOUR))
    return pd.concat(frames, ignore_index=True)


def _prices(frame: pd.DataFrame) -> pd.DataFrame:
    """Opens such that open(t + 2h) / open(t + 1h) - 1 is row t's forward return; the close of a bar
    is the next open."""
    out = []
    for symbol, rows in frame.groupby("symbol"):
        rows = rows.sort_values("ts")
        ts = pd.date_range(rows["ts"].min(), rows["ts"].max() + 2 * HOUR, freq="h")
        opens = np.concatenate([[100.0, 100.0], 100.0 * np.cumprod(1.0 + rows["forward_return"].to_numpy())])
        out.append(pd.DataFrame({"symbol": symbol, "ts": ts, "open": opens, "close": np.r_[opens[1:], opens[-1]]}))
    return pd.concat(out, ignore_index=True)


@pytest.fixture(scope="module")
def signal_report() -> wf.WalkForwardReport:
    frame = _frame(30, True)
    return wf.walk_forward(frame, 10, 5, 200, FAST, prices=_prices(frame))


def test_a_planted_signal_beats_every_baseline(signal_report):
    o = signal_report.overall
    assert o["folds"] == 4 and o["rows"] == 4 * 5 * 24 * 2 and o["rows_before_first_test"] == 10 * 24 * 2
    assert o["beats_baselines"] and o["verdict"].startswith("beats class priors and persistence")
    for name in ("class_priors", "persistence"):
        for metric in ("log_loss", "brier"):
            assert o["differences"][f"{metric}_minus_{name}"]["ci95"][1] < 0, (metric, name)
    assert o["differences"]["accuracy_minus_majority_class"]["ci95"][0] > 0
    assert o["log_loss"] < o["priors_log_loss"] and o["brier"] < o["priors_brier"]
    assert o["balanced_accuracy"] > o["metrics"]["majority_class"]["balanced_accuracy"] + 0.1
    assert o["ic_mean"] > 0.4 and o["icir"] > 2 and signal_report.folds["beats_baselines"].all()
    # each fold's metrics stand beside that fold's baselines
    folds = signal_report.folds
    assert (folds["log_loss"] < folds["priors_log_loss"]).all() and (folds["log_loss_minus_priors_ci_high"] < 0).all()
    # per-fold ECE is the calibration of that fold's rows
    last = signal_report.predictions[signal_report.predictions["fold"] == 3]
    _, ece = wf.calibration_table(last["direction"].to_numpy(), last[list(wf.PROBABILITY_COLUMNS)].to_numpy())
    assert folds["ece"].iloc[3] == pytest.approx(ece)
    # the signal trades profitably after fees, better than holding
    strategy = o["strategy"]
    assert strategy["strategy"]["total_return"] > 0.5 and strategy["strategy"]["sharpe"] > 5
    assert strategy["strategy"]["sharpe"] > strategy["buy_and_hold"]["sharpe"]
    assert strategy["flat"]["total_return"] == 0.0 and len(signal_report.equity) == 20 * 24
    text = signal_report.to_markdown()
    assert "beats class priors and persistence" in text and "Calibration" in text and "buy_and_hold" in text


def test_noise_does_not_beat_class_priors_and_the_report_says_so():
    report = wf.walk_forward(_frame(30, False, seed=1), 10, 5, 200, FAST)
    o = report.overall
    assert not o["beats_baselines"] and "does NOT beat class priors" in o["verdict"]
    assert o["differences"]["log_loss_minus_class_priors"]["ci95"][1] >= 0
    assert abs(o["ic_mean"]) < 0.1
    text = report.to_markdown()
    assert "does NOT beat class priors" in text and "not simulated: no prices given" in text
    assert not report.folds["beats_baselines"].any() and report.equity.empty


def test_no_row_is_predicted_by_a_model_whose_labels_matured_after_its_prediction_time(monkeypatch):
    frame = _frame(20, True, seed=4)
    # some labels arrive late (a delayed feed): a purge by a fixed horizon would let them leak
    late = np.random.default_rng(5).random(len(frame)) < 0.15
    frame.loc[late, "matured_at"] = frame.loc[late, "ts"] + 40 * HOUR
    calls = []
    train = direction_xgb.train_direction_model

    def recording(train_frame, params):
        trained = train(train_frame, params)
        calls.append((train_frame, params, trained))
        return trained

    monkeypatch.setattr(direction_xgb, "train_direction_model", recording)
    for window in ("rolling", "expanding"):
        calls.clear()
        report = wf.walk_forward(frame, 6, 4, 150, FAST, window=window)
        folds, rows = report.folds, report.predictions
        assert len(calls) == len(folds) == 4 and report.overall["folds_skipped"] == 0
        for (seen, params, trained), fold in zip(calls, folds.itertuples(), strict=True):
            assert params.class_weight == "balanced" and params.min_rows == 150
            # the recorded boundary is the real one, and no training label matured after the block began
            assert seen["matured_at"].max() == fold.labels_matured_until <= fold.test_start
            assert (seen["ts"] < fold.test_start).all() and len(seen) == fold.train_rows
            in_window = frame[(frame["ts"] < fold.test_start) & (frame["ts"] >= seen["ts"].min())]
            assert fold.purged_rows == int((in_window["matured_at"] > fold.test_start).sum()) > 0
            # every row of the block is predicted by this fold's model and no other
            mine = rows[rows["fold"] == fold.fold]
            # late labels that had matured are used
            assert (seen["matured_at"] - seen["ts"] == 40 * HOUR).any()
            # the baselines of the fold are those of its own training window
            y = frame.set_index(["symbol", "ts"]).loc[list(zip(mine["symbol"], mine["ts"], strict=True)), "direction"]
            priors = class_priors(seen["direction"].to_numpy())
            assert fold.priors_log_loss == pytest.approx(-np.log(priors[y.to_numpy()]).mean())
            if window == "rolling":
                assert seen["ts"].min() >= fold.test_start - pd.Timedelta(days=6)
            else:
                assert seen["ts"].min() == frame["ts"].min()
            assert ((mine["ts"] >= fold.test_start) & (mine["ts"] < fold.test_end)).all()
            assert (mine["model_labels_matured_until"] <= mine["predicted_at"]).all()
            assert (mine["predicted_at"] == mine["ts"] + HOUR).all()
            expected = direction_xgb.predict_proba(trained.model, mine[["symbol", "ts"]].merge(frame))
            np.testing.assert_array_equal(mine[list(wf.PROBABILITY_COLUMNS)].to_numpy(), expected)
        second = rows[rows["fold"] == 1]
        others = direction_xgb.predict_proba(calls[0][2].model, second[["symbol", "ts"]].merge(frame))
        assert not np.allclose(others, second[list(wf.PROBABILITY_COLUMNS)].to_numpy())
        # every row after the warm-up is predicted exactly once
        assert not rows.duplicated(["symbol", "ts"]).any()
        assert len(rows) == int((frame["ts"] >= folds["test_start"].iloc[0]).sum())
    assert folds["train_rows"].is_monotonic_increasing  # expanding windows only grow


def test_folds_that_cannot_be_trained_are_listed_and_every_row_is_accounted_for():
    frame = _frame(14, True, seed=6)
    frame = frame[(frame["ts"] < "2024-01-05") | (frame["ts"] >= "2024-01-08")]  # a three-day outage
    report = wf.walk_forward(frame, 4, 2, 100, FAST)
    o, skipped = report.overall, report.skipped
    # blocks from Jan 7 and Jan 9 have too few matured rows in their window; Jan 5 has nothing to test
    assert list(skipped["test_start"].dt.day) == [7, 9] and list(skipped["train_rows"]) == [96, 40]
    assert skipped["reason"].str.contains("< min_train_rows").all()
    assert list(report.folds["test_start"].dt.day) == [11, 13]
    assert o["folds_skipped"] == 2 and o["rows_not_evaluated"] == 48 + 96
    assert o["rows_before_first_test"] + o["rows_not_evaluated"] + o["rows"] == len(frame)
    text = report.to_markdown()
    assert "Skipped folds" in text and "2 folds skipped (144 rows not evaluated)" in text


def test_persistence_uses_the_newest_label_matured_by_the_prediction_time():
    ts = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    history = pd.DataFrame({"symbol": "A", "ts": ts, "direction": [1, 0, 2, 1, 2, 0], "matured_at": ts + 5 * HOUR})
    history.loc[2, "matured_at"] = ts[2] + 20 * HOUR  # bar 2's label arrives late, at 22:00
    at = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 05:00", "2024-01-01 07:00", "2024-01-01 21:00"], utc=True)
    rows = pd.DataFrame({"symbol": ["A", "A", "A", "A", "B"], "ts": [*at, at[-1]]})
    # predicted at ts + 1h. 01:00: nothing matured; 06:00: bars 0, 1 -> bar 1; 08:00: bars 0, 1, 3 -> bar 3
    # (bar 2 is late); 22:00: everything, and bar 5 is newer than the late bar 2 arriving then; B has none
    assert wf.last_matured_labels(rows, history).tolist() == [-1, 0, 1, 0, -1]


def test_the_strategy_trades_at_the_next_open_never_at_the_signal_bar_close():
    ts = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    prices = pd.DataFrame(
        {
            "symbol": "AAA",
            "ts": ts,
            "open": [100.0, 110.0, 121.0, 100.0, 100.0, 100.0],
            "close": [108.0, 125.0, 90.0, 95.0, 100.0, 100.0],
        }
    )
    positions = pd.DataFrame({"symbol": "AAA", "ts": ts[:3], "position": [1, 1, -1]})
    equity, stats, notes = wf.simulate_strategy(positions, prices, fee_bps=0.0, slippage_bps=0.0)
    # bar 0's signal: open(1) -> open(2) = +10%; bar 1: open(2) -> open(3) = 100/121 - 1; bar 2 short: 0%
    next_open = np.array([0.10, 100 / 121 - 1, 0.0])
    np.testing.assert_allclose(equity["strategy"].to_numpy(), np.cumprod(1 + next_open))
    at_close = np.array([1, 1, -1]) * (np.array([125.0, 90.0, 95.0]) / np.array([108.0, 125.0, 90.0]) - 1)
    assert not np.allclose(equity["strategy"].to_numpy(), np.cumprod(1 + at_close))
    # the hour's return is known when the exit open prints
    assert list(equity["ts"]) == list(ts[:3] + 2 * HOUR)
    assert stats["buy_and_hold"]["total_return"] == pytest.approx(100 / 110 - 1)
    assert stats["strategy"]["max_drawdown"] == pytest.approx(1 - 100 / 121)
    assert notes["positions_not_taken_missing_price"] == 0


def test_fees_and_slippage_cost_exactly_the_traded_notional():
    ts = pd.date_range("2024-01-01", periods=8, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    prices = pd.concat(
        [pd.DataFrame({"symbol": s, "ts": ts, "open": 100 * np.cumprod(1 + rng.normal(0, 0.01, 8))}) for s in "AB"]
    )
    positions = pd.DataFrame(
        {"symbol": ["A"] * 4 + ["B"] * 4, "ts": list(ts[:4]) * 2, "position": [1, 1, -1, 0, 0, -1, -1, 1]}
    )
    free, free_stats, _ = wf.simulate_strategy(positions, prices, fee_bps=0.0, slippage_bps=0.0)
    paid, paid_stats, _ = wf.simulate_strategy(positions, prices, fee_bps=10.0, slippage_bps=5.0)

    def hourly(equity: pd.DataFrame, name: str) -> np.ndarray:
        curve = equity[name].to_numpy()
        return curve / np.concatenate([[1.0], curve[:-1]]) - 1

    # turnover per hour: A 1, 0, 2, 1 and B 0, 1, 0, 2, each symbol half the capital
    turnover = np.array([1 + 0, 0 + 1, 2 + 0, 1 + 2]) / 2
    np.testing.assert_allclose(hourly(free, "strategy") - hourly(paid, "strategy"), 0.0015 * turnover, atol=1e-12)
    assert paid_stats["strategy"]["turnover_per_hour"] == pytest.approx(turnover.mean())
    assert paid_stats["strategy"]["trades"] == 5
    # buy-and-hold pays for buying in once
    bh = hourly(free, "buy_and_hold") - hourly(paid, "buy_and_hold")
    np.testing.assert_allclose(bh, [0.0015, 0, 0, 0], atol=1e-12)
    assert free_stats["flat"]["total_return"] == paid_stats["flat"]["total_return"] == 0.0


def test_a_missing_open_means_no_trade_and_is_counted():
    ts = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    prices = pd.DataFrame({"symbol": "AAA", "ts": ts, "open": [100.0, 110.0, 121.0, 100.0, 120.0, 100.0]})
    prices = prices[prices["ts"] != ts[3]]
    positions = pd.DataFrame({"symbol": "AAA", "ts": ts[:4], "position": [1, 1, 1, 0]})
    equity, stats, notes = wf.simulate_strategy(positions, prices, fee_bps=0.0, slippage_bps=0.0)
    # bar 1 exits and bar 2 enters at the missing open(3): neither position is taken
    assert notes["positions_not_taken_missing_price"] == 2
    assert notes["examples_not_taken"] == [f"AAA {ts[1].isoformat()}", f"AAA {ts[2].isoformat()}"]
    np.testing.assert_allclose(equity["strategy"].to_numpy(), [1.1, 1.1, 1.1, 1.1])
    assert stats["strategy"]["exposure"] == 0.25
    # with fees: in at open(1), out at open(2) since the next position cannot be taken
    paid, _, _ = wf.simulate_strategy(positions, prices, fee_bps=10.0, slippage_bps=0.0)
    np.testing.assert_allclose(paid["strategy"].to_numpy(), np.cumprod(1 + np.array([0.1 - 0.001, -0.001, 0, 0])))
    # buy-and-hold marks through the gap: the move lands on the next open that exists
    assert stats["buy_and_hold"]["total_return"] == pytest.approx(100 / 110 - 1)
    with pytest.raises(wf.WalkForwardError, match="duplicate bar for AAA at 2024-01-01T01:00"):
        wf.simulate_strategy(positions, pd.concat([prices, prices.iloc[[1]]]), 0.0, 0.0)
    with pytest.raises(wf.WalkForwardError, match="no bars for BBB"):
        wf.simulate_strategy(positions.assign(symbol="BBB"), prices, 0.0, 0.0)


def test_calibration_table_and_ece_on_a_hand_made_example():
    y = np.array([0, 1, 0, 2, 1])
    proba = np.array(
        [
            [0.9, 0.05, 0.05],  # confidence 0.9 -> bin 0.9-1.0, hit
            [0.95, 0.03, 0.02],  # 0.95 -> bin 0.9-1.0, miss
            [0.2, 0.45, 0.35],  # 0.45 -> bin 0.4-0.5, miss
            [0.5, 0.2, 0.3],  # 0.5 on the edge -> bin 0.5-0.6, miss
            [0.3, 0.4, 0.3],  # 0.4 on the edge -> bin 0.4-0.5, hit
        ]
    )
    table, ece = wf.calibration_table(y, proba)
    assert len(table) == 10 and table["rows"].sum() == 5
    by_bin = table.set_index("bin")
    assert by_bin.loc["0.9-1.0", "rows"] == 2 and by_bin.loc["0.9-1.0", "confidence"] == pytest.approx(0.925)
    assert by_bin.loc["0.9-1.0", "hit_rate"] == 0.5
    assert by_bin.loc["0.4-0.5", "rows"] == 2 and by_bin.loc["0.4-0.5", "hit_rate"] == 0.5
    assert by_bin.loc["0.5-0.6", "rows"] == 1 and by_bin.loc["0.5-0.6", "hit_rate"] == 0.0
    assert by_bin.loc["0.1-0.2", "rows"] == 0 and np.isnan(by_bin.loc["0.1-0.2", "confidence"])
    # rows-weighted: (2 * |0.925 - 0.5| + 2 * |0.425 - 0.5| + 1 * |0.5 - 0|) / 5, not the mean of the gaps
    assert ece == pytest.approx((2 * 0.425 + 2 * 0.075 + 0.5) / 5)
    perfect, zero = wf.calibration_table(np.array([0, 1]), np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    assert zero == 0.0 and perfect.loc[9, "rows"] == 2


def test_class_weight_is_chosen_by_walk_forward_log_loss(monkeypatch):
    frame = _frame(16, True, seed=3)
    seen = []
    train = direction_xgb.train_direction_model

    def recording(train_frame, params):
        seen.append(params.class_weight)
        return train(train_frame, params)

    monkeypatch.setattr(direction_xgb, "train_direction_model", recording)
    # the (frame, prices, WalkForwardParams) form assets/models.py uses
    bundle = wf.WalkForwardParams(train_days=6, step_days=5, min_train_rows=150, xgb=FAST)
    choice = wf.choose_class_weight(frame, _prices(frame), bundle)
    assert seen == ["balanced"] * 2 + [None] * 2
    assert set(choice["log_loss"]) == set(choice["reports"]) == {"balanced", "None"}
    best = min(choice["log_loss"], key=choice["log_loss"].get)
    assert choice["chosen"] == (None if best == "None" else best)
    assert choice["log_loss"]["balanced"] != choice["log_loss"]["None"]
    assert choice["reports"]["None"]["log_loss"] == choice["log_loss"]["None"]
    assert "strategy_sharpe" in choice["reports"]["balanced"]
    assert choice["reports"]["None"]["folds"] == choice["reports"]["balanced"]["folds"] == 2
    json.dumps(choice, allow_nan=False)  # Dagster metadata


def test_bad_inputs_are_refused_with_the_symbol_time_and_column():
    frame = _frame(3, True)
    with pytest.raises(wf.WalkForwardError, match=r"no fold could be evaluated .* ends before the first test block"):
        wf.walk_forward(frame, 10, 5, 200, FAST)
    with pytest.raises(wf.WalkForwardError, match="2024-01-03: 88 matured training rows < min_train_rows"):
        wf.walk_forward(frame, 2, 1, 200, FAST)
    with pytest.raises(wf.WalkForwardError, match=r"lacks column\(s\) \['matured_at'\]"):
        wf.walk_forward(frame.drop(columns="matured_at"), 1, 1, 10, FAST)
    holey = frame.copy()
    holey.loc[30, MODEL_FEATURE_COLUMNS[2]] = np.nan
    with pytest.raises(wf.WalkForwardError, match=f"{MODEL_FEATURE_COLUMNS[2]}' is missing for AAA at 2024-01-02T06"):
        wf.walk_forward(holey, 1, 1, 10, FAST)
    early = frame.copy()
    early.loc[frame.index[-1], "matured_at"] = early.loc[frame.index[-1], "ts"] + HOUR
    with pytest.raises(wf.WalkForwardError, match="matured_at is not after the prediction time.* BBB at 2024-01-03T23"):
        wf.walk_forward(early, 1, 1, 10, FAST)
    with pytest.raises(wf.WalkForwardError, match="window must be one of"):
        wf.walk_forward(frame, 1, 1, 10, FAST, window="anchored")
    with pytest.raises(wf.WalkForwardError, match="class_weight must be one of"):
        wf.walk_forward(frame, 1, 1, 10, FAST, class_weight="inverse")
