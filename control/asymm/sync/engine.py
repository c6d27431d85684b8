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
import redis
from psycopg import sql

from asymm.db import connect
from asymm.errors import pg_error_line
from asymm.sync.keys import pin_key_settings
from asymm.sync.redis_io import RedisClient, Scripts, connect_redis, dropped_name, keyset_key, parse_key
from asymm.sync.tables import TABLES_FINGERPRINT, Protector, TrackedTable, load_tables, load_tables_fingerprint

log = logging.getLogger("asymm.sync")

WRITE_CHUNK = 500  # keys per Lua call (keeps each script call short: Redis is single-threaded)
LOCK_KEY = (0x6173796D, 6)  # pg advisory lock: one sync consumer per database
FLUSH_EVERY_S = 0.1  # store the position at least this often while busy (and whenever idle)
HOT_IDLE_S = 60.0  # a table without changes for this long loses its branch in the batch statement
# A table's branch in the batch statement runs only while the planner knows it to hold at least this
# many rows (pg_class.reltuples), see _batch_query.
PLANNED_MIN_ROWS = 1000
LOCK_TIMEOUT = "2s"  # the longest the sync waits for a lock on one table (see SyncEngine.__init__)
PRUNE_CHUNK = 1000  # Redis keys a prune looks up in PostgreSQL per statement (see _prune)


def eviction_warning(client: RedisClient) -> str | None:
    """Why this Redis may lose sync keys by itself, or None if its eviction policy cannot.

    ``volatile-*`` policies evict keys that have a TTL: the delete tombstones, so a slow
    read-through fill (asymm.cache) could bring a deleted row back; ``allkeys-*`` may evict any
    key, rows and a table's meta hash too (its epoch and marks: the table is then re-synced,
    rows in between may be served stale).  A warning, not a refusal: many hosted Redis default to
    ``volatile-lru``, and refusing would leave the application with no cache at all rather than a
    cache that is exact as long as Redis has memory to spare.  Set ``maxmemory-policy noeviction``
    (or give Redis memory enough) for the guarantee.
    """
    try:
        reply = client.config_get("maxmemory-policy")
    except redis.RedisError as exc:  # CONFIG disabled or renamed (hosted Redis), or ACL
        return (
            f"cannot check the Redis maxmemory-policy ({type(exc).__name__}: {exc}): if it is volatile-* or"
            " allkeys-*, Redis may evict delete tombstones or sync keys; noeviction is safe"
        )
    policy = reply.get("maxmemory-policy") if isinstance(reply, dict) else None
    if isinstance(policy, bytes):
        policy = policy.decode()
    if not policy:
        return "cannot check the Redis maxmemory-policy (CONFIG GET returned nothing); noeviction is safe"
    if policy.startswith("volatile-"):
        return (
            f"Redis maxmemory-policy is {policy}: when memory runs out it evicts keys with a TTL, i.e. delete"
            " tombstones, and a late read-through fill may then bring a deleted row back; set noeviction"
        )
    if policy.startswith("allkeys-"):
        return (
            f"Redis maxmemory-policy is {policy}: when memory runs out it evicts any key (rows, tombstones, a"
            " table's meta hash), and the cache is then incomplete or briefly stale; set noeviction"
        )
    return None


# A table the sync cannot read (a revoked privilege, a key whose cast fails) is set aside as failed
# and tried again (copied anew) after this long, doubling up to RETRY_MAX_S while it keeps failing.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


@dataclass
class BatchResult:
    rows: int = 0
    keys: int = 0
    applied: int = 0
    truncated: int = 0
    resync: list[str] = field(default_factory=list)
    lag_ms: float | None = None


@dataclass
class _Counters:
    batches: int = 0
    rows: int = 0
    applied: int = 0
    truncated: int = 0


class _Batch:
    """What the batch statement returned, sorted by kind."""

    def __init__(self, tables: dict[int, TrackedTable]) -> None:
        self.tables = tables
        self.horizon = self.new_position = self.rows = 0
        self.docs: dict[int, list[tuple[str, str | None]]] = defaultdict(list)
        self.missing: dict[int, set[str]] = defaultdict(set)
        self.truncated: set[int] = set()
        self.pruned: set[int] = set()
        self.dropped: list[str] = []
        self.beats: list[float] = []


class SyncEngine:
    """Owns one PostgreSQL connection and one Redis client; not thread-safe (one worker uses it)."""

    def __init__(
        self,
        dsn: str,
        redis_url: str | None = None,
        *,
        redis_client: RedisClient | None = None,
        hmac_key: str | None = None,
        session_timeout_s: float = 0.0,
    ) -> None:
        self.conn: psycopg.Connection[Any] = connect(dsn)
        if session_timeout_s > 0:
            # The sync lock (try_lock) lives in this session: a worker that stalls (SIGSTOP, a long
            # pause) must lose it, as the daemon's leader lock session does (asymm.daemon.leader),
            # or a standby never takes over.  In normal operation this connection runs a statement
            # at least once a pulse (leader: every pass; standby: every lock attempt), far below
            # the timeout, which the worker sets to at least five pulses.
            ms = str(int(session_timeout_s * 1000))
            self.conn.execute(
                "SELECT set_config('idle_session_timeout', %s, false),"
                " set_config('idle_in_transaction_session_timeout', %s, false)",
                (ms, ms),
            )
        # Everything this connection reads, it reads through an index (outbox by xid, rows by key,
        # backfill chunks in key order).  Its statements are prepared, and PostgreSQL re-plans them
        # whenever an outbox slot is TRUNCATEd: planned against an empty slot, a sequential scan
        # looks cheapest and then stays in the cached plan while the slot fills up (measured: the
        # batch statement reading ~20,000 outbox rows per pass).  No JIT: the penalty that
        # enable_seqscan = off puts on the plans that have no index path (the one-row sync_state)
        # would make them cross jit_above_cost, and compiling costs ~100 ms a statement.
        self.conn.execute("SET enable_seqscan = off")
        self.conn.execute("SET jit = off")
        # A table locked ACCESS EXCLUSIVE (VACUUM FULL, a rewriting ALTER TABLE, TRUNCATE in a long
        # transaction, LOCK TABLE: none need an xid, so the horizon moves on) would make the read of
        # its rows wait, and with it every other table's sync: after LOCK_TIMEOUT the read fails
        # instead, and that table alone is set aside and copied again later (_fail).
        self.conn.execute("SELECT set_config('lock_timeout', %s, false)", (LOCK_TIMEOUT,))
        pin_key_settings(self.conn)  # backfills spell keys (and all rows) as the capture does
        self.redis: RedisClient = redis_client if redis_client is not None else connect_redis(redis_url or "")
        self.scripts = Scripts(self.redis, str(self._setting("sync.key_prefix")))
        self.redis_warning = eviction_warning(self.redis)
        if self.redis_warning:
            log.warning("%s", self.redis_warning)
        self.conn.execute("UPDATE asymm.sync_state SET redis_warning = %s", (self.redis_warning,))
        mode = str(self._setting("sync.sensitive_mode"))
        self.protector = Protector(mode, hmac_key)
        self.batch_rows = int(self._setting("sync.batch_rows"))
        self.backfill_chunk = int(self._setting("sync.backfill_chunk"))
        self.tombstone_ttl_s = int(
            self._scalar("SELECT extract(epoch FROM asymm.setting('sync.tombstone_ttl')::interval)")
        )
        self.busy_interval_s = max(
            0.0, float(self._scalar("SELECT extract(epoch FROM asymm.setting('sync.busy_interval')::interval)"))
        )
        self.lag_samples: list[float] = []
        # The position of the last batch applied to Redis; stored in PostgreSQL by flush().
        self.position = self._stored_position = int(self._scalar("SELECT position::text::bigint FROM asymm.sync_state"))
        self._unflushed = _Counters()
        self._unflushed_lag_ms: float | None = None
        self._flushed_at = time.monotonic()
        self._tables: dict[int, TrackedTable] | None = None
        self._fingerprint = ""
        self._query: bytes | None = None
        self._cursor: psycopg.Cursor[Any] = self.conn.cursor()  # the batch statement's, reused
        self._hot: dict[int, float] = {}  # tables re-read by the batch statement -> last change seen
        # Per table: the highest version Redis acknowledged to this engine (its 'applied' mark is at
        # least that unless Redis lost data), and those not yet stored in asymm.sync_tables.applied.
        self._acked: dict[int, int] = {}
        self._unflushed_acked: dict[int, int] = {}
        self._retry: dict[int, tuple[float, float]] = {}  # failed table -> (retry at, next delay)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection: the next consumer re-applies
            self.flush()
        for closer in (self.conn.close, self.redis.close):
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                closer()

    def _scalar(self, query: str, params: Any = None) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    def _setting(self, name: str) -> Any:
        return self._scalar("SELECT asymm.setting(%s)", (name,))

    def try_lock(self) -> bool:
        """Become the only consumer (session advisory lock; released when the connection dies).

        Then take a fencing token (one more than any leader before) and stamp it on every tracked
        table's meta hash before writing anything: from then on Redis refuses every script of a
        previous leader that stalled and lost the lock without noticing (its token is lower).
        """
        if not self._scalar("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEY):
            return False
        self.scripts.token = int(self._scalar("UPDATE asymm.sync_state SET fence = fence + 1 RETURNING fence"))
        self.scripts.stamp([t.name for t in load_tables(self.conn).values()])
        return True

    # -- the outbox ------------------------------------------------------------------------------

    def sync_once(self) -> BatchResult:
        """Apply one batch of the outbox: rows of transactions below the snapshot horizon only.

        Every transaction with an xid below ``pg_snapshot_xmin`` of our snapshot has ended, so the
        set of outbox rows below it is final: consuming ``[position, horizon)`` can never skip a row
        that a slower transaction commits later.  The rows are re-read in the same snapshot (one
        statement, see :meth:`_batch_query`) and written with version = horizon (the values reflect
        every transaction below it).  The new position is kept in memory and stored in PostgreSQL by
        :meth:`flush`, always after Redis acknowledged the writes it covers.
        """
        result = BatchResult()
        batch = self._read_batch()
        if batch is None or batch.horizon <= self.position:
            if self._unflushed.rows or self._unflushed_acked:  # idle: store what the last batches applied
                self.flush()
            return result
        horizon, new_position, tables = batch.horizon, batch.new_position, batch.tables
        result.rows = batch.rows
        docs = batch.docs
        versions: dict[int, int] = {}  # tables whose rows were not read in the batch's snapshot
        for rel, wanted in batch.missing.items():
            table = tables.get(rel)
            if table is None or table.state in ("pending", "failed"):
                continue  # untracked, or a backfill (in a later snapshot) will cover it
            # The batch statement has no branch for this table yet, or its branch is held back
            # (see _batch_query): read its rows now, in a later snapshot, and write them with that
            # snapshot's xmin as version.
            try:
                versions[rel], docs[rel] = self._fetch(table, sorted(wanted))
            except psycopg.Error as exc:  # this table only: the others go on (see _fail)
                self._fail(table, exc)
                continue
            if rel not in self._hot:
                self._hot[rel] = 0.0  # (the time is set below)
                self._query = None  # a branch for this table in the batch statement from now on
        if batch.dropped:
            current_names = {table.name for table in tables.values()}
            for name in batch.dropped:
                # A dropped or renamed table's keys go, unless a tracked table holds that name again
                # (renamed back, re-created): its backfill resets them, and clearing now could empty it.
                if name not in current_names:
                    self.scripts.drop(name)
        for rel in batch.truncated:
            docs.setdefault(rel, [])  # visit the table even without keys
        now = time.monotonic()
        lost: list[TrackedTable] = []
        for rel, items in docs.items():
            table = tables.get(rel)
            if table is None or table.state in ("pending", "failed"):
                continue
            if rel in self._hot:
                self._hot[rel] = now
            assert table.epoch is not None
            if rel in batch.truncated:
                self.scripts.reset(table.name, table.epoch, horizon)
                self._ack(rel, horizon)  # (the reset raised the mark to the floor)
                result.truncated += 1
            if not self._write(table, versions.get(rel, horizon), items, result):
                lost.append(table)
        for rel in sorted(batch.pruned - batch.truncated):  # (a reset removed every key already)
            table = tables.get(rel)
            if (
                table is not None
                and table.state not in ("pending", "failed")
                and table not in lost
                and not self._prune(table, result)
            ):
                lost.append(table)
        if lost:
            self._mark_resync(lost)
            result.resync = [table.name for table in lost]
        if batch.beats:
            result.lag_ms = (time.time() - max(batch.beats)) * 1000
            self.lag_samples.append(result.lag_ms)
            del self.lag_samples[:-1000]
            self._unflushed_lag_ms = result.lag_ms
        self.position = new_position
        if result.rows:
            self._unflushed.batches += 1
            self._unflushed.rows += result.rows
            self._unflushed.applied += result.applied
            self._unflushed.truncated += result.truncated
        # Stored when the stream pauses (an empty batch), with each heartbeat (so the lag in
        # sync_state stays fresh), and at least every FLUSH_EVERY_S.  A batch without rows only moves
        # the position across a range that holds no outbox rows: nothing to store for it.
        if self._unflushed.rows and (
            result.rows == 0 or batch.beats or time.monotonic() - self._flushed_at >= FLUSH_EVERY_S
        ):
            self.flush()
        return result

    def flush(self) -> None:
        """Store the position (and the counters) of the batches applied since the last flush.

        Not after every batch: under a steady write stream that UPDATE (a write transaction) would
        be a second PostgreSQL statement per batch.  The stored position only trails the applied
        one: a restart re-applies at most ``FLUSH_EVERY_S`` of changes, which at-least-once
        delivery with idempotent writes allows.  ``greatest``: never move it back (two engines on
        one database, e.g. a test's next to a daemon that holds the lock, each store their own).
        """
        pending = self._unflushed
        if (
            self.position == self._stored_position
            and pending.batches == 0
            and self._unflushed_lag_ms is None
            and not self._unflushed_acked
        ):
            return
        lag = self._unflushed_lag_ms
        acked = self._unflushed_acked
        # Still one statement: the marks of the tables written since the last flush ride along.
        self.conn.execute(
            "WITH a AS (UPDATE asymm.sync_tables t SET applied = v.applied"
            "  FROM unnest(%s::oid[], %s::bigint[]) AS v(rel, applied) WHERE t.rel = v.rel::regclass)"
            " UPDATE asymm.sync_state SET position = greatest(position, %s::text::xid8), batches = batches + %s,"
            " rows_applied = rows_applied + %s, keys_applied = keys_applied + %s, last_batch_at = now(),"
            " truncations = truncations + %s,"
            " lag_ms = coalesce(%s, lag_ms), lag_at = CASE WHEN %s::float8 IS NULL THEN lag_at ELSE now() END",
            (
                list(acked),
                list(acked.values()),
                self.position,
                pending.batches,
                pending.rows,
                pending.applied,
                pending.truncated,
                lag,
                lag,
            ),
        )
        self._stored_position = self.position
        self._unflushed = _Counters()
        self._unflushed_acked = {}
        self._unflushed_lag_ms = None
        self._flushed_at = time.monotonic()

    def _read_batch(self) -> _Batch | None:
        """One statement: horizon, outbox rows, current rows of their keys, tables fingerprint.

        If the tracked tables changed since we loaded them (the fingerprint differs), the answer
        is thrown away and the statement rebuilt; likewise if it names a table that is gone.
        """
        for attempt in range(3):
            tables = self.tables()
            if self._query is None:
                self._query = self._batch_query(tables).as_bytes(self.conn)  # composed once, not per pass
            try:
                rows = self._cursor.execute(
                    self._query, {"pos": self.position, "limit": self.batch_rows}, prepare=True
                ).fetchall()
            except psycopg.Error as exc:
                if attempt == 0 and isinstance(
                    exc, (psycopg.errors.ProgrammingError, psycopg.errors.NotSupportedError)
                ):
                    self.invalidate_tables()  # e.g. a tracked table was dropped or renamed since
                    continue
                if not self._hot:
                    raise  # the statement reads no tracked table: not one table's fault
                # One table's branch fails (a revoked privilege, a key whose cast fails): read every
                # table separately for this pass (their keys come back as 'm'), where a failure is
                # that table's alone (sync_once); the others get their branches back as they change.
                log.warning("sync: the batch statement failed (%s); reading the tables one by one", pg_error_line(exc))
                self._hot.clear()
                self._query = None
                continue
            batch = _Batch(tables)
            fingerprint = None
            for kind, a, b, c, key, doc in rows:
                if kind == "k":
                    batch.docs[a].append((key, doc))  # (protected below, where the mode needs it)
                elif kind == "m":
                    batch.missing[a].add(key)
                elif kind == "p":
                    batch.horizon, batch.new_position, batch.rows, fingerprint = a, b, c, key
                elif kind == "T":
                    batch.truncated.add(a)
                elif kind == "P":  # rows left with a partition (DETACH, DROP, TRUNCATE of it): sql/43_sync_exact.sql
                    batch.pruned.add(a)
                elif kind == "X":  # dropped or renamed (asymm._sync_sql_drop, _sync_forget_old_names): old name
                    batch.dropped.append(dropped_name(key))
                elif kind == "H":
                    batch.beats.append(float(key))
            if fingerprint == self._fingerprint:
                for rel, items in batch.docs.items():
                    if self.protector.needed(tables[rel]):
                        batch.docs[rel] = [(key, self.protector.protect(tables[rel], doc)) for key, doc in items]
                return batch
            self.invalidate_tables()
        return None  # the tables keep changing under us: try again on the next pass

    def _batch_query(self, tables: dict[int, TrackedTable]) -> sql.Composed:
        """The batch statement for the current tables (rebuilt when they, or the hot set, change).

        One statement, so one snapshot, and one round trip instead of eight: the horizon (the xmin
        of the statement's snapshot), the outbox rows in ``[position, horizon)`` up to ``limit``
        (cut at a transaction boundary: all rows of the last xid are taken), and the current row of
        each distinct key.  Rows come back as ``(kind, a, b, c, key, doc)``:

        * ``p``: a = horizon, b = new position, c = outbox rows in the batch, key = tables fingerprint;
        * ``k``: a = table oid, key, doc (NULL: the row is gone);
        * ``m``: a = table oid, key of a table this statement does not re-read (not "hot" yet:
          tables changed recently get a branch of their own, the others are fetched separately);
        * ``T``/``X``/``H``: a = table oid, key = the outbox row's key (dropped table's name,
          heartbeat time) for truncations, drops and heartbeats.

        A hot table's branch runs only while ``pg_class`` says it holds at least
        ``PLANNED_MIN_ROWS`` rows; otherwise its keys come back as ``m``.  The statement is
        prepared, and its plan for a table that looked empty when it was made (analyzed empty, or
        with a handful of rows, then bulk-loaded: inserts do not re-plan) scans the whole table once
        per key: 20,000 keys took 44 s instead of 0.3 s, and a 200,000-row load stalled the sync for
        over ten minutes.  Any change of those statistics re-plans the statement, so once they say
        "large" its plan probes the key index; until then the separate, unprepared read does.
        """
        now = time.monotonic()
        for rel, seen in list(self._hot.items()):
            if now - seen > HOT_IDLE_S or rel not in tables or tables[rel].state in ("pending", "failed"):
                del self._hot[rel]
        hot = sorted(self._hot)
        mode = self.protector.mode
        # A join, not a correlated subquery per key (measured ~3.5 us a key cheaper); it stays a
        # nested loop over the primary key index (enable_seqscan is off on this connection).
        branches = [
            sql.SQL(
                "SELECT 'k', k.rel::bigint, NULL, NULL, k.key, {doc} FROM k LEFT JOIN {tbl} t ON {match}"
                " WHERE k.rel = {oid}::oid AND EXISTS (SELECT FROM h WHERE h.oid = {oid}::oid)"
            ).format(
                doc=tables[rel].doc_expr(mode),
                tbl=tables[rel].ident,
                match=tables[rel].match(sql.SQL("k.key")),
                oid=sql.Literal(rel),
            )
            for rel in hot
        ]
        return sql.SQL("""
WITH h AS MATERIALIZED (
    SELECT c.oid FROM pg_class c WHERE c.oid = ANY ({hot}::oid[]) AND c.reltuples >= {min_rows}),
o AS MATERIALIZED (
    SELECT x.xid, x.rel, x.op, x.keys FROM asymm.sync_outbox x
     WHERE x.xid >= %(pos)s::text::xid8 AND x.xid < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY x.xid LIMIT %(limit)s),
c AS MATERIALIZED (SELECT CASE WHEN count(*) = %(limit)s THEN max(o.xid) END AS cut FROM o),
b AS MATERIALIZED (
    SELECT o.xid, o.rel, o.op, o.keys FROM o, c WHERE c.cut IS NULL OR o.xid < c.cut
    UNION ALL
    SELECT x.xid, x.rel, x.op, x.keys FROM asymm.sync_outbox x, c WHERE x.xid = c.cut),
k AS MATERIALIZED (
    SELECT DISTINCT b.rel, unnest(b.keys) AS key FROM b WHERE b.op IN ('I', 'U', 'D'))
SELECT 'p'::text, pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
       coalesce(c.cut::text::bigint + 1, pg_snapshot_xmin(pg_current_snapshot())::text::bigint),
       (SELECT count(*) FROM b), {fingerprint}, NULL::text
  FROM c
UNION ALL
SELECT b.op::text, b.rel::bigint, NULL, NULL, u.key, NULL
  FROM b, unnest(coalesce(b.keys, '{{NULL}}'::text[])) AS u(key) WHERE b.op NOT IN ('I', 'U', 'D')
UNION ALL
SELECT 'm', k.rel::bigint, NULL, NULL, k.key, NULL FROM k WHERE k.rel NOT IN (SELECT h.oid FROM h)
{branches}""").format(
            fingerprint=sql.SQL(TABLES_FINGERPRINT),
            hot=sql.Literal(hot),
            min_rows=sql.Literal(PLANNED_MIN_ROWS),
            branches=sql.SQL("").join(sql.SQL("UNION ALL\n") + b + sql.SQL("\n") for b in branches),
        )

    def tables(self) -> dict[int, TrackedTable]:
        """The tracked tables, cached; the batch statement checks that they did not change."""
        if self._tables is None:
            self._tables, self._fingerprint = load_tables_fingerprint(self.conn)
            self._query = None
        return self._tables

    def invalidate_tables(self) -> None:
        self._tables = None
        self._query = None

    def _fetch(self, table: TrackedTable, keys: list[str]) -> tuple[int, list[tuple[str, str | None]]]:
        """The snapshot's xmin and the current rows of ``keys``, in one statement (one snapshot).

        Planned each time, never prepared: it serves the tables the batch statement does not read,
        e.g. those that look empty to the planner (see :meth:`_batch_query`).
        """
        rows = self.conn.execute(table.fetch_sql(self.protector.mode), (keys,), prepare=False).fetchall()
        if not rows:
            return 0, []
        return int(rows[0][0]), [(key, self.protector.protect(table, doc)) for _, key, doc in rows]

    def _write(
        self, table: TrackedTable, version: int, items: list[tuple[str, str | None]], result: BatchResult
    ) -> bool:
        """CAS-write ``items``; False when the table's Redis epoch is gone (flushed/restarted)."""
        assert table.epoch is not None
        result.keys += len(items)
        expect = max(self._acked.get(table.oid, 0), table.applied or 0)
        for start in range(0, len(items), WRITE_CHUNK):
            applied = self.scripts.write(
                table.name, table.epoch, version, self.tombstone_ttl_s, items[start : start + WRITE_CHUNK], expect
            )
            if applied == -1:
                return False
            result.applied += max(applied, 0)
        if items:  # (no script ran for none: Redis's mark did not move, e.g. a backfill's empty last chunk)
            self._ack(table.oid, version)
        return True

    def _ack(self, rel: int, version: int) -> None:
        """Redis acknowledged a write or reset of ``rel`` at ``version`` (its mark is that high now)."""
        if version > self._acked.get(rel, 0):
            self._acked[rel] = self._unflushed_acked[rel] = version

    def _prune(self, table: TrackedTable, result: BatchResult) -> bool:
        """Tombstone every key of ``table`` in Redis whose row is gone (rows left with a partition).

        The table's key set (``T#keys``: every live key) is walked with SSCAN, ``PRUNE_CHUNK`` keys
        at a time; each chunk is looked up in PostgreSQL by one statement, whose snapshot has xmin
        ``x``, and the keys without a row get a tombstone of version ``x`` through the normal
        versioned write script.  False when the table's Redis epoch is gone (re-sync it).

        Why this cannot delete a row re-inserted concurrently: every transaction with an xid below
        ``x`` has ended, so "no row in the snapshot" is the truth for all of them, and a tombstone
        of version ``x`` claims nothing more (the invariant of :mod:`asymm.sync`: a version ``v``
        reflects every transaction below ``v``).  A transaction that inserts the key again has an
        xid at or above ``x``; its outbox row is applied by a later batch, whose horizon (taken
        after this statement) is at least ``x`` and above that xid, and the compare-and-set (write
        when stored <= new) lets it replace the tombstone.  Conversely, a value already written
        with a version above ``x`` (a later batch or read-through fill) refuses the tombstone.  A
        key that SSCAN misses was added or re-added during the walk, by a write that is newer than
        the prune anyway.  Done inside the batch: should the worker stop half-way, its position
        was not stored, so the next one prunes again (at-least-once, idempotent).
        """
        prefix = self.scripts.prefix
        keyset = keyset_key(table.name, prefix)
        query = table.gone_sql()
        cursor: int = 0
        while True:
            cursor, members = self.redis.sscan(keyset, cursor, count=PRUNE_CHUNK)
            keys = []
            for member in members:
                try:
                    parsed = parse_key(member.decode() if isinstance(member, bytes) else member)
                except ValueError:
                    continue  # not a row key of a table: not ours to judge
                if parsed[:4] == (prefix, table.schema, table.table, "row") and parsed[4] is not None:
                    keys.append(parsed[4])
            if keys:
                rows = self.conn.execute(query, (keys,), prepare=False).fetchall()
                gone: list[tuple[str, str | None]] = [(str(key), None) for _, key in rows if key is not None]
                if gone and not self._write(table, int(rows[0][0]), gone, result):
                    return False
            if int(cursor) == 0:
                return True

    def _mark_resync(self, tables: list[TrackedTable]) -> None:
        """Queue a backfill of ``tables``, by oid: their Redis names are no SQL names (a table named
        ``a}b`` or ``Orders`` is not spelled that way as a regclass)."""
        log.warning("Redis lost the keys of %s: re-syncing", ", ".join(t.name for t in tables))
        self.conn.execute(
            "UPDATE asymm.sync_tables SET backfill_state = 'pending', backfill_cursor = NULL"
            " WHERE rel::oid = ANY(%s::oid[])",
            ([t.oid for t in tables],),
        )
        self.conn.execute("UPDATE asymm.sync_state SET resyncs = resyncs + %s", (len(tables),))
        self.invalidate_tables()

    # -- Redis lost its data? --------------------------------------------------------------------

    def check_epochs(self) -> list[str]:
        """Tables whose Redis state is gone or older than what PostgreSQL knows was applied: queued
        for a re-sync (run when the engine starts leading, and every pulse).

        Two checks per table, one round trip: the ``epoch`` in its meta hash must be the one in
        ``asymm.sync_tables`` (a flush, a restart without persistence, a failover to an empty node
        remove it), and its ``applied`` mark must not be below ``asymm.sync_tables.applied`` nor
        below what Redis acknowledged to this engine.  A Redis restarted from an older RDB or AOF
        file (a snapshot taken before the last writes, ``appendfsync everysec`` losing the last
        second) brings the old epoch back, but also the old mark: rows changed or deleted since
        would otherwise stay stale for good.

        No false positive: the mark is raised by the very script that writes the data (or resets
        the table), atomically, and never lowered; PostgreSQL records a version (by :meth:`flush`,
        with the position) only after Redis acknowledged that script, and the in-memory value is
        likewise an acknowledged one.  So a mark below either means Redis lost an acknowledged
        write.  A backfill's reset raises the mark to its floor and records that floor in
        PostgreSQL with the new epoch, so a re-synced table passes the check again.
        """
        tables = [t for t in load_tables(self.conn).values() if t.state not in ("pending", "failed")]
        if not tables:
            return []
        marks = self.scripts.marks([t.name for t in tables])
        lost = [
            t
            for t, (epoch, applied) in zip(tables, marks, strict=True)
            if epoch != t.epoch or applied < max(t.applied or 0, self._acked.get(t.oid, 0))
        ]
        if lost:
            self._mark_resync(lost)
        return [t.name for t in lost]

    # -- backfill --------------------------------------------------------------------------------

    def backfill_step(self) -> int:
        """One chunk of one pending or running backfill; the number of rows copied (0: none to do).

        A backfill starts by giving the table a new epoch and a floor (the current horizon) and
        clearing its keys; then each chunk is read in its own snapshot and written with that
        snapshot's xmin as version.  Any change a chunk's snapshot does not show was made by a
        transaction at or above that xmin and is in the outbox, so it is applied later with a
        higher version: the copy converges whatever runs concurrently.
        """
        self._retry_failed()
        if not self.backfill_pending():
            return 0  # (a table queued since is seen by the next batch statement's fingerprint check)
        tables = [t for t in load_tables(self.conn).values() if t.state in ("pending", "running")]
        if not tables:
            self.invalidate_tables()
            return 0
        table = sorted(tables, key=lambda t: (t.state != "running", t.name))[0]
        conn = self.conn
        if table.state == "pending":
            epoch = uuid.uuid4().hex
            floor = int(self._scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
            self.scripts.reset(table.name, epoch, floor)
            self._ack(table.oid, floor)
            # (applied: the reset raised the Redis mark to the floor; a mark recorded before may be
            # from another Redis or xid space, e.g. after a restore of this table's row.)
            conn.execute(
                "UPDATE asymm.sync_tables SET backfill_state = 'running', backfill_cursor = NULL,"
                " epoch = %s, rows_backfilled = 0, applied = %s WHERE rel = %s::oid",
                (epoch, floor, table.oid),
            )
            table.state, table.cursor, table.epoch, table.applied = "running", None, epoch, floor
            self.invalidate_tables()
        assert table.epoch is not None
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                version = int(self._scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
                rows = conn.execute(
                    table.chunk_sql(self.protector.mode, table.cursor is not None),
                    {"cursor": table.cursor, "limit": self.backfill_chunk},
                ).fetchall()
        except psycopg.Error as exc:  # this table only (see _fail)
            self._fail(table, exc)
            return 1
        items = [(key, self.protector.protect(table, doc)) for key, doc, _ in rows]
        result = BatchResult()
        if not self._write(table, version, items, result):
            self._mark_resync([table])
            return 1
        done = len(rows) < self.backfill_chunk
        conn.execute(
            "UPDATE asymm.sync_tables SET backfill_cursor = %s, rows_backfilled = rows_backfilled + %s,"
            " backfill_state = %s, backfilled_at = CASE WHEN %s THEN now() ELSE backfilled_at END,"
            " sync_error = CASE WHEN %s THEN NULL ELSE sync_error END,"
            " sync_error_at = CASE WHEN %s THEN NULL ELSE sync_error_at END"
            " WHERE rel = %s::oid AND epoch = %s",
            (
                rows[-1][2] if rows else table.cursor,
                len(rows),
                "done" if done else "running",
                done,
                done,
                done,
                table.oid,
                table.epoch,
            ),
        )
        if done:
            self._retry.pop(table.oid, None)
            self.invalidate_tables()
        return max(len(rows), 1)

    # -- a table the sync cannot read -----------------------------------------------------------

    def _fail(self, table: TrackedTable, exc: psycopg.Error) -> None:
        """Set ``table`` aside: state ``failed`` with the error (asymm.sync_status() shows it), its
        Redis keys and meta removed, a retry scheduled.

        Its changes are not applied while it fails, so its keys would go stale: without them (and
        without the meta, so read-through fills are refused) every reader goes to PostgreSQL.  A
        retry copies the table anew (a backfill), which makes it exact again.
        """
        message = f"{type(exc).__name__}: {pg_error_line(exc)}"
        _at, delay = self._retry.get(table.oid, (0.0, RETRY_FIRST_S))
        self._retry[table.oid] = (time.monotonic() + delay, min(delay * 2, RETRY_MAX_S))
        log.warning("sync: table %s fails (%s); its keys are cleared, retrying in %.0f s", table.name, message, delay)
        self._hot.pop(table.oid, None)
        self.conn.execute(
            "UPDATE asymm.sync_tables SET backfill_state = 'failed', backfill_cursor = NULL, sync_error = %s,"
            " sync_error_at = now() WHERE rel::oid = %s::oid",
            (message, table.oid),
        )
        self.scripts.drop(table.name)
        table.state = "failed"
        self.invalidate_tables()

    def _retry_failed(self) -> None:
        """Queue a new copy of each failed table whose retry is due (at once after a restart)."""
        now = time.monotonic()
        due = [
            t.oid
            for t in self.tables().values()
            if t.state == "failed" and self._retry.get(t.oid, (0.0, 0.0))[0] <= now
        ]
        if due:
            self.conn.execute(
                "UPDATE asymm.sync_tables SET backfill_state = 'pending', backfill_cursor = NULL"
                " WHERE rel::oid = ANY(%s::oid[]) AND backfill_state = 'failed'",
                (due,),
            )
            self.invalidate_tables()

    def backfill_pending(self) -> bool:
        """Whether a backfill waits or runs, as far as the cached tables know (no statement)."""
        return any(t.state in ("pending", "running") for t in self.tables().values())

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
                pending = self._scalar(
                    f"SELECT EXISTS (SELECT 1 FROM {part} o, asymm.sync_state s"  # noqa: S608
                    " WHERE o.xid >= s.position)"
                )
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
            busy = self.sync_once().rows > 0 or self.backfill_pending() or busy
            if not busy:
                self.flush()
                if self.pending_below_horizon() == 0:
                    return
        raise TimeoutError("the sync did not become idle in time")

    def pending_below_horizon(self) -> int:
        return int(
            self._scalar(
                "SELECT count(*) FROM asymm.sync_outbox o, asymm.sync_state s"
                " WHERE o.xid >= s.position AND o.xid < pg_snapshot_xmin(pg_current_snapshot())"
            )
        )

    def set_listening(self, listening: bool) -> None:
        """Tell capture whether to NOTIFY (see :mod:`asymm.sync.worker`)."""
        self.conn.execute(
            "INSERT INTO asymm.sync_wake (listening) VALUES (%s)"
            " ON CONFLICT (singleton) DO UPDATE SET listening = excluded.listening",
            (listening,),
        )

    def record_error(self, message: str) -> None:
        self.conn.execute("UPDATE asymm.sync_state SET last_error = %s, last_error_at = now()", (message,))
