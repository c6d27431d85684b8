"""The stable import path of asymm's application read API: ``from asymm.cache import Cache``.

The implementation lives in :mod:`asymm.sync.cache`, beside the Redis layout and fill scripts it
shares with the sync; this module only re-exports its public names, so that applications keep
one import path whatever the package layout becomes.
"""

from asymm.sync.cache import (
    MAX_FILL_AGE_S,
    RESULT_SETTINGS,
    Analysis,
    Cache,
    CacheStats,
    analyse,
    read_tables,
    statement_tables,
    target_risk,
)

__all__ = [
    "MAX_FILL_AGE_S",
    "RESULT_SETTINGS",
    "Analysis",
    "Cache",
    "CacheStats",
    "analyse",
    "read_tables",
    "statement_tables",
    "target_risk",
]
