"""The daemon process: connections, leadership, registration, signals, HTTP and the pulse loop.

State that matters lives in PostgreSQL, so a daemon can be killed at any point and another started
in its place; only the advisory-lock leader runs tasks.  Broken connections are replaced on a
later tick with backoff, never fatal.  The daemon knows no feature: it runs the
:class:`~asymm.daemon.feature.Feature` list the composition root (:mod:`asymm.app`) gives it.

Details: docs/daemon.md, "The process".
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import redis

from asymm import __version__
from asymm.daemon import config as config_mod
from asymm.daemon import sdnotify
from asymm.daemon import token as token_mod
from asymm.daemon.backoff import Backoff
from asymm.daemon.config import DaemonConfig
from asymm.daemon.feature import Conn, Feature, Params, Route, valid_route_name
from asymm.daemon.http import HttpServer, api_status
from asymm.daemon.leader import LEADER_LOCK_KEY, LeaderElection
from asymm.daemon.notify import WebhookNotifier
from asymm.daemon.pulse import Pulse, Tick
from asymm.daemon.scheduler import REGIMES, Scheduler, Task
from asymm.db import connect, require_extension
from asymm.errors import AsymmError
from asymm.redis_conn import RedisClient, connect_redis

__all__ = ["Daemon", "DaemonConfig", "Task"]

log = logging.getLogger("asymm.daemon")


class DaemonContext:
    """The :class:`~asymm.daemon.feature.TaskContext` a daemon gives its features' tasks and routes."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    @property
    def config(self) -> DaemonConfig:
        return self._daemon.config

    @property
    def dsn(self) -> str:
        return self._daemon.config.dsn

    @property
    def redis_url(self) -> str | None:
        return self._daemon.config.redis_url

    @property
    def period(self) -> float:
        return self._daemon.config.period

    @property
    def stop_event(self) -> threading.Event:
        return self._daemon.stop_event

    def conn(self) -> Conn:
        conn = self._daemon.conn
        assert conn is not None, "the pulse connection is made before the first tick"
        return conn

    def notifying(self) -> bool:
        return bool(self._daemon.notifier.urls)

    def notify(self, event: str, payload: dict[str, Any]) -> None:
        self._daemon.notifier.notify(event, payload)

    def status(self) -> dict[str, Any]:
        return self._daemon.status()


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        features: Sequence[Feature],
        *,
        loaded: config_mod.LoadedConfig | None = None,
        flags: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.config_file = loaded.file if loaded else None
        self.config_sources = loaded.sources if loaded else {}
        self.config_flags = dict(flags or {})
        self.daemon_id = uuid.uuid4()
        self.started_at = time.time()
        self.stop_event = threading.Event()
        self.pulse = Pulse(config.period, stop=self.stop_event)
        self.scheduler = Scheduler(
            config.budget_fraction,
            split=config.regime_split,
            backoff_cap_s=config.task_backoff_max_s,
            period=config.period,
        )
        self.scheduler.on_error = self._task_failed
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.redis: RedisClient | None = None
        self.postgres_up = False
        self.redis_up = False
        self.reconnects = 0
        self.reloads = 0
        self.ready = False
        self.last_tick_done: float | None = None
        self._reload_requested = threading.Event()
        self._pg_backoff = Backoff(config.reconnect_base_s, config.reconnect_max_s)
        self.leader = self._make_leader(config)
        self.sd = sdnotify.Notifier()
        self.notifier = WebhookNotifier(
            config.notify_urls,
            retries=config.notify_retries,
            timeout_s=config.notify_timeout_s,
            max_queue=config.notify_queue,
            daemon_id=str(self.daemon_id),
        )
        self.http: HttpServer | None = None
        self.generated_token: str | None = None  # made at start when the API needs one and none is configured
        self.token_dir: Path | None = None  # where the generated token is written (None: kept in memory)
        self.token_file: Path | None = None  # the file written, once the HTTP server is bound
        self.context = DaemonContext(self)
        heartbeat_s = config.heartbeat_every_s
        self.heartbeat_task = Task("heartbeat", self._heartbeat, every_s=heartbeat_s, leader_only=False)
        self.scheduler.add(self.heartbeat_task)
        if config.redis_url:
            self.scheduler.add(
                Task("redis-ping", self._redis_ping, every_s=heartbeat_s, leader_only=False, needs_postgres=False)
            )
        self.scheduler.add(Task("daemon-registry-gc", self._registry_gc, every_s=10 * heartbeat_s))
        self.features: tuple[Feature, ...] = tuple(features)
        self.routes: dict[str, Route] = {"status": api_status}
        for feature in self.features:
            if any(f is not feature and f.name == feature.name for f in self.features):
                raise ValueError(f"two features named {feature.name!r}")
            for task in feature.tasks(self.context):
                self.scheduler.add(task)
            for name, handler in feature.routes().items():
                if not valid_route_name(name) or name in self.routes:
                    raise ValueError(f"feature {feature.name!r}: invalid or duplicate API route {name!r}")
                self.routes[name] = handler

    def feature(self, name: str) -> Feature:
        """The feature of that name (KeyError if this daemon has none)."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def call_route(self, name: str, params: Params) -> Any:
        """Run the handler of ``GET /api/<name>`` (the HTTP thread calls this)."""
        return self.routes[name](self.context, params)

    def _make_leader(self, config: DaemonConfig) -> LeaderElection:
        # The lock session must not time out between two polls, whatever the period.
        timeout = max(config.leader_session_timeout_s, 5 * config.period) if config.leader_session_timeout_s else 0
        return LeaderElection(
            config.dsn,
            key=LEADER_LOCK_KEY,
            keepalive_s=config.leader_keepalive_s,
            session_timeout_s=timeout,
            backoff=Backoff(config.reconnect_base_s, config.reconnect_max_s),
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s, stopping after the current tick", signal.Signals(signum).name)
            self.stop_event.set()

        def request_reload(_signum: int, _frame: FrameType | None) -> None:
            log.info("received SIGHUP, reloading the configuration before the next tick")
            self._reload_requested.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGHUP, request_reload)

    def run(self) -> None:
        self._prepare_token()  # first: a refused token directory is a usage error, before any connection
        self.sd.status("connecting to PostgreSQL")
        self.conn = connect(self.config.dsn)
        self.postgres_up = True
        self._check_extension()
        self._register()
        if self.config.redis_url:
            # connect_redis: a Redis Cluster seed URL gives a cluster client (the sync needs it)
            self.redis = connect_redis(self.config.redis_url, timeout=1.0)
            try:
                self.redis_up = bool(self.redis.ping())
            except redis.RedisError as exc:
                log.warning("Redis does not answer yet (%s); will keep trying", exc)
        self.leader.poll()  # the first round trip on the lock session: leader or standby from here on
        self._start_http()
        if self.config.notify_urls:
            self.notifier.start()
        self.ready = True
        self.sd.ready(self._status_line())
        log.info(
            "asymm daemon %s started as %s: period %.1f ms",
            self.daemon_id,
            "leader" if self.leader.is_leader else "standby",
            self.config.period * 1000,
        )
        try:
            for tick in self.pulse.ticks():
                if self._reload_requested.is_set():
                    self._reload()
                self._ensure_postgres()
                leader = self.leader.poll()
                self.scheduler.run_tick(tick, leader=leader, postgres_up=self.postgres_up)
                self.last_tick_done = time.monotonic()
                self.sd.watchdog(self.last_tick_done)
                if self.config.max_ticks is not None and self.pulse.stats.ticks >= self.config.max_ticks:
                    break
        finally:
            self.sd.stopping()
            self.ready = False
            self.leader.release()
            self._unregister()
            if self.conn is not None:
                self.conn.close()
            if self.redis is not None:
                self.redis.close()
            if self.http is not None:
                self.http.stop()
            if self.token_file is not None and self.generated_token is not None:
                token_mod.remove(self.token_file, self.generated_token)
            self.notifier.stop()
            self.sd.close()
        log.info(
            "asymm daemon stopped after %d ticks (%d skipped, %d overruns)",
            self.pulse.stats.ticks,
            self.pulse.stats.skipped,
            self.scheduler.overruns,
        )

    def _serves_http(self) -> bool:
        """Whether :meth:`_start_http` will try to bind (a port, and loopback unless allowed remote)."""
        return bool(self.config.http_port) and (
            config_mod.is_loopback(self.config.http_host) or self.config.http_allow_remote
        )

    def _prepare_token(self) -> None:
        """Generate the API token if the API needs one and none is configured, and check (or make)
        the private directory it will be written to; :class:`ConfigError` if that is not safely ours.

        Why here and not in ``config.load``: a daemon built in code (the demo, tests) skips load(),
        and ``--check-config`` must not create directories.  See :mod:`asymm.daemon.token`."""
        if not self._serves_http() or self.config.http_auth != "token" or self.config.http_token:
            return
        self.token_dir = token_mod.directory(self.config, os.environ)
        if self.token_dir is not None:
            token_mod.check(self.token_dir, self.config.http_port)
        self.generated_token = token_mod.generate()
        self.config.http_token = self.generated_token

    def _start_http(self) -> None:
        if not self.config.http_port:
            return
        if not config_mod.is_loopback(self.config.http_host) and not self.config.http_allow_remote:
            # load() refuses this; a DaemonConfig built in code skips it, so refuse here as well
            log.error(
                "HTTP server not started: %r is not a loopback address and http_allow_remote is not set",
                self.config.http_host,
            )
            return
        try:
            self.http = HttpServer(self, self.config.http_host, self.config.http_port)
        except OSError as exc:
            # Not fatal: the pulse is the daemon's job, the HTTP side only reports on it.
            log.error("HTTP server on %s:%d not started: %s", self.config.http_host, self.config.http_port, exc)
            return
        self.http.start()
        log.info("HTTP on %s (metrics, healthz, readyz, api)", self._base_url())
        self._announce_access()
        if not config_mod.is_loopback(self.config.http_host):
            # validate() refused this unless http_allow_remote is set and a token is configured
            log.warning(
                "HTTP server on %s:%d is reachable from other hosts (http_allow_remote): /api and "
                "/metrics need the bearer token; put TLS in front of it",
                *self.http.address,
            )

    def _base_url(self) -> str:
        assert self.http is not None
        host, port = self.http.address
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard: loopback
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def _announce_access(self) -> None:
        """Say once how to reach the API.  The token itself never goes to the log (a journal has
        other readers, and the log filter would mask it anyway): the log names the token file;
        only an interactive stderr (a person at a terminal) gets the dashboard URL with the token."""
        if self.config.http_auth == "none":
            log.warning(
                "http.auth = none: /api is open to every local user (statement texts of every role, "
                "the DDL log, table names); set a token unless you accept that"
            )
            return
        if self.generated_token is None:
            log.info(
                "/api needs the configured bearer token (dashboard: %s with the URL fragment '#token' set to it)",
                self._base_url(),
            )
            return
        if self.token_dir is not None:
            try:
                self.token_file = token_mod.write(self.token_dir, self.config.http_port, self.generated_token)
            except (config_mod.ConfigError, OSError) as exc:
                log.error("could not write the generated HTTP token (%s): /api answers 401 to everyone", exc)
            else:
                log.info(
                    "/api needs the bearer token in %s (dashboard: %s with the URL fragment '#token' set to it)",
                    self.token_file,
                    self._base_url(),
                )
        else:
            log.warning(
                "no private directory for the generated HTTP token (set http.token_dir or "
                "XDG_RUNTIME_DIR, or give a token: http.token_file, ASYMM_HTTP_TOKEN): it is kept in "
                "memory only, /api answers 401 to everyone"
            )
        if sys.stderr.isatty():
            sys.stderr.write(f"asymm dashboard: {self._base_url()}#token={self.generated_token}\n")
            sys.stderr.flush()

    # -- connections ----------------------------------------------------------------------------

    def _ensure_postgres(self) -> None:
        """Replace a broken ``daemon.conn`` (with backoff between attempts); never raises."""
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return
        if self.postgres_up:
            log.warning("lost the PostgreSQL connection; reconnecting with backoff")
            self.postgres_up = False
        if not self._pg_backoff.ready():
            return
        try:
            conn = connect(self.config.dsn, connect_timeout=3)
        except AsymmError as exc:
            delay = self._pg_backoff.failure()
            log.warning("%s; retrying in %.2f s", exc, delay)
            return
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = conn
        self.postgres_up = True
        self.reconnects += 1
        self._pg_backoff.success()
        self.scheduler.reset_backoff()
        log.info("reconnected to PostgreSQL")

    def _task_failed(self, task: Task, exc: Exception) -> None:
        if isinstance(exc, psycopg.OperationalError) or (self.conn is not None and self.conn.broken):
            self.postgres_up = not (self.conn is None or self.conn.closed or self.conn.broken)
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            self.redis_up = False

    # -- reload ---------------------------------------------------------------------------------

    def _reload(self) -> None:
        self._reload_requested.clear()
        self.sd.reloading()
        try:
            loaded = config_mod.load(self.config_file, flags=self.config_flags)
        except AsymmError as exc:
            log.error("configuration reload failed, keeping the current one: %s", exc)
            self.sd.ready(self._status_line())
            return
        new = loaded.config
        for name in config_mod.RESTART_ONLY:
            if getattr(new, name) != getattr(self.config, name):
                log.warning("%s changed in the configuration; it takes effect at the next restart", name)
                setattr(new, name, getattr(self.config, name))
        if new.http_token is None and self.generated_token is not None:
            new.http_token = self.generated_token  # no token configured: the generated one stays valid
        if new.period != self.config.period:
            self.pulse.change_period(new.period)
        self.heartbeat_task.every_s = new.heartbeat_every_s
        self.scheduler.set_period(new.period, backoff_cap_s=new.task_backoff_max_s)
        self.scheduler.set_split(new.regime_split)
        self.scheduler.budget_fraction = new.budget_fraction
        self.notifier.urls = list(new.notify_urls)
        self.notifier.retries = new.notify_retries
        self.notifier.timeout_s = new.notify_timeout_s
        if new.notify_urls:
            self.notifier.start()
        logging.getLogger("asymm").setLevel(new.log_level.upper())
        self.config = new
        self.config_sources = loaded.sources
        self.reloads += 1
        log.info(
            "configuration reloaded (period %.1f ms, split %s)",
            new.period * 1000,
            "/".join(f"{new.regime_split[r] * 100:g}" for r in REGIMES),
        )
        self.sd.ready(self._status_line())

    # -- health ---------------------------------------------------------------------------------

    def liveness(self) -> tuple[bool, str]:
        if self.last_tick_done is None:
            return True, "starting"
        age = time.monotonic() - self.last_tick_done
        limit = 3 * self.pulse.period + 5.0
        if age > limit:
            return False, f"no tick completed for {age:.1f} s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        problems = []
        if not self.ready:
            problems.append("not started")
        if not self.postgres_up:
            problems.append("PostgreSQL connection down")
        if not self.leader.connected:
            problems.append("lock session down")
        if self.config.redis_url and not self.redis_up:
            problems.append("Redis does not answer")
        if problems:
            return False, "; ".join(problems)
        return True, "leader" if self.leader.is_leader else "standby"

    def _status_line(self) -> str:
        role = "leader" if self.leader.is_leader else "standby"
        return f"{role}, {self.pulse.stats.ticks} ticks, PostgreSQL {'up' if self.postgres_up else 'down'}"

    def status(self) -> dict[str, Any]:
        """What ``/api/status`` returns."""
        stats = self.pulse.stats
        ready, reason = self.readiness()
        return {
            "daemon_id": str(self.daemon_id),
            "version": __version__,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "leader": self.leader.is_leader,
            "leader_transitions": self.leader.transitions,
            "leader_since": self.leader.leader_since_unix,
            "ready": ready,
            "readiness": reason,
            "connections": {
                "postgres": self.postgres_up,
                "lock_session": self.leader.connected,
                "redis": self.redis_up if self.config.redis_url else None,
            },
            "reconnects": self.reconnects,
            "reloads": self.reloads,
            "pulse": {
                "period_s": self.pulse.period,
                "ticks": stats.ticks,
                "skipped": stats.skipped,
                "overruns": self.scheduler.overruns,
                "deferred": self.scheduler.deferred,
                "lateness_p50_s": stats.lateness_quantile(0.5),
                "lateness_p99_s": stats.lateness_quantile(0.99),
                "lateness_max_s": stats.lateness_max,
            },
            "regimes": {
                "target": dict(self.scheduler.split),
                "measured": self.scheduler.measured_split(),
                "seconds": dict(self.scheduler.regime_seconds),
                "balance_score": self.scheduler.balance_score(),
            },
            "tasks": [
                {
                    "name": t.name,
                    "regime": t.regime,
                    "every": t.every,
                    "every_s": t.every_s,
                    "runs": t.runs,
                    "seconds": t.seconds,
                    "failures_total": t.failures_total,
                    "consecutive_failures": t.failures,
                    "last_error": t.last_error,
                    "leader_only": t.leader_only,
                }
                for t in self.scheduler.tasks
            ],
            "notifications": {
                "sent": self.notifier.stats.sent,
                "failed": self.notifier.stats.failed,
                "dropped": self.notifier.stats.dropped,
                "pending": self.notifier.pending(),
            },
            "config": config_mod.public_view(self.config),
            "features": {f.name: f.status() for f in self.features},
        }

    # -- tasks ----------------------------------------------------------------------------------

    def _heartbeat(self, _tick: Tick) -> None:
        assert self.conn is not None
        self.conn.execute(
            "UPDATE asymm.daemons SET last_seen = now(), ticks = %s, skipped_ticks = %s, overruns = %s,"
            " lock_backend_pid = %s WHERE daemon_id = %s",
            (
                self.pulse.stats.ticks,
                self.pulse.stats.skipped,
                self.scheduler.overruns,
                self.leader.backend_pid(),
                self.daemon_id,
            ),
        )

    def _redis_ping(self, _tick: Tick) -> None:
        assert self.redis is not None
        try:
            self.redis.ping()
        except redis.RedisError:
            if self.redis_up:
                log.warning("Redis stopped answering")
            self.redis_up = False
            raise
        if not self.redis_up:
            log.info("Redis answers")
        self.redis_up = True

    def _registry_gc(self, _tick: Tick) -> None:
        """Leader only: daemons that died without a goodbye (SIGKILL, host loss) are marked stopped."""
        assert self.conn is not None
        self.conn.execute(
            "UPDATE asymm.daemons SET stopped_at = last_seen WHERE stopped_at IS NULL"
            " AND last_seen < now() - asymm.setting('daemon.stale_after')::interval"
        )

    # -- registration ---------------------------------------------------------------------------

    def _check_extension(self) -> None:
        assert self.conn is not None
        require_extension(self.conn)

    def _register(self) -> None:
        assert self.conn is not None
        self.conn.execute(
            "INSERT INTO asymm.daemons (daemon_id, host, pid, version) VALUES (%s, %s, %s, %s)",
            (self.daemon_id, socket.gethostname(), os.getpid(), __version__),
        )

    def _unregister(self) -> None:
        if self.conn is None:
            return
        try:
            self._ensure_postgres()
            self.conn.execute(
                "UPDATE asymm.daemons SET stopped_at = now(), last_seen = now(), ticks = %s,"
                " skipped_ticks = %s, overruns = %s WHERE daemon_id = %s",
                (self.pulse.stats.ticks, self.pulse.stats.skipped, self.scheduler.overruns, self.daemon_id),
            )
        except psycopg.Error as exc:  # the server may be gone; the row then just goes stale
            log.warning("could not record the daemon's stop: %s", exc)
