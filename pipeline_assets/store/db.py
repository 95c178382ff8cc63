"""Connections to the warehouse (psycopg 3). Every session runs in UTC."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DATABASE_URL_ENV = "PIPELINE_DATABASE_URL"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# SQLAlchemy-style driver suffixes (postgresql+psycopg2://) are accepted so one URL can
# serve both Dagster's storage and the warehouse.
_DRIVER_SUFFIX = re.compile(r"^(postgres(?:ql)?)\+[a-z0-9_]+://")


class DatabaseConfigError(ValueError):
    """The database URL is missing or not a PostgreSQL URL."""


def normalise_database_url(url: str) -> str:
    if not url:
        raise DatabaseConfigError(f"empty database URL; set {DATABASE_URL_ENV}")
    url = _DRIVER_SUFFIX.sub(r"\1://", url)
    if not url.startswith(("postgresql://", "postgres://")):
        scheme = url.split("://", 1)[0] if "://" in url else url[:20]
        raise DatabaseConfigError(f"not a PostgreSQL URL (scheme {scheme!r}); expected postgresql://...")
    return url


def database_url_from_env() -> str:
    return normalise_database_url(os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL)


# Bounded waits (seconds), each overridable from the environment: a server that accepts TCP but
# never answers fails within the connect timeout; a held row or advisory lock fails a statement
# after the lock timeout (retried by the assets' RetryPolicy) instead of blocking a run forever.
CONNECT_TIMEOUT_ENV = "PIPELINE_DB_CONNECT_TIMEOUT_S"
STATEMENT_TIMEOUT_ENV = "PIPELINE_DB_STATEMENT_TIMEOUT_S"
LOCK_TIMEOUT_ENV = "PIPELINE_DB_LOCK_TIMEOUT_S"
DEFAULT_TIMEOUTS = {CONNECT_TIMEOUT_ENV: 10.0, STATEMENT_TIMEOUT_ENV: 900.0, LOCK_TIMEOUT_ENV: 120.0}


def timeout_setting(name: str) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return DEFAULT_TIMEOUTS[name]
    try:
        value = float(raw)
    except ValueError as exc:
        raise DatabaseConfigError(f"{name}={raw!r} is not a number of seconds") from exc
    if value < 0:
        raise DatabaseConfigError(f"{name}={raw!r} must be >= 0 (0 = no limit)")
    return value


def connect(url: str, *, autocommit: bool = False, statement_timeout_s: float | None = None) -> psycopg.Connection:
    """A UTC session with bounded waits. ``statement_timeout_s`` overrides the environment's
    statement timeout (0 = none, e.g. for migrations that rewrite large tables)."""
    statement = timeout_setting(STATEMENT_TIMEOUT_ENV) if statement_timeout_s is None else statement_timeout_s
    lock = timeout_setting(LOCK_TIMEOUT_ENV)
    connect_timeout = timeout_setting(CONNECT_TIMEOUT_ENV)
    options = f"-c timezone=UTC -c statement_timeout={int(statement * 1000)} -c lock_timeout={int(lock * 1000)}"
    try:
        return psycopg.connect(
            normalise_database_url(url),
            autocommit=autocommit,
            options=options,
            application_name="pipeline_assets",
            # libpq: 0 would wait forever; at least 2 s (libpq's own minimum)
            connect_timeout=max(2, int(round(connect_timeout))) if connect_timeout else 0,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
    except psycopg.OperationalError as exc:
        host = re.sub(r"://[^@/]*@", "://", normalise_database_url(url))  # no credentials in messages
        raise psycopg.OperationalError(
            f"cannot connect to the warehouse at {host} within {connect_timeout:g} s ({CONNECT_TIMEOUT_ENV}): {exc}"
        ) from exc


@contextmanager
def transaction(url: str) -> Iterator[psycopg.Connection]:
    """One connection, one transaction: committed on success, rolled back on error."""
    with connect(url) as conn, conn.transaction():
        yield conn
