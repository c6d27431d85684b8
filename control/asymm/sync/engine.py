"""The sync engine: outbox -> current rows -> Redis, one batch at a time.  See :mod:`asymm.sync`."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

from asymm.db import connect
from asymm.sync.redis_io import RedisClient, Scripts, connect_redis, table_tag
from asymm.sync.tables import Protector, TrackedTable, load_tables

log = logging.getLogger("asymm.sync")

FETCH_CHUNK = 5000  # keys per re-read statement
WRITE_CHUNK = 500  # keys per Lua call (keeps each script call short: Redis is single-threaded)
LOCK_KEY = (0x6173796D, 6)  # pg advisory lock: one sync consumer per database


@dataclass
class BatchResult:
    rows: int = 0
    keys: int = 0
    applied: int = 0
    truncated: int = 0
    resync: list[str] = field(default_factory=list)
    lag_ms: float | None = None


class SyncEngine:
    """Owns one PostgreSQL connection and one Redis client; not thread-safe (one worker uses it)."""

    def __init__(self, dsn: str, redis_url: str | None = None, *, redis_client: RedisClient | None = None,
                 hmac_key: str | None = None) -> None:
        self.conn: psycopg.Connection[Any] = connect(dsn)
        self.redis: RedisClient = redis_client if redis_client is not None else connect_redis(redis_url or "")
        self.scripts = Scripts(self.redis, str(self._setting("sync.key_prefix")))
        mode = str(self._setting("sync.sensitive_mode"))
        self.protector = Protector(mode, hmac_key)
        self.batch_rows = int(self._setting("sync.batch_rows"))
        self.backfill_chunk = int(self._setting("sync.backfill_chunk"))
        self.tombstone_ttl_s = int(self._scalar(
            "SELECT extract(epoch FROM asymm.setting('sync.tombstone_ttl')::interval)"))
        self.lag_samples: list[float] = []

    def close(self) -> None:
        for closer in (self.conn.close, self.redis.close):
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                closer()

    def _scalar(self, query: str, params: Any = None) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    def _setting(self, name: str) -> Any:
        return self._scalar("SELECT asymm.setting(%s)", (name,))

    def try_lock(self) -> bool:
        """Become the only consumer (session advisory lock; released when the connection dies)."""
        return bool(self._scalar("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEY))

    # -- the outbox ------------------------------------------------------------------------------

    def sync_once(self) -> BatchResult:
        """Apply one batch of the outbox: rows of transactions below the snapshot horizon only.

        Every transaction with an xid below ``pg_snapshot_xmin`` of our snapshot has ended, so the
        set of outbox rows below it is final: consuming ``[position, horizon)`` can never skip a row
        that a slower transaction commits later.  The rows are re-read in the same snapshot and
        written with version = horizon (the values reflect every transaction below it).
        """
        result = BatchResult()
        conn = self.conn
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint,"
                               " position::text::bigint FROM asymm.sync_state").fetchone()
            assert row is not None
            horizon, position = int(row[0]), int(row[1])
            if horizon <= position:
                return result
            rows = conn.execute(
                "SELECT xid::text::bigint, rel::bigint, op::text, keys FROM asymm.sync_outbox"
                " WHERE xid >= %s::text::xid8 AND xid < %s::text::xid8 ORDER BY xid LIMIT %s",
                (position, horizon, self.batch_rows)).fetchall()
            new_position = horizon
            if len(rows) == self.batch_rows:  # cut at a transaction boundary: take all of the last xid
                cut = int(rows[-1][0])
                rows = [r for r in rows if int(r[0]) < cut] + conn.execute(
                    "SELECT xid::text::bigint, rel::bigint, op::text, keys FROM asymm.sync_outbox"
                    " WHERE xid = %s::text::xid8", (cut,)).fetchall()
                new_position = cut + 1
            tables = load_tables(conn)
            keys: dict[int, set[str]] = defaultdict(set)
            truncated: set[int] = set()
            beats: list[float] = []
            dropped: list[str] = []
            for _xid, rel, op, row_keys in rows:
                if op == "X":  # the table was dropped (asymm._sync_sql_drop): its name is the only key
                    dropped.extend(row_keys or [])
                elif op == "H":
                    beats.extend(float(k) for k in row_keys or [])
                elif op == "T":
                    truncated.add(int(rel))
                    keys.setdefault(int(rel), set())  # visit the table even without keys
                else:
                    keys[int(rel)].update(row_keys or [])
            docs: dict[int, list[tuple[str, str | None]]] = {}
            for rel, wanted in keys.items():
                table = tables.get(rel)
                if table is None or table.state == "pending":
                    continue  # untracked, or a backfill (in a later snapshot) will cover it
                docs[rel] = self._fetch(table, sorted(wanted))
        result.rows = len(rows)
        for name in dropped:
            self.scripts.drop(name)
        for rel, items in docs.items():
            table = tables[rel]
            assert table.epoch is not None
            if rel in truncated:
                self.scripts.reset(table.name, table.epoch, horizon)
                result.truncated += 1
            if not self._write(table, horizon, items, result):
                result.resync.append(table.name)
        if result.resync:
            self._mark_resync(result.resync)
        now = time.time()
        if beats:
            result.lag_ms = (now - max(beats)) * 1000
            self.lag_samples.append(result.lag_ms)
            del self.lag_samples[:-1000]
        conn.execute(
            "UPDATE asymm.sync_state SET position = %s::text::xid8, batches = batches + 1,"
            " rows_applied = rows_applied + %s, keys_applied = keys_applied + %s, last_batch_at = now(),"
            " truncations = truncations + %s,"
            " lag_ms = coalesce(%s, lag_ms), lag_at = CASE WHEN %s::float8 IS NULL THEN lag_at ELSE now() END",
            (new_position, result.rows, result.applied, result.truncated, result.lag_ms, result.lag_ms))
        return result

    def _fetch(self, table: TrackedTable, keys: list[str]) -> list[tuple[str, str | None]]:
        query = table.fetch_sql(self.protector.mode)
        out: list[tuple[str, str | None]] = []
        for start in range(0, len(keys), FETCH_CHUNK):
            for key, doc in self.conn.execute(query, (keys[start:start + FETCH_CHUNK],)):
                out.append((key, self.protector.protect(table, doc)))
        return out

    def _write(self, table: TrackedTable, version: int, items: list[tuple[str, str | None]],
               result: BatchResult) -> bool:
        """CAS-write ``items``; False when the table's Redis epoch is gone (flushed/restarted)."""
        assert table.epoch is not None
        result.keys += len(items)
        for start in range(0, len(items), WRITE_CHUNK):
            applied = self.scripts.write(table.name, table.epoch, version, self.tombstone_ttl_s,
                                         items[start:start + WRITE_CHUNK])
            if applied == -1:
                return False
            result.applied += max(applied, 0)
        return True

    def _mark_resync(self, names: list[str]) -> None:
        log.warning("Redis lost the keys of %s: re-syncing", ", ".join(names))
        self.conn.execute(
            "UPDATE asymm.sync_tables SET backfill_state = 'pending', backfill_cursor = NULL"
            " WHERE rel = ANY(%s::text[]::regclass[])", (names,))
        self.conn.execute("UPDATE asymm.sync_state SET resyncs = resyncs + %s", (len(names),))

    # -- Redis lost its data? --------------------------------------------------------------------

    def check_epochs(self) -> list[str]:
        """Tables whose epoch key is missing or different in Redis (flush, restart without
        persistence, failover to an empty node): they are queued for a re-sync."""
        tables = [t for t in load_tables(self.conn).values() if t.state != "pending"]
        if not tables:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for table in tables:
            pipe.hget(table_tag(table.name, self.scripts.prefix), "epoch")
        seen = pipe.execute()
        lost = [t.name for t, epoch in zip(tables, seen, strict=True)
                if (epoch.decode() if isinstance(epoch, bytes) else epoch) != t.epoch]
        if lost:
            self._mark_resync(lost)
        return lost

    # -- backfill --------------------------------------------------------------------------------

    def backfill_step(self) -> int:
        """One chunk of one pending or running backfill; the number of rows copied (0: none to do).

        A backfill starts by giving the table a new epoch and a floor (the current horizon) and
        clearing its keys; then each chunk is read in its own snapshot and written with that
        snapshot's xmin as version.  Any change a chunk's snapshot does not show was made by a
        transaction at or above that xmin and is in the outbox, so it is applied later with a
        higher version: the copy converges whatever runs concurrently.
        """
        tables = [t for t in load_tables(self.conn).values() if t.state in ("pending", "running")]
        if not tables:
            return 0
        table = sorted(tables, key=lambda t: (t.state != "running", t.name))[0]
        conn = self.conn
        if table.state == "pending":
            epoch = uuid.uuid4().hex
            floor = int(self._scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
            self.scripts.reset(table.name, epoch, floor)
            conn.execute("UPDATE asymm.sync_tables SET backfill_state = 'running', backfill_cursor = NULL,"
                         " epoch = %s, rows_backfilled = 0 WHERE rel = %s::oid", (epoch, table.oid))
            table.state, table.cursor, table.epoch = "running", None, epoch
        assert table.epoch is not None
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            version = int(self._scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
            rows = conn.execute(table.chunk_sql(self.protector.mode, table.cursor is not None),
                                {"cursor": table.cursor, "limit": self.backfill_chunk}).fetchall()
        items = [(key, self.protector.protect(table, doc)) for key, doc, _ in rows]
        result = BatchResult()
        if not self._write(table, version, items, result):
            self._mark_resync([table.name])
            return 1
        done = len(rows) < self.backfill_chunk
        conn.execute(
            "UPDATE asymm.sync_tables SET backfill_cursor = %s, rows_backfilled = rows_backfilled + %s,"
            " backfill_state = %s, backfilled_at = CASE WHEN %s THEN now() ELSE backfilled_at END"
            " WHERE rel = %s::oid AND epoch = %s",
            (rows[-1][2] if rows else table.cursor, len(rows), "done" if done else "running", done,
             table.oid, table.epoch))
        return max(len(rows), 1)

    # -- outbox space ----------------------------------------------------------------------------

    def rotate(self, slot: int | None = None) -> bool:
        """TRUNCATE the outbox slot nobody writes now, if every row in it is consumed.

        TRUNCATE leaves no dead tuples (a DELETE-based queue bloats whenever vacuum falls behind or
        a long transaction pins the horizon).  The ACCESS EXCLUSIVE lock waits for any writer still
        inserting into that slot, so the emptiness check made under it is final; ``lock_timeout``
        keeps a slow writer from stalling us (we just try again later).
        """
        if slot is None:
            slot = 1 - int(self._scalar("SELECT asymm.sync_slot()"))
        if slot not in (0, 1):
            raise ValueError("the outbox has slots 0 and 1")
        part = f"asymm.sync_outbox_{slot}"  # slot is 0 or 1: no user input reaches this SQL
        if self._scalar(f"SELECT EXISTS (SELECT 1 FROM {part})") is not True:  # noqa: S608
            return False
        try:
            with self.conn.transaction():
                self.conn.execute("SET LOCAL lock_timeout = '200ms'")
                self.conn.execute(f"LOCK TABLE {part} IN ACCESS EXCLUSIVE MODE")
                pending = self._scalar(f"SELECT EXISTS (SELECT 1 FROM {part} o, asymm.sync_state s"  # noqa: S608
                                       " WHERE o.xid >= s.position)")
                if pending:
                    return False
                self.conn.execute(f"TRUNCATE {part}")
        except psycopg.errors.LockNotAvailable:
            return False
        return True

    def run_until_idle(self, max_seconds: float = 30.0) -> None:
        """Backfill and apply everything visible now (tests, the CLI); bounded in time."""
        deadline = time.monotonic() + max_seconds
        self.check_epochs()
        while time.monotonic() < deadline:
            busy = self.backfill_step() > 0
            busy = self.sync_once().rows > 0 or busy
            if not busy and self.pending_below_horizon() == 0:
                return
        raise TimeoutError("the sync did not become idle in time")

    def pending_below_horizon(self) -> int:
        return int(self._scalar(
            "SELECT count(*) FROM asymm.sync_outbox o, asymm.sync_state s"
            " WHERE o.xid >= s.position AND o.xid < pg_snapshot_xmin(pg_current_snapshot())"))

    def set_listening(self, listening: bool) -> None:
        """Tell capture whether to NOTIFY (see :mod:`asymm.sync.worker`)."""
        self.conn.execute("INSERT INTO asymm.sync_wake (listening) VALUES (%s)"
                          " ON CONFLICT (singleton) DO UPDATE SET listening = excluded.listening", (listening,))

    def record_error(self, message: str) -> None:
        self.conn.execute("UPDATE asymm.sync_state SET last_error = %s, last_error_at = now()", (message,))
