"""Exact, loss-free mirroring of tracked tables into Redis (SPEC section 5).

How it stays exact:

Capture.  ``asymm.track()`` installs statement-level triggers with transition tables that call one
C function, ``asymm._sync_capture`` (extension/src/sync.c); each statement adds ONE outbox row:
table, op, ``pg_current_xact_id()`` and the affected keys as a ``text[]``.  The transaction NOTIFYs
``asymm_sync`` at most once (no payload), and only while the worker waits for it
(``asymm.sync_wake``).  The function writes the outbox itself, so writers need no rights on schema
asymm, and it only ever records the changes of the statement that fired it (its own table, its own
transaction); TRUNCATE (which clears keys) goes through a SECURITY DEFINER trigger function.

Consumption without skipping.  Outbox rows are not consumed in id order (a transaction holding
a low id may commit after higher ones).  Each batch is ONE statement, so one snapshot: it takes
``H = pg_snapshot_xmin(pg_current_snapshot())`` (every transaction with xid < H has ended, so the
outbox rows with xid < H are final), reads the rows with ``position <= xid < H`` and re-reads the
current rows of their keys.  After Redis has acknowledged the writes the worker moves its
position to ``H`` and stores it in ``asymm.sync_state`` at least every 0.1 s (not after every
batch: that UPDATE would double the statements per batch).  A crash re-applies what was applied
since the last store: delivery is at-least-once and writes are idempotent.  The cost: a
transaction that stays open holds the horizon back, delaying (never losing) later changes.

Values and versions.  The worker re-reads the current rows in the same snapshot and writes them
with version ``H``.  (Keys of a table the batch statement has no branch for yet are re-read by a
second statement, in a later snapshot: it shows every change below ``H`` too, so version ``H``
still tells the truth about the value.)  Invariant: a value stored with version ``v`` reflects every transaction with
xid < v.  Any change by a transaction with xid >= v is in the outbox and will be applied later
with a version above its xid, hence above ``v``.  So the Lua compare-and-set (write if
stored <= new) can only reject a value when the stored one already includes it, and each key
converges to its last committed state.  Read-through fills in :mod:`asymm.sync.cache` use the same
rule with the xmin of their own snapshot (and strict ``<``), which is why a slow fill cannot
overwrite a newer value, nor outlive a delete: deletes leave tombstones with a version.

TRUNCATE and resets.  A TRUNCATE (or the start of a backfill) raises the table's ``floor`` in Redis
to the batch version and deletes the table's keys (tracked in a per-table set, no SCAN); writes
below the floor are refused, so an in-flight fill cannot bring a truncated row back.

Redis losing data.  Each table has an ``epoch`` in Redis, equal to the one in
``asymm.sync_tables``.  A flush or a restart without persistence removes it; the worker notices
(every pulse, and every write script checks it) and re-syncs the table with a new epoch.  A
restart from an older RDB/AOF file brings the old epoch back, so each table also has an
``applied`` mark, raised by every write and reset script with the data; PostgreSQL records the
acknowledged marks with the position (``asymm.sync_tables.applied``), and a Redis mark below
them re-syncs the table (see ``SyncEngine.check_epochs``).

Fencing.  The worker holding the sync lock takes a token (``asymm.sync_state.fence``, bumped) and
stamps it on every table's meta hash; every script carries it and Redis refuses a lower one, so a
leader that stalled and lost its lock (``idle_session_timeout`` on its session) writes nothing
when it resumes, and steps down (:class:`asymm.sync.redis_io.Deposed`).

Backfill.  Chunks in key order, each read in its own snapshot and written with that snapshot's
xmin as version; concurrent changes are in the outbox (the triggers exist before the first chunk),
so they win by version.

DDL.  Column DDL on a tracked table queues a backfill by itself (the event trigger compares a
stored column signature with the catalog).  Partitions of a tracked table carry the capture
triggers too (a statement on a partition fires only the partition's), and record their changes
under the tracked table; rows leaving with a partition (DETACH, DROP, TRUNCATE of it) queue a
prune: the worker walks the table's key set and tombstones keys without a row, with the xmin of
the snapshot it looked them up in as version (why that is safe: :meth:`SyncEngine._prune`).

Two-phase commit.  The wake-up NOTIFY is sent at commit (pre-commit callback), never at PREPARE
TRANSACTION, which PostgreSQL refuses after a NOTIFY; a prepared transaction committed later is
found by the worker's poll, at most one pulse after COMMIT PREPARED.

Space.  The outbox has two LIST partitions used alternately (10 s each); a slot whose rows are all
consumed is TRUNCATEd under an ACCESS EXCLUSIVE lock: no dead tuples, no vacuum debt.
"""

from asymm.sync.engine import BatchResult, SyncEngine

__all__ = ["BatchResult", "SyncEngine"]
