"""Exact, loss-free mirroring of tracked tables into Redis.

Why it stays exact (a C capture into a thin outbox, consumption below the snapshot horizon,
versioned compare-and-set in Lua, floors, epochs, fencing): docs/sync.md.
"""

from asymm.sync.engine import BatchResult, SyncEngine

__all__ = ["BatchResult", "SyncEngine"]
