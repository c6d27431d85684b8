"""Grafana provisioning files, read without Grafana or a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


GRAFANA = ROOT / "docker" / "grafana"


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((GRAFANA / "dashboards" / "asymm.json").read_text()))


def test_provisioning_files() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "asymm.yaml").read_text())
    (ds,) = datasources["datasources"]
    assert ds["uid"] == "asymm-postgres" and ds["type"] == "grafana-postgresql-datasource"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "asymm.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    board = _dashboard()
    assert board["uid"] == "asymm-overview" and board["schemaVersion"] == 39  # Grafana 11.0
    compose = (ROOT / "docker" / "compose.yaml").read_text()
    assert "grafana/grafana-oss:11.0.0" in compose  # the major the schemaVersion belongs to
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        assert p["datasource"]["uid"] == ds["uid"]
        assert all(t["datasource"]["uid"] == ds["uid"] for t in p["targets"])
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    # The generator and the committed JSON agree.
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_dashboard", GRAFANA / "make_dashboard.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == board
