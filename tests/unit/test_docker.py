"""The docker files' structure, read without docker or a server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


DOCKER = ROOT / "docker"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / "compose.yaml").read_text()))


def test_compose_structure() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "daemon", "grafana"}
    for name in ("postgres", "daemon"):
        dockerfile = DOCKER.parent / services[name]["build"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile
    daemon_env = services["daemon"]["environment"]
    assert "@postgres:5432/" in daemon_env["ASYMM_DSN"] and daemon_env["ASYMM_REDIS_URL"].startswith("redis://redis:")
    assert set(services["daemon"]["depends_on"]) == {"postgres", "redis"}
    for volume in services["grafana"]["volumes"]:
        source = volume.split(":")[0]
        assert (DOCKER / source).is_dir(), source
    for service in services.values():  # nothing published beyond the loopback interface
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_dockerfiles_copy_existing_paths() -> None:
    for dockerfile in DOCKER.glob("*.Dockerfile"):
        text = dockerfile.read_text()
        assert re.search(r"^FROM \S+", text, re.M), dockerfile
        for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
            *sources, _dest = line.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
