"""The daemon's sync worker: a thread that applies the outbox as soon as NOTIFY says so.

Why a thread and not just a pulse task: the lag target is far below the pulse period, so the
worker blocks on ``LISTEN asymm_sync`` and polls once per pulse at worst; errors back off and
lose nothing (the position moves only after Redis acknowledged).  The pulse tasks (:mod:`asymm.sync.feature`)
only keep the worker alive and commit heartbeats. Details: docs/sync.md.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import psycopg
import redis

from asymm.db import connect
from asymm.errors import AsymmError, pg_error_line
from asymm.sync.engine import SyncEngine

log = logging.getLogger("asymm.sync")

ROTATE_EVERY_S = 2.0
RETRYABLE = (psycopg.Error, redis.RedisError, OSError, AsymmError)
STRETCH_KEYS = 50  # a stream that fills busy passes with more keys than this spaces them further apart
STRETCH_MAX = 4.0  # ... up to this many times sync.busy_interval


def busy_cadence(interval_s: float, keys: int, since_last_s: float, period_s: float) -> float:
    """How far apart busy passes start, given the last pass's keys and the time since the one before.

    A pass costs about 620 us of CPU whatever its size, beside ~15 us a key (daemon, its backend and
    Redis together, bench/RESULTS.md).  At ``sync.busy_interval`` that fixed part grows with the
    number of passes, not with the writes; under a stream of more than ``STRETCH_KEYS`` keys per
    interval, the passes are spaced in proportion to the stream (up to ``STRETCH_MAX`` times the
    interval, never more than a pulse), so at high write rates more keys share each pass's fixed
    cost and the extra lag stays a few tens of milliseconds.  Below that rate (e.g. 1,000
    single-row commits/s at the default 10 ms) nothing changes.  The rate, not the last pass's
    size, drives it: a longer wait gathers more keys, and the size alone would feed on itself.
    """
    rate = keys / since_last_s if since_last_s > 0 else 0.0
    stretch = min(STRETCH_MAX, max(1.0, rate * interval_s / STRETCH_KEYS))
    return min(interval_s * stretch, period_s)


class SyncWorker(threading.Thread):
    def __init__(
        self, dsn: str, redis_url: str, stop: threading.Event, period: float, session_timeout_s: float = 0.0
    ) -> None:
        super().__init__(name="asymm-sync", daemon=True)
        self.session_timeout_s = session_timeout_s  # of the engine's session, which holds the sync lock
        self.dsn = dsn
        self.redis_url = redis_url
        self.stop = stop
        self.period = period
        self.engine: SyncEngine | None = None
        self.listener: psycopg.Connection[tuple[object, ...]] | None = None
        self.last_error: str | None = None
        self.is_leader = False

    def run(self) -> None:
        backoff = 0.1
        while not self.stop.is_set():
            try:
                self._connect()
                backoff = 0.1
                self._loop()
            except RETRYABLE as exc:
                self.last_error = f"{type(exc).__name__}: {pg_error_line(exc)}"  # no PL/pgSQL CONTEXT
                log.warning("sync: %s; retrying in %.1f s", self.last_error, backoff)
                self._record_error(self.last_error)
                self._close()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:  # a bug: log it, keep the daemon alive, try again slowly
                log.exception("sync worker crashed")
                self._close()
                self.stop.wait(5.0)
        self._close()

    def _connect(self) -> None:
        self.engine = SyncEngine(self.dsn, self.redis_url, session_timeout_s=self.session_timeout_s)
        self.listener = connect(self.dsn)
        self.listener.execute("LISTEN asymm_sync")
        self.is_leader = False

    def _close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        if self.listener is not None:
            with contextlib.suppress(Exception):  # broken already
                self.listener.close()
        self.engine = self.listener = None

    def _loop(self) -> None:
        assert self.engine is not None and self.listener is not None
        engine = self.engine
        last_rotate = last_check = last_pass = 0.0
        listening = False  # our view of asymm.sync_wake; set on the first idle pass
        while not self.stop.is_set():
            if not self.is_leader:
                self.is_leader = engine.try_lock()
                if not self.is_leader:  # another daemon syncs this database
                    self.stop.wait(self.period)
                    continue
                engine.check_epochs()
            now = started = time.monotonic()
            if now - last_check >= self.period:
                engine.check_epochs()
                last_check = now
            busy = engine.backfill_step() > 0
            # (a batch may find the tracked tables changed: a backfill queued since makes it busy)
            batch = engine.sync_once()
            busy = batch.rows > 0 or engine.backfill_pending() or busy
            if now - last_rotate >= ROTATE_EVERY_S:
                engine.rotate()
                last_rotate = now
            self.last_error = None
            if busy:
                if listening:  # draining: writers need not NOTIFY on every commit
                    engine.set_listening(False)
                    listening = False
                # Under a steady write stream, let changes gather: a pass has a fixed cost, and on
                # a small machine that CPU is taken from the writers.  So busy passes start
                # sync.busy_interval apart (default 10 ms: lag p50 near 6-8.5 ms at 1,000 tx/s, target
                # 10 ms; 4 ms cost ~1.5x the CPU a key at 2,000 tx/s, 16 ms 0.7x but 13 ms p50,
                # bench/RESULTS.md), further apart under a heavy stream (busy_cadence), never more
                # than a pulse.  A first change after a quiet spell is still taken at once (NOTIFY
                # wakes us).
                cadence = busy_cadence(engine.busy_interval_s, batch.keys, started - last_pass, self.period)
                last_pass = started
                self.stop.wait(max(0.0, cadence - (time.monotonic() - started)))
                continue
            last_pass = started
            if not listening:
                # Raise the flag, then look once more before sleeping: a transaction that read the
                # flag down and committed since our last pass is visible to that pass.  (One that
                # read it down and commits later is found by the next poll, a pulse away.)
                engine.set_listening(True)
                listening = True
                continue
            for _ in self.listener.notifies(timeout=self.period, stop_after=1):
                pass

    def _record_error(self, message: str) -> None:
        try:
            with connect(self.dsn, connect_timeout=2) as conn:
                conn.execute("UPDATE asymm.sync_state SET last_error = %s, last_error_at = now()", (message,))
        except (psycopg.Error, AsymmError):
            pass  # PostgreSQL is what is down: the log line is all we can do
