from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.contracts.headlines import validate_headlines
from pipeline_assets.contracts.ohlcv import ContractInputError, rule_violations, validate_ohlcv

START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 3, 2, tzinfo=UTC)


def _bars(n: int = 6) -> pd.DataFrame:
    ts = pd.date_range(START, periods=n, freq="h")
    close = 100 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {"ts": ts, "open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": 5.0}
    )


def test_clean_bars_pass_unchanged():
    bars = _bars()
    result = validate_ohlcv(bars.sample(frac=1, random_state=1), "BTCUSDT", START, END)
    assert result.rejected.empty
    assert list(result.valid["ts"]) == list(bars["ts"])  # sorted back into time order
    assert (result.valid["symbol"] == "BTCUSDT").all()


def test_each_bad_row_is_rejected_with_its_reason():
    bars = _bars(8)
    bars.loc[0, "close"] = np.nan
    bars.loc[1, ["high", "low"]] = [90.0, 95.0]
    bars.loc[2, "open"] = -1.0
    bars.loc[3, "volume"] = -5.0
    bars.loc[4, "ts"] = bars.loc[4, "ts"] + pd.Timedelta(minutes=30)
    bars.loc[5, "high"] = bars.loc[5, "close"] - 0.1  # close above high
    result = validate_ohlcv(bars, "ETHUSDT", START, END)
    reasons = dict(zip(result.rejected["ts"].dt.strftime("%H:%M"), result.rejected["reason"], strict=True))
    assert reasons["00:00"] == "NaN in close"
    assert reasons["01:00"] == "high < low"
    assert "non-positive price in open" in reasons["02:00"]
    assert reasons["03:00"] == "negative volume"
    assert reasons["04:30"] == "ts missing or not aligned to the hour"
    assert reasons["05:00"] == "open/close outside [low, high]"
    assert len(result.valid) == 2
    assert result.reasons["high < low"] == 1


def test_duplicates_identical_keep_one_conflicting_reject_all():
    bars = _bars(4)
    identical = bars.iloc[[1]]
    conflicting = bars.iloc[[2]].assign(close=bars.loc[2, "close"] + 0.5)
    result = validate_ohlcv(pd.concat([bars, identical, conflicting]), "SOLUSDT", START, END)
    assert sorted(result.valid["ts"].dt.hour) == [0, 1, 3]
    reasons = result.rejected["reason"].tolist()
    assert reasons.count("duplicate ts (identical copy of an accepted bar)") == 1
    assert reasons.count("conflicting duplicate ts (2 different bars)") == 2


def test_bars_outside_the_partition_window_are_rejected():
    bars = _bars(3)
    bars.loc[2, "ts"] = END
    result = validate_ohlcv(bars, "BTCUSDT", START, END)
    assert result.rejected["reason"].iloc[0].startswith("ts outside partition window")


def test_rule_violations_flag_out_of_order_timestamps():
    bars = _bars(4).iloc[[0, 2, 1, 3]].reset_index(drop=True)
    masks = rule_violations(bars, "BTCUSDT")
    assert masks["unique_monotonic_ts"].tolist() == [False, False, True, False]


def test_naive_timestamps_and_missing_columns_are_input_errors():
    bars = _bars(2)
    with pytest.raises(ContractInputError, match="BNBUSDT: column 'ts' must be tz-aware UTC"):
        validate_ohlcv(bars.assign(ts=bars["ts"].dt.tz_localize(None)), "BNBUSDT", START, END)
    with pytest.raises(ContractInputError, match=r"BNBUSDT: frame lacks column\(s\) \['volume'\]"):
        validate_ohlcv(bars.drop(columns=["volume"]), "BNBUSDT", START, END)


def _headline_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["published_at", "symbol", "source", "headline"])
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    return frame


def test_headline_contract_rejects_with_reasons():
    frame = _headline_frame(
        [
            ("2024-03-01T01:00Z", "BTCUSDT", "wire", "Bitcoin steady"),
            ("2024-03-01T01:00Z", "BTCUSDT", "wire", "Bitcoin steady"),  # exact repeat
            ("2024-03-01T02:00Z", "BTCUSDT", "wire", "   "),
            ("2024-03-02T00:00Z", "BTCUSDT", "wire", "Tomorrow's news"),
            ("2024-03-01T03:00Z", "ETHUSDT", "wire", "Ethereum steady"),
            ("2024-03-01T04:00Z", "BTCUSDT", "other", "Bitcoin steady"),  # another source: kept
        ]
    )
    result = validate_headlines(frame, "BTCUSDT", START, END)
    assert result.valid["source"].tolist() == ["wire", "other"]
    assert result.rejected["reason"].tolist() == [
        "duplicate headline (same source, time and text)",
        "empty headline",
        "published_at outside partition window",
        "symbol is not BTCUSDT",
    ]
    with pytest.raises(ContractInputError, match="column 'published_at' must be tz-aware UTC"):
        validate_headlines(frame.assign(published_at=frame["published_at"].dt.tz_localize(None)), "BTCUSDT", START, END)


def test_contracts_are_declared_once_and_match_the_sql_tables(warehouse_url):
    from pipeline_assets.assets.ingestion import RAW_OHLCV_SCHEMA, raw_ohlcv
    from pipeline_assets.contracts.spec import CONTRACTS, OHLCV_CONTRACT
    from pipeline_assets.store.db import connect

    with connect(warehouse_url) as conn:
        for contract in CONTRACTS:
            types = dict(
                conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
                    (contract.table,),
                ).fetchall()
            )
            for column in contract.columns:
                assert types.get(column.name) == column.sql_type, (contract.table, column.name)
            assert all(rule.description and rule.severity in ("ERROR", "WARN") for rule in contract.rules)
    # the UI's column schema and the blocking checks' descriptions come from the declaration
    assert [c.name for c in RAW_OHLCV_SCHEMA.columns] == [c.name for c in OHLCV_CONTRACT.columns]
    descriptions = {spec.name: spec.description for spec in raw_ohlcv.check_specs}
    assert descriptions["high_gte_low"] == OHLCV_CONTRACT.rule("high_gte_low").description
    assert raw_ohlcv.metadata_by_key[raw_ohlcv.key]["contract"].value["rules"][0]["name"] == "no_nan"
