"""The malformed-input corpus: every case goes through the raw_ohlcv asset exactly as a user's CSV
would, and every input row is classified as stored, quarantined, refused loudly (the whole file,
with its path and cause), silently dropped or stored wrongly. The last two must be zero.

`pytest -s tests/reliability` prints the per-case table.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_helpers import run_assets

from pipeline_assets.resources import MarketDataResource
from pipeline_assets.store.db import connect

DAY = "2024-03-05"
HEADER = "ts,open,high,low,close,volume"


def _bar(hour: int, close: float = 100.5, **over) -> dict:
    row = {
        "ts": f"2024-03-05T{hour:02d}:00:00Z",
        "open": 100.0,
        "high": 101.0,
        "low": 99.0,
        "close": close,
        "volume": 10.0,
    }
    row.update(over)
    return row


def _line(row: dict) -> str:
    return ",".join(str(row[c]) for c in ("ts", "open", "high", "low", "close", "volume"))


@dataclass(frozen=True)
class Case:
    name: str
    text: str | bytes
    # how many input rows each outcome should see (expectations, not only counts to report)
    stored: int = 0
    quarantined: int = 0
    refused_loudly: bool = False
    expect_reason: str = ""


def _csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


GOOD = [_line(_bar(h)) for h in range(3)]
CASES = [
    Case("clean", _csv(*GOOD), stored=3),
    Case(
        "nan_close", _csv(GOOD[0], _line(_bar(1, close="NaN"))), stored=1, quarantined=1, expect_reason="NaN in close"
    ),
    Case(
        "inf_volume",
        _csv(GOOD[0], _line(_bar(1, volume="inf"))),
        stored=1,
        quarantined=1,
        expect_reason="infinite value in volume=inf",
    ),
    Case("minus_inf_open", _csv(_line(_bar(0, open="-inf"))), quarantined=1, expect_reason="infinite value in open"),
    Case(
        "overflow_1e309",
        _csv(GOOD[0], _line(_bar(1, high="1e309"))),
        stored=1,
        quarantined=1,
        expect_reason="infinite value in high",
    ),
    Case("negative_price", _csv(_line(_bar(0, low=-1))), quarantined=1, expect_reason="non-positive price in low"),
    Case("zero_price", _csv(GOOD[0], _line(_bar(1, open=0))), stored=1, quarantined=1, expect_reason="non-positive"),
    Case(
        "high_below_low",
        _csv(_line(_bar(0, high=98, low=99, open=98.5, close=98.5))),
        quarantined=1,
        expect_reason="high < low",
    ),
    Case("open_outside_range", _csv(_line(_bar(0, open=105))), quarantined=1, expect_reason="open/close outside"),
    Case("negative_volume", _csv(_line(_bar(0, volume=-5))), quarantined=1, expect_reason="negative volume"),
    Case("identical_duplicate", _csv(GOOD[0], GOOD[0]), stored=1, quarantined=1, expect_reason="identical copy"),
    Case(
        "conflicting_duplicate",
        _csv(GOOD[0], _line(_bar(0, volume=11))),
        quarantined=2,
        expect_reason="conflicting duplicate",
    ),
    Case("out_of_order", _csv(GOOD[2], GOOD[0], GOOD[1]), stored=3),
    Case(
        "not_hour_aligned",
        _csv(_line(_bar(0, ts="2024-03-05T00:30:00Z"))),
        quarantined=1,
        expect_reason="not aligned to the hour",
    ),
    Case("epoch_seconds", _csv(_line(_bar(0, ts="1709596800")), _line(_bar(1, ts="1709600400"))), stored=2),
    Case("epoch_milliseconds", _csv(_line(_bar(0, ts="1709596800000"))), stored=1),
    Case(
        "epoch_wrong_length",
        _csv(GOOD[0], _line(_bar(1, ts="17096004001"))),
        stored=1,
        quarantined=1,
        expect_reason="neither seconds",
    ),
    Case("blank_ts", _csv(GOOD[0], _line(_bar(1, ts=""))), stored=1, quarantined=1, expect_reason="ts is blank"),
    Case(
        "naive_ts",
        _csv(GOOD[0], _line(_bar(1, ts="2024-03-05T01:00:00"))),
        stored=1,
        quarantined=1,
        expect_reason="has no UTC offset",
    ),
    Case(
        "garbage_ts",
        _csv(GOOD[0], _line(_bar(1, ts="yesterday"))),
        stored=1,
        quarantined=1,
        expect_reason="is not a timestamp",
    ),
    Case("offset_plus_two", _csv(_line(_bar(0, ts="2024-03-05T02:00:00+02:00"))), stored=1),
    Case("mixed_offsets", _csv(GOOD[0], _line(_bar(1, ts="2024-03-05T03:00:00+02:00"))), stored=2),
    Case(
        "non_utf8_line",
        _csv(GOOD[0]).encode() + "2024-03-05T01:00:00Z,1\xe9,2,0.5,1,1\n".encode("latin-1"),
        stored=1,
        quarantined=1,
        expect_reason="is not UTF-8",
    ),
    Case("utf8_bom", "\ufeff" + _csv(*GOOD), stored=3),
    Case("crlf", _csv(*GOOD).replace("\n", "\r\n"), stored=3),
    Case(
        "short_row",
        _csv(GOOD[0], "2024-03-05T01:00:00Z,100,101,99"),
        stored=1,
        quarantined=1,
        expect_reason="has 4 fields, header has 6",
    ),
    Case("long_row", _csv(GOOD[0], GOOD[1] + ",extra"), stored=1, quarantined=1, expect_reason="has 7 fields"),
    Case("empty_file", "", refused_loudly=True, expect_reason="is empty"),
    Case("header_only", _csv(), stored=0),
    Case(
        "missing_volume_column",
        _csv("2024-03-05T00:00:00Z,1,2,0.5,1", header="ts,open,high,low,close"),
        refused_loudly=True,
        expect_reason="lacks column(s) ['volume']",
    ),
    Case(
        "no_time_column",
        _csv("1,2,0.5,1,1", header="open,high,low,close,volume"),
        refused_loudly=True,
        expect_reason="has no time column",
    ),
    Case("extra_columns", _csv(GOOD[0] + ",note", header=HEADER + ",comment"), stored=1),
    Case("uppercase_header", _csv(*GOOD, header=HEADER.upper()), stored=3),
    Case("timestamp_named_open_time", _csv(*GOOD, header=HEADER.replace("ts", "open_time")), stored=3),
    Case(
        "wrong_symbol_column",
        _csv(GOOD[0] + ",BTCUSDT", GOOD[1] + ",ETHUSDT", header=HEADER + ",symbol"),
        stored=1,
        quarantined=1,
        expect_reason="symbol column says 'BTCUSDT', the file is for ETHUSDT",
    ),
    Case("quoted_numbers", _csv('2024-03-05T00:00:00Z,"100","101","99","100.5","10"'), stored=1),
    Case(
        "thousands_separator",
        _csv('2024-03-05T00:00:00Z,"1,000",1001,999,1000.5,10'),
        quarantined=1,
        expect_reason="open='1,000' is not a number",
    ),
    Case("scientific_notation", _csv("2024-03-05T00:00:00Z,1e2,1.01e2,9.9e1,1.005e2,1e1"), stored=1),
    Case("whitespace_cells", _csv(" 2024-03-05T00:00:00Z , 100 , 101 , 99 , 100.5 , 10 "), stored=1),
    Case("trailing_blank_lines", _csv(*GOOD) + "\n\n\n", stored=3),
    Case(
        "blank_value",
        _csv(GOOD[0], "2024-03-05T01:00:00Z,100,,99,100.5,10"),
        stored=1,
        quarantined=1,
        expect_reason="high is blank",
    ),
    Case(
        "text_value",
        _csv(GOOD[0], "2024-03-05T01:00:00Z,100,abc,99,100.5,10"),
        stored=1,
        quarantined=1,
        expect_reason="high='abc' is not a number",
    ),
    Case("other_day_rows", _csv(GOOD[0], _line(_bar(0, ts="2024-03-07T00:00:00Z"))), stored=1),
    Case("vendor_filled", _csv(GOOD[0], "2024-03-05T01:00:00Z,100,100,100,100,0"), stored=2),
    Case(
        "all_rows_bad_ts",
        _csv("2024-03-05T00:00:00,1,2,0.5,1,1"),
        refused_loudly=True,
        expect_reason="no row has a usable time",
    ),
]


def _rows_in(case: Case) -> int:
    text = case.text.decode("latin-1") if isinstance(case.text, bytes) else case.text
    lines = [line for line in text.replace("\ufeff", "").splitlines() if line.strip()]
    rows = lines[1:] if lines else []
    return sum(1 for r in rows if not r.startswith("2024-03-07"))  # another day's row belongs to that day


@pytest.fixture(scope="module")
def outcomes(database_url, tmp_path_factory):
    from pipeline_assets.store.warehouse import truncate_all

    results = []
    for case in CASES:
        with connect(database_url) as conn, conn.transaction():
            truncate_all(conn)
        directory = tmp_path_factory.mktemp(case.name)
        path = directory / "ETHUSDT.csv"
        path.write_bytes(case.text if isinstance(case.text, bytes) else case.text.encode())
        market = MarketDataResource(ohlcv_source="csv", csv_directory=str(directory))
        result = run_assets(
            ["raw_ohlcv"], database_url, DAY, DagsterInstance.ephemeral(), market=market, raise_on_error=False
        )
        failure = "" if result.success else result.get_step_failure_events()[0].step_failure_data.error.message
        with connect(database_url) as conn:
            stored = conn.execute(
                "SELECT ts, open, high, low, close, volume FROM raw_ohlcv WHERE symbol = 'ETHUSDT' ORDER BY ts"
            ).fetchall()
            quarantined = conn.execute(
                "SELECT reason, payload::text FROM quarantine WHERE table_name = 'raw_ohlcv'"
            ).fetchall()
        loudly = bool(failure) and not stored and not quarantined and str(path) in failure
        n_in = _rows_in(case)
        wrong = [row for row in stored if row[0].strftime("%Y-%m-%d") != DAY or not (0 < row[4] < 1e6)]
        dropped = 0 if loudly else max(0, n_in - len(stored) - len(quarantined))
        results.append(
            {
                "case": case.name,
                "rows_in": n_in,
                "stored": len(stored),
                "quarantined": len(quarantined),
                "refused_loudly": loudly,
                "silently_dropped": dropped,
                "stored_wrongly": len(wrong),
                "failure": failure,
                "reasons": [r for r, _ in quarantined],
                "payloads": [p for _, p in quarantined],
                "expected": case,
            }
        )
    table = pd.DataFrame(results)[
        ["case", "rows_in", "stored", "quarantined", "refused_loudly", "silently_dropped", "stored_wrongly"]
    ]
    report = table.to_markdown(index=False)
    print("\n" + report)
    (tmp_path_factory.getbasetemp() / "malformed_csv_corpus.md").write_text(report)
    return results


def test_the_corpus_has_forty_cases_or_more():
    assert len(CASES) >= 40


def test_nothing_is_silently_dropped_or_stored_wrongly(outcomes):
    assert [(o["case"], o["silently_dropped"]) for o in outcomes if o["silently_dropped"]] == []
    assert [(o["case"], o["stored_wrongly"]) for o in outcomes if o["stored_wrongly"]] == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_case_lands_where_expected_with_its_reason(case, outcomes):
    outcome = next(o for o in outcomes if o["case"] == case.name)
    assert outcome["refused_loudly"] == case.refused_loudly, outcome["failure"]
    if case.refused_loudly:
        assert case.expect_reason in outcome["failure"]
        return
    assert (outcome["stored"], outcome["quarantined"]) == (case.stored, case.quarantined), outcome["reasons"]
    if case.expect_reason:
        assert any(case.expect_reason in reason for reason in outcome["reasons"]), outcome["reasons"]
    for payload in outcome["payloads"]:  # the refused row's text is kept (jsonb accepts it: no raw Infinity)
        assert '"raw"' in payload or '"close"' in payload
