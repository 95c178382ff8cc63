"""Static checks of the deployment files (no Docker engine runs here or in CI)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_wires_timescaledb_user_code_webserver_and_daemon_without_credentials_in_the_file():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"warehouse", "user-code", "dagster-webserver", "dagster-daemon"}
    assert services["warehouse"]["image"].startswith("timescale/timescaledb")
    for name in ("user-code", "dagster-webserver", "dagster-daemon"):
        env = services[name]["environment"]
        assert env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
        assert (
            "${POSTGRES_PASSWORD}" in env["DAGSTER_PG_URL"] and "${POSTGRES_PASSWORD}" in env["PIPELINE_DATABASE_URL"]
        )
        assert services[name]["depends_on"]["warehouse"]["condition"] == "service_healthy"
    assert "dagster api grpc -m pipeline_assets.definitions -h 0.0.0.0 -p 4000" in services["user-code"]["command"][-1]
    for name in ("dagster-webserver", "dagster-daemon"):
        assert "-w deploy/workspace-grpc.yaml" in services[name]["command"][-1]
    grpc = yaml.safe_load((ROOT / "deploy/workspace-grpc.yaml").read_text())["load_from"][0]["grpc_server"]
    assert (grpc["host"], grpc["port"]) == ("user-code", 4000)
    assert services["warehouse"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")


def test_helm_values_configure_the_k8s_run_launcher_and_queued_coordinator():
    """Dagster's Helm chart turns these values into dagster.yaml; the same settings, in the
    launcher's own config schema, validate against the installed dagster-k8s."""
    from dagster._config import validate_config
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher

    values = yaml.safe_load((ROOT / "deploy/helm/values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher_config = {
        "job_namespace": launcher["jobNamespace"],
        "env_secrets": [secret["name"] for secret in launcher["envSecrets"]],
        "run_k8s_config": {"container_config": launcher["runK8sConfig"]["containerConfig"]},
        "instance_config_map": "dagster-instance",
        "service_account_name": "dagster",
    }
    result = validate_config(K8sRunLauncher.config_type(), launcher_config)
    assert result.success, result.errors
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    coordinator = {
        "max_concurrent_runs": queued["maxConcurrentRuns"],
        "tag_concurrency_limits": queued["tagConcurrencyLimits"],
    }
    assert validate_config(QueuedRunCoordinator.config_type(), coordinator).success
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "pipeline_assets.definitions"]
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is True


def test_instance_configs_enable_run_monitoring_pools_and_retention(tmp_path):
    from dagster import DagsterInstance

    for name in ("dagster.yaml",):
        home = tmp_path / name.replace(".", "_")
        home.mkdir()
        (home / "dagster.yaml").write_text((ROOT / name).read_text())
        with DagsterInstance.from_config(str(home)) as instance:
            assert instance.run_monitoring_enabled
            assert instance.get_concurrency_config().pool_config.default_pool_limit == 4
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"


def test_dockerfile_copies_only_files_that_exist():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, _target = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), source


def test_no_literal_passwords_in_tracked_config():
    # a value that is not an environment reference, after a password key or in a URL's user:password@
    assignment = re.compile(
        r"(?<![{\w])\w*(password|passwd|secret)(?!\w*Name)\w*\s*[:=]\s*(?!\$\{)['\"]?[^\s'\"]{4,}", re.IGNORECASE
    )
    url_password = re.compile(r"://[^:/@\s]+:(?!\$\{)[^@\s]+@")
    for name in (
        "docker-compose.yml",
        "dagster.yaml",
        "deploy/dagster-postgres.yaml",
        "deploy/helm/values.yaml",
        "deploy/workspace-grpc.yaml",
        "workspace.yaml",
        "Makefile",
    ):
        text = (ROOT / name).read_text()
        assert not assignment.search(text), name
        assert not url_password.search(text), name
    assert assignment.search("POSTGRES_PASSWORD: hunter22") and url_password.search("postgresql://u:hunter2@h/db")
