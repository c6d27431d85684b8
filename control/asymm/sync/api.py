"""The sync's functions over a connection, used by the CLI, the dashboard and the demo.

Why a module: ``asymm.sync_status()`` is read in three places; each reads it through here.
"""

from __future__ import annotations

from typing import Any

import psycopg

from asymm.errors import AsymmError

Conn = psycopg.Connection[Any]


def status(conn: Conn) -> dict[str, Any]:
    """``asymm.sync_status()``: lag, backlog, and each tracked table's state."""
    row = conn.execute("SELECT asymm.sync_status()").fetchone()
    result: dict[str, Any] = dict(row[0]) if row and row[0] else {}
    return result


def checked_status(conn: Conn) -> dict[str, Any]:
    """:func:`status`, or a clear error when the extension (0.2.0 or later) is missing."""
    row = conn.execute("SELECT to_regproc('asymm.sync_status') IS NOT NULL").fetchone()
    if not row or not row[0]:
        raise AsymmError("the asymm extension (0.2.0 or later) is not installed in this database")
    return status(conn)
