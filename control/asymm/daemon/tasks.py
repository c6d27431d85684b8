"""Where each capability plugs its periodic work into the daemon.

Each area (telemetry, sync, drift, ...) provides a factory ``(daemon) -> list[Task]`` and is
listed in :data:`TASK_FACTORIES`; the daemon builds its schedule from them at start.  Keeping the
list here, rather than in the daemon, means adding a capability touches one line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from asymm.advisor.daemon_task import daemon_tasks as advisor_tasks
from asymm.daemon.scheduler import Task
from asymm.dashboard import daemon_tasks as dashboard_tasks
from asymm.drift import daemon_tasks as drift_tasks
from asymm.sync.alerts import daemon_tasks as sync_alert_tasks
from asymm.sync.worker import daemon_tasks as sync_tasks
from asymm.telemetry import daemon_tasks as telemetry_tasks

if TYPE_CHECKING:
    from asymm.daemon.service import Daemon

TaskFactory = Callable[["Daemon"], list[Task]]

TASK_FACTORIES: list[TaskFactory] = [
    telemetry_tasks,
    sync_tasks,
    sync_alert_tasks,
    drift_tasks,
    advisor_tasks,
    dashboard_tasks,
]
