"""Leader election: a PostgreSQL advisory lock held by a dedicated session.

Why an advisory lock: the database is the one thing every daemon of a deployment already shares,
and the server releases a session lock the moment the session ends, so no lease table or clock
agreement is needed.  The leader checks its lock session every pulse (fencing); keepalives and
``idle_session_timeout`` bound how long a dead host or a hung process holds it.

Details (the lock key, how to see the leader, takeover times): docs/daemon.md, "Leader election".
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import psycopg
from psycopg import conninfo

from asymm.daemon.backoff import Backoff
from asymm.db import connect
from asymm.errors import AsymmError

log = logging.getLogger("asymm.daemon.leader")

LEADER_LOCK_KEY = int.from_bytes(b"asymmLDR", "big")  # 7022089754892846162


def lock_session_dsn(dsn: str, keepalive_s: int) -> str:
    """The DSN with client-side keepalives, so the daemon too notices a dead server quickly."""
    return conninfo.make_conninfo(
        dsn,
        keepalives="1",
        keepalives_idle=str(keepalive_s),
        keepalives_interval=str(keepalive_s),
        keepalives_count="2",
        tcp_user_timeout=str(3 * keepalive_s * 1000),
        connect_timeout="5",
    )


class LeaderElection:
    def __init__(
        self,
        dsn: str,
        *,
        key: int = LEADER_LOCK_KEY,
        keepalive_s: int = 2,
        session_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dsn = dsn
        self.key = key
        self.keepalive_s = keepalive_s
        self.session_timeout_s = session_timeout_s
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.is_leader = False
        self.transitions = 0  # times this daemon became leader
        self.reconnects = 0
        self.leader_since: float | None = None  # monotonic
        self.leader_since_unix: float | None = None  # wall clock, for the API and the failover bench
        self.on_change: Callable[[bool], None] | None = None

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.closed and not self.conn.broken

    def backend_pid(self) -> int | None:
        """The lock session's server process: what pg_locks names as the holder of the lock, so
        that ``asymm.status()`` can tell which registered daemon leads."""
        return self.conn.info.backend_pid if self.connected and self.conn is not None else None

    def poll(self) -> bool:
        """Once per pulse: keep (leader) or try to take (standby) the lock.  Never raises."""
        if not self.connected:
            self._set_leader(False)
            if not self.backoff.ready():
                return False
            try:
                self._open()
            except (AsymmError, psycopg.Error) as exc:
                delay = self.backoff.failure()
                log.warning("lock session: cannot connect (%s); retrying in %.2f s", exc, delay)
                return False
        assert self.conn is not None
        try:
            if self.is_leader:
                self.conn.execute("SELECT 1")
            else:
                row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                if row is not None and row[0]:
                    self._set_leader(True)
        except psycopg.Error as exc:
            log.warning("lock session lost (%s)%s", type(exc).__name__, "; stepping down" if self.is_leader else "")
            self._drop()
            self.backoff.failure()
        return self.is_leader

    def release(self) -> None:
        """Clean stop: unlock and close, so a standby takes over on its next poll."""
        if self.connected and self.is_leader:
            assert self.conn is not None
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        self._set_leader(False, clean=True)
        self._drop()

    def _open(self) -> None:
        conn = connect(lock_session_dsn(self.dsn, self.keepalive_s), connect_timeout=5)
        try:
            k = str(self.keepalive_s)
            conn.execute(
                "SELECT set_config('tcp_keepalives_idle', %s, false), set_config('tcp_keepalives_interval', %s, false),"
                " set_config('tcp_keepalives_count', '2', false), set_config('tcp_user_timeout', %s, false),"
                " set_config('statement_timeout', '2s', false),"
                " set_config('idle_session_timeout', %s, false)",
                (k, k, str(3 * self.keepalive_s * 1000), str(int(self.session_timeout_s * 1000))),
            )
        except psycopg.Error:
            conn.close()
            raise
        self.conn = conn
        self.reconnects += 1
        self.backoff.success()

    def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = None
        self._set_leader(False)

    def _set_leader(self, leader: bool, *, clean: bool = False) -> None:
        """Record a transition; losing the lock is a warning, giving it up on a clean stop is not."""
        if leader == self.is_leader:
            return
        self.is_leader = leader
        if leader:
            self.transitions += 1
            self.leader_since = self.clock()
            self.leader_since_unix = time.time()
            log.info("became the leader (advisory lock %d)", self.key)
        else:
            self.leader_since = None
            self.leader_since_unix = None
            if clean:
                log.info("released the leadership (clean stop)")
            else:
                log.warning("no longer the leader")
        if self.on_change is not None:
            self.on_change(leader)
