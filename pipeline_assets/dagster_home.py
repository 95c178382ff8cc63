"""Prepare $DAGSTER_HOME: SQLite by default, dagster-postgres when DAGSTER_PG_URL is set.

python -m pipeline_assets.dagster_home [DIRECTORY]
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SQLITE_CONFIG = REPO_ROOT / "dagster.yaml"
POSTGRES_CONFIG = REPO_ROOT / "deploy" / "dagster-postgres.yaml"
REQUIRED_SCHEME = "postgresql+psycopg2://"


class DagsterHomeError(ValueError):
    pass


def check_pg_url(url: str) -> None:
    if not url.startswith(REQUIRED_SCHEME):
        scheme = url.split("://", 1)[0] if "://" in url else "(none)"
        raise DagsterHomeError(
            f"DAGSTER_PG_URL uses scheme {scheme!r}; use {REQUIRED_SCHEME}... "
            "(with SQLAlchemy 2.1 other drivers break dagster-postgres' LISTEN/NOTIFY)"
        )


def prepare(directory: Path, environ: dict[str, str] | None = None) -> Path:
    """Write ``directory/dagster.yaml`` for the environment and return its path."""
    environ = os.environ if environ is None else environ
    pg_url = environ.get("DAGSTER_PG_URL")
    if pg_url:
        check_pg_url(pg_url)
    source = POSTGRES_CONFIG if pg_url else SQLITE_CONFIG
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "dagster.yaml"
    shutil.copyfile(source, target)
    return target


def main(argv: list[str]) -> int:
    home = Path(argv[0]) if argv else Path(os.environ.get("DAGSTER_HOME", ".dagster_home"))
    try:
        target = prepare(home.resolve())
    except DagsterHomeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kind = "postgres (DAGSTER_PG_URL)" if os.environ.get("DAGSTER_PG_URL") else "sqlite"
    print(f"{target}: {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
