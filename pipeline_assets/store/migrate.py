"""Idempotent schema migrations from the ordered files in sql/.

Each file is applied once and recorded with its checksum in schema_migrations; a file
whose content changed after it was applied is an error (write a new migration instead).
Files named *.timescale.sql run only when TimescaleDB is usable (installed and preloaded; installed
but not preloaded is an error naming the fix). On plain PostgreSQL they are recorded as skipped and
retried by every later migration (a changed file recorded as skipped is simply not applied yet), so
a warehouse that gains TimescaleDB gets its hypertables. PIPELINE_RAW_RETENTION_DAYS (unset/0: off)
sets the retention policy of the raw tables on every migration with TimescaleDB.

A new time-series table (a timestamptz ``ts``/``published_at`` column, time in every unique key):
create it in a plain NNNN_*.sql file, and make it a hypertable (create_hypertable with
migrate_data => TRUE, compression segmented by symbol) in a NNNN[b]_*.timescale.sql file next to it;
tests/test_timescale.py fails for any time-series table that is not a hypertable. A file whose first line is
``-- migrate:no-transaction`` runs statement by statement in autocommit mode (needed for
TimescaleDB continuous aggregates); all other files run in one transaction each.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pipeline_assets.store.db import connect

SQL_DIR_ENV = "PIPELINE_SQL_DIR"
NO_TRANSACTION_MARKER = "-- migrate:no-transaction"
TIMESCALE_SUFFIX = ".timescale.sql"
# Serialises concurrent migration runs (two Dagster runs starting at once).
_ADVISORY_LOCK_KEY = 0x5049_5045  # "PIPE"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class MigrationFile:
    version: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def needs_timescale(self) -> bool:
        return self.path.name.endswith(TIMESCALE_SUFFIX)

    @property
    def transactional(self) -> bool:
        return not self.sql.lstrip().startswith(NO_TRANSACTION_MARKER)


@dataclass(frozen=True)
class MigrationReport:
    applied: tuple[str, ...]
    skipped: tuple[str, ...]
    already_applied: tuple[str, ...]
    timescaledb: bool


def sql_dir() -> Path:
    configured = os.environ.get(SQL_DIR_ENV)
    path = Path(configured) if configured else Path(__file__).resolve().parents[2] / "sql"
    if not path.is_dir():
        raise MigrationError(f"migration directory {path} does not exist (set {SQL_DIR_ENV})")
    return path


def discover(directory: Path | None = None) -> list[MigrationFile]:
    directory = directory or sql_dir()
    files = sorted(directory.glob("*.sql"))
    if not files:
        raise MigrationError(f"no *.sql migration files in {directory}")
    migrations = [MigrationFile(version=p.name, path=p, sql=p.read_text()) for p in files]
    return migrations


def _split_statements(sql: str) -> list[str]:
    """Split on semicolons that end a line; our no-transaction files keep to that layout."""
    statements, current = [], []
    for line in sql.splitlines():
        if line.strip().startswith("--") and not current:
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip())
            current = []
    if "".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements


TIMESCALEDB_ENV = "PIPELINE_TIMESCALEDB"  # auto (default): use it when usable; off: plain PostgreSQL
RETENTION_ENV = "PIPELINE_RAW_RETENTION_DAYS"  # unset/0: keep raw rows forever
RAW_TABLES = ("raw_ohlcv", "raw_sentiment")


def timescaledb_available(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return bool(row and row[0])


def timescaledb_usable(conn: psycopg.Connection) -> bool:
    """True when *.timescale.sql files can run: the extension is installed on the server and
    preloaded. Installed but not preloaded is an error naming the fix, not a silent skip: every
    CREATE EXTENSION would fail, and skipping would hide that the server is misconfigured."""
    if os.environ.get(TIMESCALEDB_ENV, "auto").lower() == "off":
        return False
    if not timescaledb_available(conn):
        return False
    (preloaded,) = conn.execute("SHOW shared_preload_libraries").fetchone()
    if "timescaledb" not in preloaded:
        raise MigrationError(
            "the timescaledb extension is installed on this server but not preloaded: add it to "
            "shared_preload_libraries (ALTER SYSTEM SET shared_preload_libraries = 'timescaledb'; or edit "
            "postgresql.conf) and restart the server; or set PIPELINE_TIMESCALEDB=off to use plain PostgreSQL"
        )
    return True


def _ensure_ledger(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version     text        PRIMARY KEY,
            checksum    text        NOT NULL,
            status      text        NOT NULL CHECK (status IN ('applied', 'skipped')),
            detail      text,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def migrate(database_url: str, directory: Path | None = None) -> MigrationReport:
    migrations = discover(directory)
    applied: list[str] = []
    skipped: list[str] = []
    already: list[str] = []
    with connect(database_url, autocommit=True, statement_timeout_s=0) as conn:
        # Session-level lock: held across the per-file transactions below.
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            _ensure_ledger(conn)
            has_timescale = timescaledb_usable(conn)
            recorded = {
                version: (checksum, status)
                for version, checksum, status in conn.execute(
                    "SELECT version, checksum, status FROM schema_migrations"
                ).fetchall()
            }
            for migration in migrations:
                if migration.version in recorded and recorded[migration.version][1] == "skipped":
                    # Skipped Timescale files are retried: a warehouse that later gains TimescaleDB
                    # gets its hypertables on the next migration.
                    if not has_timescale:
                        if recorded[migration.version][0] != migration.checksum:
                            _record(conn, migration, "skipped", "timescaledb extension not usable")
                        skipped.append(migration.version)
                        continue
                    _apply(conn, migration)
                    applied.append(migration.version)
                    continue
                if migration.version in recorded:
                    if recorded[migration.version][0] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version} changed after it was applied "
                            f"(recorded sha256 {recorded[migration.version][0][:12]}, file "
                            f"{migration.checksum[:12]}); add a new migration file instead"
                        )
                    already.append(migration.version)
                    continue
                if migration.needs_timescale and not has_timescale:
                    _record(conn, migration, "skipped", "timescaledb extension not usable")
                    skipped.append(migration.version)
                    continue
                _apply(conn, migration)
                applied.append(migration.version)
            if has_timescale:
                apply_retention(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return MigrationReport(tuple(applied), tuple(skipped), tuple(already), has_timescale)


def _record(conn: psycopg.Connection, migration: MigrationFile, status: str, detail: str | None) -> None:
    conn.execute(
        """
        INSERT INTO schema_migrations (version, checksum, status, detail) VALUES (%s, %s, %s, %s)
        ON CONFLICT (version) DO UPDATE SET checksum = EXCLUDED.checksum, status = EXCLUDED.status,
            detail = EXCLUDED.detail, applied_at = now()
        """,
        (migration.version, migration.checksum, status, detail),
    )


def retention_days() -> int:
    raw = os.environ.get(RETENTION_ENV, "")
    try:
        days = int(raw) if raw else 0
    except ValueError as exc:
        raise MigrationError(f"{RETENTION_ENV}={raw!r} is not a whole number of days") from exc
    if days < 0:
        raise MigrationError(f"{RETENTION_ENV}={raw!r} must be >= 0 (0 or unset keeps raw rows forever)")
    return days


def apply_retention(conn: psycopg.Connection) -> None:
    """TimescaleDB retention on the raw tables: drop chunks older than PIPELINE_RAW_RETENTION_DAYS
    (off when unset or 0: the policy is removed)."""
    days = retention_days()
    for table in RAW_TABLES:
        conn.execute("SELECT remove_retention_policy(%s::regclass, if_exists => true)", (table,))
        if days:
            conn.execute(
                "SELECT add_retention_policy(%s::regclass, make_interval(days => %s))",
                (table, days),
            )


def _apply(conn: psycopg.Connection, migration: MigrationFile) -> None:
    try:
        if migration.transactional:
            with conn.transaction():
                conn.execute(migration.sql)
                _record(conn, migration, "applied", None)
        else:
            for statement in _split_statements(migration.sql):
                conn.execute(statement)
            _record(conn, migration, "applied", "no-transaction")
    except psycopg.Error as exc:
        raise MigrationError(f"migration {migration.version} failed: {exc}") from exc


def main() -> None:
    from pipeline_assets.store.db import database_url_from_env

    report = migrate(database_url_from_env())
    print(
        f"applied={list(report.applied)} skipped={list(report.skipped)} "
        f"already={len(report.already_applied)} timescaledb={report.timescaledb}"
    )


if __name__ == "__main__":
    main()
