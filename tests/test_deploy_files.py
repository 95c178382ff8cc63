"""Static checks of the deployment files (no Docker engine runs here or in CI)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_wires_timescaledb_and_dagster_without_credentials_in_the_file():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"warehouse", "dagster-webserver", "dagster-daemon"}
    assert services["warehouse"]["image"].startswith("timescale/timescaledb")
    for name in ("dagster-webserver", "dagster-daemon"):
        env = services[name]["environment"]
        assert env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
        assert (
            "${POSTGRES_PASSWORD}" in env["DAGSTER_PG_URL"] and "${POSTGRES_PASSWORD}" in env["PIPELINE_DATABASE_URL"]
        )
        assert services[name]["depends_on"]["warehouse"]["condition"] == "service_healthy"
    assert services["warehouse"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")


def test_dockerfile_copies_only_files_that_exist():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, _target = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), source


def test_no_literal_passwords_in_tracked_config():
    # a value that is not an environment reference, after a password key or in a URL's user:password@
    assignment = re.compile(
        r"(?<![{\w])\w*(password|passwd|secret)\w*\s*[:=]\s*(?!\$\{)['\"]?[^\s'\"]{4,}", re.IGNORECASE
    )
    url_password = re.compile(r"://[^:/@\s]+:(?!\$\{)[^@\s]+@")
    for name in ("docker-compose.yml", "dagster.yaml", "deploy/dagster-postgres.yaml", "workspace.yaml", "Makefile"):
        text = (ROOT / name).read_text()
        assert not assignment.search(text), name
        assert not url_password.search(text), name
    assert assignment.search("POSTGRES_PASSWORD: hunter22") and url_password.search("postgresql://u:hunter2@h/db")
