"""The daemon knows no feature: it schedules, serves and reports what it is given (no servers needed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from asymm.app import default_features, make_daemon
from asymm.daemon.config import DaemonConfig
from asymm.daemon.feature import FeatureBase, Params, Route, TaskContext
from asymm.daemon.pulse import Tick
from asymm.daemon.scheduler import Task
from asymm.daemon.service import Daemon


class Probe(FeatureBase):
    """A feature that records what the daemon gave it."""

    name = "probe"

    def __init__(self, route: str = "probe") -> None:
        self.route = route
        self.ctx: TaskContext | None = None

    def tasks(self, ctx: TaskContext) -> list[Task]:
        self.ctx = ctx
        return [Task("probe-task", self.run, every_s=1.0)]

    def run(self, _tick: Tick) -> None:
        pass

    def routes(self) -> Mapping[str, Route]:
        return {self.route: lambda ctx, params: {"dsn": ctx.dsn, "params": params}}

    def status(self) -> dict[str, Any] | None:
        return {"probed": True}


def config() -> DaemonConfig:
    return DaemonConfig(dsn="host=/nonexistent dbname=none", period=0.1, http_port=0)


def test_a_features_tasks_routes_and_status_reach_the_daemon() -> None:
    probe = Probe()
    daemon = Daemon(config(), [probe])
    task = next(t for t in daemon.scheduler.tasks if t.name == "probe-task")
    assert task.every == 10  # one second at a 0.1 s period
    assert probe.ctx is not None and probe.ctx.dsn == daemon.config.dsn and probe.ctx.period == 0.1
    assert daemon.feature("probe") is probe
    with pytest.raises(KeyError):
        daemon.feature("drift")
    params: Params = {"x": ["1"]}
    assert daemon.call_route("probe", params) == {"dsn": daemon.config.dsn, "params": params}
    assert sorted(daemon.routes) == ["probe", "status"]
    assert daemon.status()["features"] == {"probe": {"probed": True}}


def test_a_daemon_without_features_runs_only_its_own_tasks() -> None:
    daemon = Daemon(config(), [])
    assert [t.name for t in daemon.scheduler.tasks] == ["heartbeat", "daemon-registry-gc"]
    assert list(daemon.routes) == ["status"]


def test_route_names_are_unique_and_checked() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Daemon(config(), [Probe(route="status")])
    with pytest.raises(ValueError, match="invalid"):
        Daemon(config(), [Probe(route="bad name")])


def test_the_composition_root_gives_every_feature_once() -> None:
    names = [f.name for f in default_features(config())]
    assert names == ["telemetry", "sync", "drift", "advisor", "dashboard"]
    daemon = make_daemon(config(), extra=[Probe()])
    assert [f.name for f in daemon.features] == [*names, "probe"]
    assert {"dashboard", "graph", "probe", "status"} <= set(daemon.routes)
