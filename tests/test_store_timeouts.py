"""Bounded waits: a silent server, a held lock and a runaway statement fail in seconds, clearly."""

from __future__ import annotations

import socket
import threading
import time

import psycopg
import pytest

from pipeline_assets.store.db import DatabaseConfigError, connect, timeout_setting
from pipeline_assets.store.locks import exclusive


def test_a_server_that_accepts_but_never_answers_fails_within_the_connect_timeout(monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    monkeypatch.setenv("PIPELINE_DB_CONNECT_TIMEOUT_S", "2")
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="within 2 s \\(PIPELINE_DB_CONNECT_TIMEOUT_S\\)"):
        connect(f"postgresql://postgres@127.0.0.1:{listener.getsockname()[1]}/postgres")
    assert time.monotonic() - started < 10
    listener.close()


def test_a_held_row_lock_fails_a_writer_after_the_lock_timeout(warehouse_url, monkeypatch):
    with connect(warehouse_url) as holder:
        holder.execute(
            "INSERT INTO raw_ohlcv (symbol, ts, open, high, low, close, volume, source) "
            "VALUES ('BTCUSDT', '2024-03-05T00:00Z', 1, 1, 1, 1, 1, 't')"
        )
        holder.commit()
        holder.execute("SELECT * FROM raw_ohlcv WHERE symbol = 'BTCUSDT' FOR UPDATE")
        monkeypatch.setenv("PIPELINE_DB_LOCK_TIMEOUT_S", "1")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable), connect(warehouse_url) as writer:
            writer.execute("UPDATE raw_ohlcv SET close = 2 WHERE symbol = 'BTCUSDT'")
        assert time.monotonic() - started < 5
        # advisory locks wait under the same bound
        with (
            exclusive(warehouse_url, "probe"),
            pytest.raises(psycopg.errors.LockNotAvailable),
            exclusive(warehouse_url, "probe"),
        ):
            pass
        holder.rollback()


def test_a_runaway_statement_is_cancelled_by_the_statement_timeout(warehouse_url, monkeypatch):
    monkeypatch.setenv("PIPELINE_DB_STATEMENT_TIMEOUT_S", "1")
    with pytest.raises(psycopg.errors.QueryCanceled), connect(warehouse_url) as conn:
        conn.execute("SELECT pg_sleep(5)")


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_bad_timeout_settings_are_refused_with_their_name(value, monkeypatch):
    monkeypatch.setenv("PIPELINE_DB_LOCK_TIMEOUT_S", value)
    with pytest.raises(DatabaseConfigError, match="PIPELINE_DB_LOCK_TIMEOUT_S"):
        timeout_setting("PIPELINE_DB_LOCK_TIMEOUT_S")
