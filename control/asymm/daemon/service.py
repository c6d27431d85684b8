"""The daemon process: connections, registration, signal handling and the pulse loop.

State that matters lives in PostgreSQL (``asymm.daemons`` and, later, consumer positions), so a
daemon can be killed at any point and another started in its place.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from types import FrameType

import psycopg
import redis

from asymm import __version__
from asymm.daemon.pulse import DEFAULT_PERIOD_S, Pulse, Tick
from asymm.daemon.scheduler import Scheduler, Task
from asymm.daemon.tasks import TASK_FACTORIES
from asymm.db import connect
from asymm.errors import AsymmError

log = logging.getLogger("asymm.daemon")


@dataclass
class DaemonConfig:
    dsn: str
    redis_url: str | None = None
    period: float = DEFAULT_PERIOD_S
    max_ticks: int | None = None  # stop after this many ticks (tests, the demo); None runs forever
    heartbeat_every_s: float = 1.0


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.daemon_id = uuid.uuid4()
        self.stop_event = threading.Event()
        self.pulse = Pulse(config.period, stop=self.stop_event)
        self.scheduler = Scheduler()
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.redis: redis.Redis | None = None
        heartbeat_ticks = max(1, round(config.heartbeat_every_s / config.period))
        self.scheduler.add(Task("heartbeat", self._heartbeat, every=heartbeat_ticks))
        if config.redis_url:
            self.scheduler.add(Task("redis-ping", self._redis_ping, every=heartbeat_ticks))
        for factory in TASK_FACTORIES:
            for task in factory(self):
                self.scheduler.add(task)

    # -- lifecycle ------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s, stopping after the current tick", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    def run(self) -> None:
        self.conn = connect(self.config.dsn)
        self._check_extension()
        self._register()
        if self.config.redis_url:
            self.redis = redis.Redis.from_url(self.config.redis_url, socket_timeout=1.0,
                                              client_name="asymm")
        log.info("asymm daemon %s started: period %.1f ms", self.daemon_id, self.config.period * 1000)
        try:
            for tick in self.pulse.ticks():
                self.scheduler.run_tick(tick)
                if self.config.max_ticks is not None and self.pulse.stats.ticks >= self.config.max_ticks:
                    break
        finally:
            self._unregister()
            self.conn.close()
            if self.redis is not None:
                self.redis.close()
        log.info("asymm daemon stopped after %d ticks (%d skipped, %d overruns)",
                 self.pulse.stats.ticks, self.pulse.stats.skipped, self.scheduler.overruns)

    # -- tasks ----------------------------------------------------------------------------------

    def _heartbeat(self, _tick: Tick) -> None:
        assert self.conn is not None
        self.conn.execute(
            "UPDATE asymm.daemons SET last_seen = now(), ticks = %s, skipped_ticks = %s, overruns = %s"
            " WHERE daemon_id = %s",
            (self.pulse.stats.ticks, self.pulse.stats.skipped, self.scheduler.overruns, self.daemon_id),
        )

    def _redis_ping(self, _tick: Tick) -> None:
        assert self.redis is not None
        self.redis.ping()

    # -- registration ---------------------------------------------------------------------------

    def _check_extension(self) -> None:
        assert self.conn is not None
        if not self.conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'asymm'").fetchone():
            raise AsymmError("the asymm extension is not installed in this database (CREATE EXTENSION asymm CASCADE)")

    def _register(self) -> None:
        assert self.conn is not None
        self.conn.execute(
            "INSERT INTO asymm.daemons (daemon_id, host, pid, version) VALUES (%s, %s, %s, %s)",
            (self.daemon_id, socket.gethostname(), os.getpid(), __version__),
        )

    def _unregister(self) -> None:
        assert self.conn is not None
        try:
            self.conn.execute(
                "UPDATE asymm.daemons SET stopped_at = now(), last_seen = now(), ticks = %s,"
                " skipped_ticks = %s, overruns = %s WHERE daemon_id = %s",
                (self.pulse.stats.ticks, self.pulse.stats.skipped, self.scheduler.overruns, self.daemon_id),
            )
        except psycopg.Error as exc:  # the server may be gone; the row then just goes stale
            log.warning("could not record the daemon's stop: %s", exc)
