"""The daemon runs the advisor on a schedule (settings ``advisor.enabled``, ``advisor.every``).

Why a background thread: a run takes seconds, far more than a tick, so the tick only starts a due
run; suggest only unless ``advisor.auto_apply`` (docs/advisor.md).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from asymm.daemon.pulse import Tick
from asymm.daemon.scheduler import Task
from asymm.db import connect

if TYPE_CHECKING:
    from asymm.daemon.service import Daemon

log = logging.getLogger("asymm.advisor")
CHECK_EVERY_S = 5.0


class ScheduledAdvisor:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.last_run: float | None = None  # monotonic time of the last start
        self.thread: threading.Thread | None = None
        self.runs = 0
        self.last_error: str | None = None

    def tick(self, _tick: Tick) -> None:
        conn = self.daemon.conn
        if conn is None or (self.thread is not None and self.thread.is_alive()):
            return
        row = conn.execute(
            "SELECT asymm.setting('advisor.enabled')::boolean,"
            "       extract(epoch FROM asymm.setting('advisor.every')::interval),"
            "       asymm.setting('advisor.auto_apply')::boolean").fetchone()
        if row is None or not row[0]:
            return
        every = float(str(row[1]))
        if self.last_run is not None and time.monotonic() - self.last_run < every:
            return
        self.last_run = time.monotonic()
        self.thread = threading.Thread(target=self.run, args=(bool(row[2]),), name="asymm-advisor", daemon=True)
        self.thread.start()

    def run(self, auto_apply: bool) -> None:
        from asymm.advisor.advise import advise, settings_from_db, store
        from asymm.advisor.apply import apply_result

        try:
            with connect(self.daemon.config.dsn) as conn:
                result = advise(conn, settings_from_db(conn))
                store(conn, result)
                if auto_apply:
                    apply_result(conn, result)
            self.runs += 1
            self.last_error = None
            log.info("advisor: %d suggestions (%d statements, %d what-if calls, %.1f s)",
                     len(result["indexes"]), result["statements"], result["whatif_calls"], result["runtime_s"])
        except Exception as exc:  # the daemon keeps running; the next run may succeed
            self.last_error = str(exc)
            log.warning("advisor run failed: %s", exc)


def daemon_tasks(daemon: Daemon) -> list[Task]:
    runner = ScheduledAdvisor(daemon)
    every = max(1, round(CHECK_EVERY_S / daemon.config.period))
    task = Task("advisor", runner.tick, every=every, regime="exploration")
    daemon.advisor = runner  # type: ignore[attr-defined]  # for tests and status
    return [task]
