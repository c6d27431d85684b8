"""The composition root: which features a daemon runs, for the CLI (``asymm daemon``) and the demo.

Why one place: the daemon knows no feature (:mod:`asymm.daemon.feature`), so something above every
feature has to list them; the order is the order their tasks are scheduled in.
"""

from __future__ import annotations

from typing import Any

from asymm.advisor.feature import AdvisorFeature
from asymm.daemon.config import DaemonConfig, LoadedConfig
from asymm.daemon.feature import Feature
from asymm.daemon.service import Daemon
from asymm.dashboard.feature import DashboardFeature
from asymm.drift.feature import DriftFeature
from asymm.sync.feature import SyncFeature
from asymm.telemetry.feature import TelemetryFeature


def default_features(config: DaemonConfig) -> list[Feature]:
    """Every feature of the product, fresh (features keep per-daemon state)."""
    del config  # each feature reads what it needs from the context (e.g. the sync: the Redis URL)
    return [TelemetryFeature(), SyncFeature(), DriftFeature(), AdvisorFeature(), DashboardFeature()]


def make_daemon(
    config: DaemonConfig,
    *,
    extra: list[Feature] | None = None,
    loaded: LoadedConfig | None = None,
    flags: dict[str, Any] | None = None,
) -> Daemon:
    """A daemon with :func:`default_features` (and ``extra`` ones after them, e.g. a test's)."""
    return Daemon(config, [*default_features(config), *(extra or [])], loaded=loaded, flags=flags)
