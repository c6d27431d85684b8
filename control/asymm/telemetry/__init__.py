"""Telemetry (UX-Sonar and State Sonar): the Python side of ``sql/20_telemetry/``.

Two faces, like every feature: :mod:`asymm.telemetry.api` (functions over a connection, for the
CLI, the dashboard and the daemon) and :mod:`asymm.telemetry.feature` (the daemon's tasks).
"""

from asymm.telemetry.api import duplicates, health, retention, slow_threshold_ms, smoothness, snapshot, top

__all__ = ["duplicates", "health", "retention", "slow_threshold_ms", "smoothness", "snapshot", "top"]
