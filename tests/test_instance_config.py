from __future__ import annotations

import pytest
import yaml
from dagster import DagsterInstance, materialize
from dagster._core.storage.runs import SqliteRunStorage

from pipeline_assets.dagster_home import DagsterHomeError, prepare


def test_default_instance_is_sqlite_under_dagster_home(tmp_path):
    config = prepare(tmp_path, environ={})
    assert "storage" not in yaml.safe_load(config.read_text())
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, SqliteRunStorage)


def test_postgres_instance_when_dagster_pg_url_is_set(tmp_path, database_url, monkeypatch):
    pg_url = database_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    config = prepare(tmp_path)
    assert yaml.safe_load(config.read_text())["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
    assert database_url.rsplit("/", 1)[-1] not in config.read_text()  # the URL stays in the environment

    from dagster import asset

    @asset
    def probe() -> int:
        return 1

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 4
        result = materialize([probe], instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None
        assert instance.get_latest_materialization_event(probe.key) is not None


def test_non_psycopg2_url_is_refused(tmp_path):
    with pytest.raises(DagsterHomeError, match="postgresql\\+psycopg2://"):
        prepare(tmp_path, environ={"DAGSTER_PG_URL": "postgresql://postgres@127.0.0.1/x"})
