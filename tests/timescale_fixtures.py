"""TimescaleDB fixtures: one embedded PostgreSQL with TimescaleDB preloaded per test session.

Registered from conftest.py (pytest_plugins). The server is built by the project's own step
(`python -m pipeline_assets.timescale_build`, a no-op when the virtualenv has it): a missing
build is built here or fails loudly, never skipped, so CI always runs the Timescale tests."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from psycopg import sql

from pipeline_assets.local_db import with_database
from pipeline_assets.store.db import connect
from pipeline_assets.store.migrate import migrate


@contextmanager
def server_data_dir() -> Iterator[Path]:
    """A data directory for an embedded server, outside pytest's basetemp: every pytest session
    that starts (other sessions on this machine included) chmods /tmp/pytest-of-<user> back to 0700,
    which locks the server's own user out of a data directory below it and kills the server."""
    parent = Path(tempfile.mkdtemp(prefix="pipeline_tsdb_"))
    try:
        yield parent / "pgdata"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def timescale_server_url() -> Iterator[str]:
    """Server URL of an embedded PostgreSQL with TimescaleDB preloaded, on a free local port in a
    temporary data directory that is deleted afterwards."""
    from pipeline_assets.local_db import start_embedded
    from pipeline_assets.timescale_build import build

    build()
    with server_data_dir() as pgdata:
        server = start_embedded(pgdata, cleanup_mode="delete", timescale=True)
        try:
            with connect(server.get_uri()) as conn:
                (preloaded,) = conn.execute("SHOW shared_preload_libraries").fetchone()
            if "timescaledb" not in preloaded:
                pytest.fail(f"embedded server started without TimescaleDB preloaded ({preloaded!r})")
            yield server.get_uri()
        finally:
            server.cleanup()


@pytest.fixture
def timescale_fresh_database(timescale_server_url: str) -> Iterator[str]:
    """An empty database (no migrations) on the TimescaleDB server, dropped afterwards."""
    name = f"pipeline_ts_{uuid.uuid4().hex[:10]}"
    with connect(timescale_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(timescale_server_url, name)
    finally:
        with connect(timescale_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def timescale_database_url(timescale_fresh_database: str) -> str:
    """A fresh database on the TimescaleDB server with every migration applied (none skipped):
    the warehouse for end-to-end runs of the asset graph on TimescaleDB."""
    report = migrate(timescale_fresh_database)
    if not report.timescaledb or report.skipped:
        pytest.fail(f"TimescaleDB migrations did not all apply: {report}")
    return timescale_fresh_database
