"""Idempotent schema migrations from the ordered files in sql/.

Each file is applied once and recorded with its checksum in schema_migrations; a file
whose content changed after it was applied is an error (write a new migration instead).
Files named *.timescale.sql run only when the timescaledb extension is available; on plain
PostgreSQL they are recorded as skipped. A file whose first line is
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


def timescaledb_available(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return bool(row and row[0])


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
            has_timescale = timescaledb_available(conn)
            recorded = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
            for migration in migrations:
                if migration.version in recorded:
                    if recorded[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version} changed after it was applied "
                            f"(recorded sha256 {recorded[migration.version][:12]}, file "
                            f"{migration.checksum[:12]}); add a new migration file instead"
                        )
                    already.append(migration.version)
                    continue
                if migration.needs_timescale and not has_timescale:
                    _record(conn, migration, "skipped", "timescaledb extension not available")
                    skipped.append(migration.version)
                    continue
                _apply(conn, migration)
                applied.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return MigrationReport(tuple(applied), tuple(skipped), tuple(already), has_timescale)


def _record(conn: psycopg.Connection, migration: MigrationFile, status: str, detail: str | None) -> None:
    conn.execute(
        "INSERT INTO schema_migrations (version, checksum, status, detail) VALUES (%s, %s, %s, %s)",
        (migration.version, migration.checksum, status, detail),
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
