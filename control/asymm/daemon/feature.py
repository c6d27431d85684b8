"""What a feature (telemetry, sync, drift, advisor, dashboard, ...) gives the daemon, and what it gets.

Why a protocol owned by the daemon: the daemon runs tasks and serves routes without knowing which
features exist, and features plug in without importing the daemon's service (no import cycle).
:class:`TaskContext` is all a task or handler may use; :class:`Feature` is a name, tasks, JSON
routes and a status.  The one list of features is built by :mod:`asymm.app`.

Details: docs/daemon.md, "Features".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import psycopg

from asymm.daemon.config import DaemonConfig
from asymm.daemon.scheduler import Task

Conn = psycopg.Connection[tuple[object, ...]]
Params = dict[str, list[str]]


class ApiError(Exception):
    """Raise from a route handler to answer with this status and message (e.g. 400 for a bad parameter)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TaskContext(Protocol):
    """The daemon as a task or route handler sees it.

    ``conn()`` is the pulse thread's connection (replaced after a reconnect, so ask for it on every
    run); route handlers and background threads must open their own (``asymm.db.connect(ctx.dsn)``).
    """

    @property
    def config(self) -> DaemonConfig: ...

    @property
    def dsn(self) -> str: ...

    @property
    def redis_url(self) -> str | None: ...

    @property
    def period(self) -> float: ...

    @property
    def stop_event(self) -> threading.Event: ...

    def conn(self) -> Conn: ...

    def notifying(self) -> bool:
        """Whether any webhook is configured (a task may skip the work of building a payload)."""
        ...

    def notify(self, event: str, payload: dict[str, Any]) -> None: ...

    def status(self) -> dict[str, Any]:
        """The daemon's ``/api/status`` document."""
        ...


Route = Callable[[TaskContext, Params], Any]
"""``handler(ctx, params)`` for ``GET /api/<name>``: the query parameters in, JSON-able data out."""


def valid_route_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-_/" for c in name)


class Feature(Protocol):
    name: str

    def tasks(self, ctx: TaskContext) -> list[Task]:
        """Periodic work, made once when the daemon is built."""
        ...

    def routes(self) -> Mapping[str, Route]:
        """JSON endpoints: name (``GET /api/<name>``) -> handler."""
        ...

    def status(self) -> dict[str, Any] | None:
        """What this feature adds to ``/api/status`` under ``features.<name>`` (None: nothing)."""
        ...


class FeatureBase:
    """Defaults for a feature with no tasks, routes or status; subclasses override what they have."""

    name = "feature"

    def tasks(self, ctx: TaskContext) -> list[Task]:
        return []

    def routes(self) -> Mapping[str, Route]:
        return {}

    def status(self) -> dict[str, Any] | None:
        return None
