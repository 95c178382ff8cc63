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


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(
        normalise_database_url(url),
        autocommit=autocommit,
        options="-c timezone=UTC",
        application_name="pipeline_assets",
    )


@contextmanager
def transaction(url: str) -> Iterator[psycopg.Connection]:
    """One connection, one transaction: committed on success, rolled back on error."""
    with connect(url) as conn, conn.transaction():
        yield conn
