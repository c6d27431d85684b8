"""The web dashboard: :mod:`asymm.dashboard.api` (its panels, over a connection) and
:mod:`asymm.dashboard.feature` (its routes in the daemon)."""
