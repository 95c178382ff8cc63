"""Real headlines from JSONL/CSV files: parsing, symbols, market-wide rows, unreadable lines in
quarantine, and raw_sentiment reading them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from dagster import DagsterInstance
from dagster_helpers import count, run_assets

from pipeline_assets.resources import MarketDataResource
from pipeline_assets.sources.base import SourceFormatError
from pipeline_assets.sources.headlines_file import HeadlineFileSource
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


def test_jsonl_and_csv_headlines_by_symbol_with_market_wide_rows(tmp_path):
    source = HeadlineFileSource(_files(tmp_path))
    btc = source.headlines("BTCUSDT", START, END)
    assert btc["headline"].tolist() == ["Bitcoin ETF inflows hit a record", "Crypto markets rally on rate cut hopes"]
    assert str(btc["published_at"].dt.tz) == "UTC" and (btc["symbol"] == "BTCUSDT").all()
    eth = source.headlines("ETHUSDT", START, END)
    assert eth["headline"].tolist() == ["Ether upgrade ships", "Crypto markets rally on rate cut hopes"]
    assert eth["source"].tolist() == ["wire", "news"]
    bnb = source.headlines("BNBUSDT", START, END).set_index("headline")
    assert bnb.loc["BNB burns tokens", "published_at"].isoformat() == "2024-03-05T19:00:00+00:00"
    assert bnb.loc["BNB burns tokens", "source"] == "desk"
    bad = source.unreadable()
    assert len(bad) == 4
    reasons = " | ".join(bad["reason"])
    for expected in ("no UTC offset", "unreadable JSON line", "no title", "not-a-time"):
        assert expected in reasons or any(expected in r for r in bad["raw"]), expected
    with pytest.raises(SourceFormatError, match="is not a .jsonl/.csv file"):
        HeadlineFileSource(tmp_path / "missing.jsonl").headlines("BTCUSDT", START, END)
    (tmp_path / "bad.csv").write_text("when,text\n1,2\n")
    with pytest.raises(SourceFormatError, match="needs published_at and title"):
        HeadlineFileSource(tmp_path / "bad.csv").headlines("BTCUSDT", START, END)


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
