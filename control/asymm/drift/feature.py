"""The daemon's side of drift: periodic full catalog diff, webhook, opt-in restore of dropped indexes.

Why a module apart from :mod:`asymm.drift.api`: the API answers a caller; this is the daemon's
schedule (:class:`DriftFeature`), with a thread of its own for the restore.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from psycopg import sql

from asymm.daemon.feature import FeatureBase, TaskContext
from asymm.daemon.pulse import Tick
from asymm.daemon.scheduler import Task
from asymm.db import connect, one_line
from asymm.drift.api import (
    Conn,
    index_restore_statements,
    latest_items,
    lock_timeout,
    reconcile,
    restore_indexes_enabled,
)
from asymm.errors import AsymmError

log = logging.getLogger("asymm.drift")


NOTIFY_ITEMS = 20
"""How many drift items a webhook notification carries at most."""


class DriftWatcher:
    """The daemon's side of drift: periodic full catalog diff, opt-in index restore.

    Reconciliation is what catches DDL the event triggers never saw (replica role, a disabled
    event trigger).  The restore of a dropped index runs in its own thread and connection because a
    CREATE INDEX CONCURRENTLY can take far longer than a tick.
    """

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.restoring: threading.Thread | None = None
        self.restored: list[str] = []

    def reconcile(self, _tick: Tick) -> None:
        conn = self.ctx.conn()
        new_findings = reconcile(conn)
        if new_findings:
            log.warning("drift: %s new finding(s); asymm drift shows them", new_findings)
            self._notify(conn, new_findings)
        if restore_indexes_enabled(conn) and (self.restoring is None or not self.restoring.is_alive()):
            statements = index_restore_statements(conn)
            if statements:
                self.restoring = threading.Thread(
                    target=self._restore, args=(statements,), daemon=True, name="asymm-drift-restore"
                )
                self.restoring.start()

    def _notify(self, conn: Conn, new_findings: int) -> None:
        """Tell the configured webhooks what drifted (the first items; `asymm drift` has them all)."""
        items = latest_items(conn, NOTIFY_ITEMS)
        self.ctx.notify("drift", {"database": conn.info.dbname, "new_findings": new_findings, "items": items})

    def _restore(self, statements: list[str]) -> None:
        try:
            with connect(self.ctx.dsn) as conn:
                timeout = lock_timeout(conn)
                for statement in statements:
                    try:
                        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(timeout)))
                        conn.execute(statement.encode())  # from asymm.drift(): baseline DDL
                        self.restored.append(statement)
                        log.warning("drift: restored a dropped baseline index: %s", statement)
                    except psycopg.Error as exc:
                        log.error("drift: could not restore index (%s): %s", statement, one_line(str(exc)))
        except AsymmError as exc:
            log.error("drift: restore connection failed: %s", exc)


def reconcile_every_s(dsn: str) -> float:
    """Seconds between reconciliations, from the ``drift.reconcile_every`` setting (read once at start)."""
    try:
        with connect(dsn) as conn:
            row = conn.execute("SELECT extract(epoch FROM asymm.setting('drift.reconcile_every')::interval)").fetchone()
        return float(row[0]) if row else 10.0  # type: ignore[arg-type]
    except (AsymmError, psycopg.Error):
        return 10.0


class DriftFeature(FeatureBase):
    name = "drift"

    def __init__(self) -> None:
        self.watcher: DriftWatcher | None = None

    def tasks(self, ctx: TaskContext) -> list[Task]:
        self.watcher = DriftWatcher(ctx)
        return [
            Task("drift-reconcile", self.watcher.reconcile, every_s=reconcile_every_s(ctx.dsn), regime="stabilization")
        ]

    def status(self) -> dict[str, Any] | None:
        if self.watcher is None:
            return None
        restoring = self.watcher.restoring
        return {"restoring": restoring is not None and restoring.is_alive(), "restored": len(self.watcher.restored)}
