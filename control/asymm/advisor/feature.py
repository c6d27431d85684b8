"""The daemon runs the advisor on a schedule (settings ``advisor.enabled``, ``advisor.every``).

Why a background thread: a run takes seconds, far more than a tick, so the tick only starts a due
run; suggest only unless ``advisor.auto_apply`` (docs/advisor.md). :class:`AdvisorFeature` is that
schedule as a daemon feature; the advice itself is :mod:`asymm.advisor.advise`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from asymm.advisor import api as advisor_api
from asymm.daemon.feature import FeatureBase, TaskContext
from asymm.daemon.pulse import Tick
from asymm.daemon.scheduler import Task
from asymm.db import connect

log = logging.getLogger("asymm.advisor")
CHECK_EVERY_S = 5.0
CONSTANTS_EVERY_S = 2.0
"""How often the daemon reads grammar constants from pg_stat_activity (one bounded query)."""
TRIED_CAP = 10_000


class ConstantsSampler:
    """Grammar constants of the statements other sessions show now (:mod:`asymm.advisor.constants`).

    Why on a short period and not with the advisor run: pg_stat_activity shows only each session's
    current or last statement, so the constants must be caught while a session still shows it.
    Statements already stored are filtered in SQL; those tried without result are not parsed again
    (a set capped at TRIED_CAP, then forgotten, so that a later, complete text gets its chance).
    """

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.tried: set[int] = set()
        self.stored = 0
        self.available: bool | None = None

    def tick(self, _tick: Tick) -> None:
        from asymm.advisor.constants import sample_constants

        conn = self.ctx.conn()
        if self.available is None:
            # CASE, not AND: has_table_privilege raises on a missing table (an install older than 0.3.0)
            row = conn.execute(
                "SELECT CASE WHEN to_regclass('asymm.query_constants') IS NOT NULL"
                "  THEN pg_catalog.has_table_privilege('asymm.query_constants', 'INSERT') ELSE false END"
                "   AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')"
            ).fetchone()
            self.available = bool(row and row[0])
        if not self.available:
            return
        if len(self.tried) > TRIED_CAP:
            self.tried.clear()
        result = sample_constants(conn, exclude=self.tried)
        self.stored += int(result["stored"])
        self.tried.update(result["tried"])


class ScheduledAdvisor:
    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.last_run: float | None = None  # monotonic time of the last start
        self.thread: threading.Thread | None = None
        self.runs = 0
        self.last_error: str | None = None

    def tick(self, _tick: Tick) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        conn = self.ctx.conn()
        row = conn.execute(
            "SELECT asymm.setting('advisor.enabled')::boolean,"
            "       extract(epoch FROM asymm.setting('advisor.every')::interval),"
            "       asymm.setting('advisor.auto_apply')::boolean"
        ).fetchone()
        if row is None or not row[0]:
            return
        every = float(str(row[1]))
        if self.last_run is not None and time.monotonic() - self.last_run < every:
            return
        self.last_run = time.monotonic()
        self.thread = threading.Thread(target=self.run, args=(bool(row[2]),), name="asymm-advisor", daemon=True)
        self.thread.start()

    def run(self, auto_apply: bool) -> None:
        try:
            with connect(self.ctx.dsn) as conn:
                result = advisor_api.advise_and_store(conn, auto_apply=auto_apply)
            self.runs += 1
            self.last_error = None
            log.info(
                "advisor: %d suggestions (%d statements, %d what-if calls, %.1f s)",
                len(result["indexes"]),
                result["statements"],
                result["whatif_calls"],
                result["runtime_s"],
            )
        except Exception as exc:  # the daemon keeps running; the next run may succeed
            self.last_error = str(exc)
            log.warning("advisor run failed: %s", exc)


class AdvisorFeature(FeatureBase):
    name = "advisor"

    def __init__(self) -> None:
        self.runner: ScheduledAdvisor | None = None
        self.constants: ConstantsSampler | None = None

    def tasks(self, ctx: TaskContext) -> list[Task]:
        self.runner = ScheduledAdvisor(ctx)
        self.constants = ConstantsSampler(ctx)
        return [
            Task("advisor", self.runner.tick, every_s=CHECK_EVERY_S, regime="exploration"),
            Task("advisor-constants", self.constants.tick, every_s=CONSTANTS_EVERY_S, regime="stabilization"),
        ]

    def status(self) -> dict[str, Any] | None:
        if self.runner is None:
            return None
        return {
            "runs": self.runner.runs,
            "running": self.runner.thread is not None and self.runner.thread.is_alive(),
            "failed": self.runner.last_error is not None,
            "constants_stored": self.constants.stored if self.constants else 0,
        }
