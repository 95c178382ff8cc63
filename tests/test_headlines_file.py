"""Real headlines from JSONL/CSV files: times (ISO with offset, epoch s/ms), symbols and market-wide
rows, the [start, end) window, the synthetic source's columns, unreadable lines kept with their
reason and raw line, paths that cannot be read, and raw_sentiment reading them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_helpers import count, run_assets

from pipeline_assets.resources import MarketDataResource
from pipeline_assets.sources.base import SourceFormatError
from pipeline_assets.sources.headlines_file import HeadlineFileSource
from pipeline_assets.sources.synthetic import SyntheticMarket
from pipeline_assets.store.db import connect
from pipeline_assets.store.warehouse import truncate_all

START, END = datetime(2024, 3, 5, tzinfo=UTC), datetime(2024, 3, 6, tzinfo=UTC)


def _files(tmp_path):
    lines = [
        {
            "published_at": "2024-03-05T09:15:00+00:00",
            "title": "Bitcoin ETF inflows hit a record",
            "symbols": ["BTCUSDT"],
        },
        {"published_at": 1709632800, "title": "Ether upgrade ships", "symbols": "ETHUSDT, SOLUSDT", "source": "wire"},
        {"published_at": 1709636400000, "title": "Crypto markets rally on rate cut hopes"},
        {"published_at": "2024-03-05T11:00:00", "title": "no offset"},
        {"published_at": "2024-03-06T01:00:00Z", "title": "next day", "symbols": ["BTCUSDT"]},
    ]
    jsonl = tmp_path / "news.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps(x) for x in lines)
        + "\n{broken json\n"
        + json.dumps({"published_at": "2024-03-05T12:00Z"})
        + "\n"
    )
    (tmp_path / "more.csv").write_text(
        "published_at,title,symbols,source\n"
        "2024-03-05T20:00:00+01:00,BNB burns tokens,BNBUSDT,desk\n"
        "not-a-time,x,BTCUSDT,desk\n"
    )
    return tmp_path


def _write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_times_iso_with_offsets_epoch_seconds_and_milliseconds(tmp_path):
    path = _write(
        tmp_path / "times.jsonl",
        "\n".join(
            json.dumps({"published_at": when, "title": f"t{i}"})
            for i, when in enumerate(
                [
                    "2024-03-05T09:15:00+00:00",
                    "2024-03-05T12:00Z",
                    "2024-03-05T14:30:00.250+05:30",  # 09:00:00.250 UTC
                    1709632800,  # seconds: 10:00 UTC
                    1709636400000,  # milliseconds: 11:00 UTC
                    "1709640000",  # digits in text: 12:00 UTC
                    1709643600.5,  # fractional seconds
                ]
            )
        ),
    )
    got = HeadlineFileSource(path).headlines("BTCUSDT", START, END).set_index("headline")["published_at"]
    assert got.to_dict() == {
        "t0": pd.Timestamp("2024-03-05T09:15:00Z"),
        "t1": pd.Timestamp("2024-03-05T12:00:00Z"),
        "t2": pd.Timestamp("2024-03-05T09:00:00.250Z"),
        "t3": pd.Timestamp("2024-03-05T10:00:00Z"),
        "t4": pd.Timestamp("2024-03-05T11:00:00Z"),
        "t5": pd.Timestamp("2024-03-05T12:00:00Z"),
        "t6": pd.Timestamp("2024-03-05T13:00:00.500Z"),
    }
    assert got.is_monotonic_increasing and str(got.dtype) == "datetime64[ns, UTC]"


def test_jsonl_and_csv_headlines_by_symbol_with_market_wide_rows(tmp_path):
    source = HeadlineFileSource(_files(tmp_path))
    btc = source.headlines("BTCUSDT", START, END)
    assert btc["headline"].tolist() == ["Bitcoin ETF inflows hit a record", "Crypto markets rally on rate cut hopes"]
    assert str(btc["published_at"].dt.tz) == "UTC" and (btc["symbol"] == "BTCUSDT").all()
    eth = source.headlines("ETHUSDT", START, END)
    assert eth["headline"].tolist() == ["Ether upgrade ships", "Crypto markets rally on rate cut hopes"]
    assert eth["source"].tolist() == ["wire", "news"]  # no source: the file's name
    bnb = source.headlines("BNBUSDT", START, END).set_index("headline")
    assert bnb.loc["BNB burns tokens", "published_at"].isoformat() == "2024-03-05T19:00:00+00:00"
    assert bnb.loc["BNB burns tokens", "source"] == "desk"
    xrp = source.headlines("XRPUSDT", START, END)  # named nowhere: the market-wide headline only
    assert xrp["headline"].tolist() == ["Crypto markets rally on rate cut hopes"] and xrp["symbol"].tolist() == [
        "XRPUSDT"
    ]


def test_symbols_lists_text_case_duplicates_and_explicit_market_wide(tmp_path):
    path = _write(
        tmp_path / "s.csv",
        "title,published_at,symbols,id\n"
        '"Two, with a comma",2024-03-05T01:00Z,"ethusdt, BTCUSDT ,ETHUSDT",7\n'
        "Everyone,2024-03-05T02:00Z,*,\n"
        "Nobody named,2024-03-05T03:00Z,,\n"
        "Only sol,2024-03-05T04:00Z,SOLUSDT,\n",
    )
    source = HeadlineFileSource(path)
    eth = source.headlines("ETHUSDT", START, END)
    assert eth["headline"].tolist() == ["Two, with a comma", "Everyone", "Nobody named"]  # once, not twice
    assert eth["headline_id"].tolist() == ["s:7", None, None]
    assert source.headlines("BTCUSDT", START, END)["headline"].tolist() == [
        "Two, with a comma",
        "Everyone",
        "Nobody named",
    ]
    assert source.headlines("SOLUSDT", START, END)["headline"].tolist() == ["Everyone", "Nobody named", "Only sol"]
    assert source.unreadable().empty


def test_the_window_is_start_inclusive_end_exclusive(tmp_path):
    path = _write(
        tmp_path / "w.jsonl",
        "\n".join(
            json.dumps({"published_at": t, "title": t})
            for t in [
                "2024-03-04T23:59:59.999Z",
                "2024-03-05T00:00:00Z",
                "2024-03-05T23:59:59Z",
                "2024-03-06T00:00:00Z",
            ]
        ),
    )
    got = HeadlineFileSource(path).headlines("BTCUSDT", START, END)["headline"].tolist()
    assert got == ["2024-03-05T00:00:00Z", "2024-03-05T23:59:59Z"]
    with pytest.raises(ValueError, match="naive"):
        HeadlineFileSource(path).headlines("BTCUSDT", datetime(2024, 3, 5), END)


def test_output_columns_are_the_synthetic_sources_plus_headline_id(tmp_path):
    synthetic = SyntheticMarket().headlines("BTCUSDT", START, END)
    source = HeadlineFileSource(_files(tmp_path))
    ours = source.headlines("BTCUSDT", START, END)
    assert list(ours.columns) == [*synthetic.columns, "headline_id"]
    assert ours.dtypes.drop("headline_id").to_dict() == synthetic.dtypes.to_dict()
    empty = source.headlines("BTCUSDT", datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC))
    assert empty.empty and empty.dtypes.to_dict() == ours.dtypes.to_dict()
    nothing = HeadlineFileSource(_write(tmp_path / "empty.jsonl", "")).headlines("BTCUSDT", START, END)
    assert nothing.empty and list(nothing.columns) == list(ours.columns)
    folder = tmp_path / "no_files"
    folder.mkdir()
    in_empty_dir = HeadlineFileSource(folder).headlines("BTCUSDT", START, END)
    assert in_empty_dir.empty and in_empty_dir.dtypes.to_dict() == ours.dtypes.to_dict()


def test_unreadable_lines_are_kept_with_line_reason_and_raw_line(tmp_path):
    jsonl_lines = [
        json.dumps({"published_at": "2024-03-05T09:00Z", "title": "fine"}),
        "{broken json",
        "[1, 2]",
        json.dumps({"title": "no time"}),
        json.dumps({"published_at": "2024-03-05T11:00:00", "title": "offset-less"}),
        json.dumps({"published_at": "03/05/2024 10:00+00:00", "title": "not ISO"}),
        json.dumps({"published_at": "2024-03-05T09:00Z", "title": "  "}),
        json.dumps({"published_at": "2024-03-05T09:00Z", "title": 42}),
        json.dumps({"published_at": "2024-03-05T09:00Z", "title": "odd symbols", "symbols": {"BTC": 1}}),
        json.dumps({"published_at": True, "title": "a boolean time"}),
        json.dumps({"published_at": "3000-01-01T00:00Z", "title": "far future"}),
        json.dumps({"published_at": 1e20, "title": "an epoch too large"}),
        "",  # blank: nothing to read
        # a raw U+2028 inside a JSON string (legal JSON) does not end the line
        json.dumps({"published_at": "2024-03-05T09:30Z", "title": "line\u2028separator inside"}, ensure_ascii=False),
    ]
    _write(tmp_path / "a.jsonl", "\n".join(jsonl_lines) + "\n")
    _write(
        tmp_path / "b.csv",
        "published_at,title\n2024-03-05T10:00Z,kept\n2024-03-05T10:00Z,too,many\nlonely\n"
        '2024-03-05T10:00Z,"quoted\nover two lines"\n2024-03-05T10:00Z,"never closed\n',
    )
    source = HeadlineFileSource(tmp_path)
    kept = source.headlines("BTCUSDT", START, END)["headline"].tolist()
    assert kept == ["fine", "line\u2028separator inside", "kept", "quoted\nover two lines"]
    bad = source.unreadable()
    assert list(bad.columns) == ["file", "line", "reason", "raw"]
    got = {(f, n): (reason, raw) for f, n, reason, raw in bad.itertuples(index=False)}
    expected = {
        ("a.jsonl", 2): "unreadable JSON line",
        ("a.jsonl", 3): "a list, not an object",
        ("a.jsonl", 4): "no published_at",
        ("a.jsonl", 5): "has no UTC offset",
        ("a.jsonl", 6): "is not ISO-8601",
        ("a.jsonl", 7): "no title",
        ("a.jsonl", 8): "title 42 is not text",
        ("a.jsonl", 9): "neither a list nor comma-separated text",
        ("a.jsonl", 10): "neither ISO-8601 text nor an epoch number",
        ("a.jsonl", 11): "is out of range (1677..2262)",
        ("a.jsonl", 12): "is out of range as epoch ms",
        ("b.csv", 3): "CSV row has 3 fields, the header 2",
        ("b.csv", 4): "CSV row has 1 fields, the header 2",
        ("b.csv", 7): "unreadable CSV row",
    }
    assert set(got) == set(expected)
    for key, reason in expected.items():
        assert reason in got[key][0], (key, got[key])
    for (name, number), (_, raw) in got.items():
        if name == "a.jsonl":
            assert raw == jsonl_lines[number - 1]
    assert got[("b.csv", 3)][1] == "2024-03-05T10:00Z,too,many" and got[("b.csv", 4)][1] == "lonely"
    assert got[("b.csv", 7)][1] == '2024-03-05T10:00Z,"never closed'


def test_paths_that_cannot_be_read_raise_naming_the_path(tmp_path):
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(SourceFormatError, match=f"{missing}.*is not a .jsonl/.csv file"):
        HeadlineFileSource(missing).headlines("BTCUSDT", START, END)
    other = _write(tmp_path / "notes.txt", "published_at,title\n")
    with pytest.raises(SourceFormatError, match="notes.txt"):
        HeadlineFileSource(other).headlines("BTCUSDT", START, END)
    latin = _write(tmp_path / "latin.csv", "published_at,title\n2024-03-05T10:00Z,caf\xe9\n".encode("latin-1"))
    with pytest.raises(SourceFormatError, match=r"latin\.csv cannot be read.*utf-8"):
        HeadlineFileSource(latin).headlines("BTCUSDT", START, END)
    header = _write(tmp_path / "bad.csv", "when,text\n1,2\n")
    with pytest.raises(SourceFormatError, match=r"bad\.csv: the CSV header needs published_at and title"):
        HeadlineFileSource(header).headlines("BTCUSDT", START, END)
    folder = tmp_path / "dir"
    folder.mkdir()
    _write(folder / "good.jsonl", json.dumps({"published_at": "2024-03-05T09:00Z", "title": "fine"}))
    (folder / "latin.csv").write_bytes(latin.read_bytes())
    with pytest.raises(SourceFormatError, match=r"dir/latin\.csv"):  # one unreadable file fails the read
        HeadlineFileSource(folder).unreadable()


def test_a_changed_file_is_read_again(tmp_path):
    path = _write(tmp_path / "live.jsonl", json.dumps({"published_at": "2024-03-05T09:00Z", "title": "first"}) + "\n")
    source = HeadlineFileSource(path)
    assert source.headlines("BTCUSDT", START, END)["headline"].tolist() == ["first"]
    stamp = path.stat().st_mtime_ns
    with path.open("a") as handle:
        handle.write(json.dumps({"published_at": "2024-03-05T10:00Z", "title": "second"}) + "\n")
    os.utime(path, ns=(stamp, stamp))  # same modification time: the size still tells
    assert source.headlines("BTCUSDT", START, END)["headline"].tolist() == ["first", "second"]


def test_raw_sentiment_reads_a_headline_file_and_quarantines_unreadable_lines(warehouse_url, tmp_path):
    with connect(warehouse_url) as conn, conn.transaction():
        truncate_all(conn)
    folder = tmp_path / "headlines"
    folder.mkdir()
    _files(folder)
    market = MarketDataResource(headline_path=str(folder))
    run_assets(
        ["raw_sentiment"],
        warehouse_url,
        partition_key="2024-03-05",
        instance=DagsterInstance.ephemeral(),
        market=market,
    )
    assert count(warehouse_url, "SELECT count(*) FROM raw_sentiment WHERE symbol = 'BTCUSDT'") == 2
    assert count(warehouse_url, "SELECT count(*) FROM raw_sentiment WHERE symbol = 'SOLUSDT'") == 2
    assert count(warehouse_url, "SELECT count(*) FROM raw_sentiment WHERE headline = 'next day'") == 0
    assert (
        count(warehouse_url, "SELECT count(*) FROM quarantine WHERE table_name = 'raw_sentiment' AND symbol = '*'") == 4
    )


def test_a_corrected_headline_is_a_revision_kept_as_history(warehouse_url, tmp_path):
    from pipeline_assets.store.revisions import read_headlines_as_of

    with connect(warehouse_url) as conn, conn.transaction():
        truncate_all(conn)
    path = tmp_path / "wire.jsonl"
    first = {
        "id": "a1",
        "published_at": "2024-03-05T09:00:00Z",
        "title": "Bitcoin crashes as a terrible hack ruins investors",
        "symbols": "BTCUSDT",
    }
    path.write_text(json.dumps(first) + "\n")
    market = MarketDataResource(headline_path=str(path))
    instance = DagsterInstance.ephemeral()
    run_assets(["raw_sentiment"], warehouse_url, partition_key="2024-03-05", instance=instance, market=market)
    with connect(warehouse_url) as conn:
        (before,) = conn.execute("SELECT now()").fetchone()
    path.write_text(
        json.dumps({**first, "title": "Bitcoin soars to a great record high"}) + "\n"
    )  # the wire corrects it
    result = run_assets(["raw_sentiment"], warehouse_url, partition_key="2024-03-05", instance=instance, market=market)
    from dagster_helpers import metadata_of

    assert metadata_of(result, "raw_sentiment")["headlines_revised"] == 1
    assert count(warehouse_url, "SELECT count(*) FROM raw_sentiment WHERE symbol = 'BTCUSDT'") == 1
    assert (
        count(warehouse_url, "SELECT headline FROM raw_sentiment WHERE symbol = 'BTCUSDT'")
        == "Bitcoin soars to a great record high"
    )
    with connect(warehouse_url) as conn:
        then = read_headlines_as_of(conn, ["BTCUSDT"], START, END, before)
        now = read_headlines_as_of(conn, ["BTCUSDT"], START, END, datetime.now(UTC))
    assert then["headline"].tolist() == ["Bitcoin crashes as a terrible hack ruins investors"]
    assert now["headline"].tolist() == ["Bitcoin soars to a great record high"]
    assert then["compound"].iloc[0] < 0 < now["compound"].iloc[0]
