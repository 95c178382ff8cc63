"""Tests run against a real PostgreSQL: PIPELINE_DATABASE_URL, or 127.0.0.1:5432 (trust auth).

Each test session creates its own database and drops it afterwards, so runs never see each
other's rows; each test that uses ``warehouse_url`` starts from empty tables."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from pipeline_assets.local_db import with_database
from pipeline_assets.store.db import connect, database_url_from_env
from pipeline_assets.store.migrate import migrate
from pipeline_assets.store.warehouse import truncate_all

pytest_plugins = ["timescale_fixtures"]  # TimescaleDB server fixtures


@pytest.fixture(scope="session", autouse=True)
def artifact_dir(tmp_path_factory) -> Iterator[str]:
    """Training datasets written by tests go to a temporary directory, never into the checkout."""
    path = str(tmp_path_factory.mktemp("artifacts"))
    previous = os.environ.get("PIPELINE_ARTIFACT_DIR")
    os.environ["PIPELINE_ARTIFACT_DIR"] = path
    yield path
    if previous is None:
        os.environ.pop("PIPELINE_ARTIFACT_DIR", None)
    else:
        os.environ["PIPELINE_ARTIFACT_DIR"] = previous


@pytest.fixture(scope="session")
def server_url() -> str:
    url = database_url_from_env()
    try:
        with connect(url) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {url!r} is not reachable ({exc}); set PIPELINE_DATABASE_URL")
    return url


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"pipeline_test_{uuid.uuid4().hex[:10]}"
    with connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    migrate(url)
    previous = os.environ.get("PIPELINE_DATABASE_URL")
    os.environ["PIPELINE_DATABASE_URL"] = url
    try:
        yield url
    finally:
        if previous is None:
            os.environ.pop("PIPELINE_DATABASE_URL", None)
        else:
            os.environ["PIPELINE_DATABASE_URL"] = previous
        with connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def warehouse_url(database_url: str) -> str:
    with connect(database_url) as conn, conn.transaction():
        truncate_all(conn)
    return database_url


@pytest.fixture
def fresh_database(server_url: str) -> Iterator[str]:
    """An empty database without migrations, for migration tests."""
    name = f"pipeline_mig_{uuid.uuid4().hex[:10]}"
    with connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        with connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
