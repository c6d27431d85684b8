"""Redis stays exact through what real applications do besides INSERT/UPDATE/DELETE (issue 16,
points 4-6): column DDL on a tracked table, writes and DDL aimed at a partition of a tracked
partitioned table (pg_partman's way), and two-phase commit.  Every test ends with the full
PostgreSQL-vs-Redis comparison."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asymm.sync import SyncEngine
from tests.harness.sync_helpers import full_compare, make_items, settled, start_daemon, stop_daemon, wait_for

Conn = psycopg.Connection[Any]


def doc(client: redis.Redis, table: str, key: str) -> dict[bytes, bytes]:
    return client.hgetall("asymm:{" + table + "}:" + key)  # type: ignore[return-value]


def exact(db: str, redis_url: str, *, empty: bool = False) -> None:
    """The full comparison finds nothing wrong (and, unless ``empty``, compared some rows)."""
    mismatches = full_compare(db, redis_url)
    assert mismatches.total == 0, mismatches
    assert empty or mismatches.rows_compared > 0


def state(conn: Conn, table: str) -> str:
    row = conn.execute("SELECT backfill_state FROM asymm.sync_tables WHERE rel = %s::regclass", (table,)).fetchone()
    assert row is not None
    return str(row[0])


# -- 4. column DDL ------------------------------------------------------------------------------

COLUMN_DDL = [
    "ALTER TABLE items ADD COLUMN colour text DEFAULT 'red'",
    "ALTER TABLE items ADD COLUMN plain int",  # no default: every document gains a null
    "ALTER TABLE items ALTER COLUMN qty TYPE numeric(10, 2)",
    "ALTER TABLE items RENAME COLUMN name TO title",
    "ALTER TABLE items DROP COLUMN qty",
    "ALTER TABLE items ALTER COLUMN id TYPE bigint",  # a key column: key_types follow
    "ALTER TABLE items DROP COLUMN colour, ADD COLUMN colour text DEFAULT 'blue'",  # same name, new values
    "ALTER TABLE items RENAME COLUMN id TO item_id",  # the key: tracked again under its new name
]


@pytest.mark.parametrize("ddl", COLUMN_DDL)
def test_column_ddl_on_a_tracked_table_makes_redis_exact_again_by_itself(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str, ddl: str
) -> None:
    make_items(db, rows=50)
    if "DROP COLUMN colour" in ddl:
        conn.execute("ALTER TABLE items ADD COLUMN colour text DEFAULT 'red'")
    engine.run_until_idle()
    exact(db, redis_url)
    conn.execute(ddl)
    assert state(conn, "items") == "pending"  # queued by the event trigger, nobody ran a backfill
    engine.run_until_idle()
    exact(db, redis_url)
    stored = json.loads(doc(r, "public.items", "7")[b"d"])
    key = "item_id" if "item_id" in ddl else "id"
    expected = conn.execute(f"SELECT to_jsonb(i) - 'secret' FROM items i WHERE {key} = 7").fetchone()  # noqa: S608
    assert expected is not None and stored == expected[0]
    if "bigint" in ddl:
        assert conn.execute("SELECT key_types FROM asymm.sync_tables").fetchone() == (["bigint"],)
    conn.execute(f"UPDATE items SET secret = 'z' WHERE {key} = 7")  # noqa: S608 (capture works on)
    engine.run_until_idle()
    exact(db, redis_url)


def test_ddl_that_leaves_the_columns_alone_queues_no_backfill(
    db: str, conn: Conn, engine: SyncEngine, redis_url: str
) -> None:
    make_items(db, rows=20)
    engine.run_until_idle()
    conn.execute("ALTER TABLE items SET (fillfactor = 90)")
    conn.execute("ALTER TABLE items ADD CONSTRAINT qty_positive CHECK (qty > 0)")
    conn.execute("CREATE TABLE unrelated (a int)")
    conn.execute("ALTER TABLE unrelated ADD COLUMN b int")
    assert state(conn, "items") == "done"
    exact(db, redis_url)


def test_a_failure_to_follow_column_ddl_never_fails_the_ddl(db: str, conn: Conn) -> None:
    """The event trigger turns an internal error into a WARNING (the DDL commits)."""
    make_items(db, rows=5)
    conn.execute("ALTER FUNCTION asymm._sync_follow_columns() RENAME TO _sync_follow_columns_away")
    try:
        conn.execute("ALTER TABLE items ADD COLUMN extra int")
    finally:
        conn.execute("ALTER FUNCTION asymm._sync_follow_columns_away() RENAME TO _sync_follow_columns")
    assert conn.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'extra'"
    ).fetchone() == (1,)


# -- 5. partitions ------------------------------------------------------------------------------


def make_events(conn: Conn) -> None:
    """events: LIST by region; 'us' is itself RANGE-partitioned by id (two levels); 2,000 rows."""
    conn.execute(
        "CREATE TABLE events (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)"
    )
    conn.execute("CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu')")
    conn.execute("CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us') PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE events_us_lo PARTITION OF events_us FOR VALUES FROM (MINVALUE) TO (1000)")
    conn.execute("CREATE TABLE events_us_hi PARTITION OF events_us FOR VALUES FROM (1000) TO (MAXVALUE)")
    conn.execute(
        "INSERT INTO events SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 2000) g"
    )
    conn.execute("SELECT asymm.track('events')")


def test_writes_to_partitions_at_every_level_are_captured_under_the_tracked_table(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    make_events(conn)
    engine.run_until_idle()
    conn.execute("INSERT INTO events_eu VALUES (5000, 'eu', 1)")
    conn.execute("UPDATE events_eu SET v = -1 WHERE id <= 100")
    conn.execute("DELETE FROM events_us_lo WHERE id <= 51")
    conn.execute("UPDATE events_us SET id = id + 2000 WHERE id BETWEEN 991 AND 999")  # moves lo -> hi
    conn.execute("INSERT INTO events_us_hi SELECT g, 'us', 0 FROM generate_series(3001, 3999, 2) g")
    conn.execute("DELETE FROM events_us_hi WHERE id = 1001")
    events = conn.execute("SELECT 'events'::regclass::oid").fetchone()
    assert conn.execute(
        "SELECT array_agg(DISTINCT rel) FROM asymm.sync_outbox WHERE op IN ('I', 'U', 'D')"
    ).fetchone() == ([events[0] if events else None],)
    engine.run_until_idle()
    assert json.loads(doc(r, "public.events", '[2, "eu"]')[b"d"]) == {"id": 2, "region": "eu", "v": -1}
    assert b"t" in doc(r, "public.events", '[51, "us"]')
    assert b"t" in doc(r, "public.events", '[991, "us"]')
    assert json.loads(doc(r, "public.events", '[2991, "us"]')[b"d"])["v"] == 991
    exact(db, redis_url)


def test_partitions_created_later_are_captured_and_a_partition_cannot_be_tracked_twice(
    db: str, conn: Conn, engine: SyncEngine, redis_url: str
) -> None:
    make_events(conn)
    conn.execute("CREATE TABLE events_asia PARTITION OF events FOR VALUES IN ('asia') PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE events_asia_all PARTITION OF events_asia DEFAULT")
    engine.run_until_idle()
    conn.execute("INSERT INTO events_asia_all SELECT g, 'asia', g FROM generate_series(1, 300) g")
    conn.execute("UPDATE events_asia SET v = 0 WHERE id < 10")
    engine.run_until_idle()
    exact(db, redis_url)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="is tracked"):
        conn.execute("SELECT asymm.track('events_asia_all')")
    conn.execute("CREATE TABLE other (id int PRIMARY KEY, p int) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE other_1 PARTITION OF other DEFAULT")
    conn.execute("SELECT asymm.track('other_1')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="is tracked"):
        conn.execute("SELECT asymm.track('other')")


def test_attach_of_a_populated_table_with_its_own_column_order(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    """A table built separately (columns in another order, a dropped column: other attnums) and
    attached with rows: its rows enter Redis, and later direct writes find the key by name."""
    make_events(conn)
    engine.run_until_idle()
    conn.execute("CREATE TABLE events_sa (junk int, v int, region text NOT NULL, id int NOT NULL)")
    conn.execute("ALTER TABLE events_sa DROP COLUMN junk")
    conn.execute("INSERT INTO events_sa (id, region, v) SELECT g, 'sa', g * 10 FROM generate_series(1, 25000) g")
    conn.execute("ALTER TABLE events ATTACH PARTITION events_sa FOR VALUES IN ('sa')")
    assert state(conn, "events") == "done"  # no re-copy of the whole table
    engine.run_until_idle()
    assert json.loads(doc(r, "public.events", '[7, "sa"]')[b"d"]) == {"id": 7, "region": "sa", "v": 70}
    conn.execute("UPDATE events_sa SET v = -v WHERE id <= 10")
    conn.execute("DELETE FROM events_sa WHERE id = 11")
    engine.run_until_idle()
    assert json.loads(doc(r, "public.events", '[7, "sa"]')[b"d"])["v"] == -70
    exact(db, redis_url)


@pytest.mark.parametrize(
    "leave",
    [
        "ALTER TABLE events DETACH PARTITION events_eu",
        "DROP TABLE events_eu",
        "TRUNCATE events_eu",
        "ALTER TABLE events_us DETACH PARTITION events_us_lo",
        "DROP TABLE events_us",  # a sub-partitioned partition, with its own partitions
        "TRUNCATE events_us_hi",
        "TRUNCATE events",  # the tracked table itself: a reset, its partitions' prunes skipped
    ],
)
def test_rows_that_leave_with_a_partition_leave_redis(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str, leave: str
) -> None:
    make_events(conn)
    engine.run_until_idle()
    exact(db, redis_url)
    with conn.transaction():
        conn.execute(leave)
        for key, region, leaf in ((2, "eu", "events_eu"), (3, "us", "events_us_lo")):  # re-inserted at once
            conn.execute(
                "INSERT INTO events SELECT %s, %s, 42 WHERE EXISTS (SELECT FROM pg_partition_tree('events')"
                " WHERE relid = to_regclass(%s)) ON CONFLICT DO NOTHING",
                (key, region, leaf),
            )
    engine.run_until_idle()
    if "events_eu" not in leave and leave != "TRUNCATE events":
        assert json.loads(doc(r, "public.events", '[2, "eu"]')[b"d"])["v"] == 2  # untouched partition
    exact(db, redis_url)
    if "DETACH" in leave:
        detached = leave.split()[-1]
        assert conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal", (detached,)
        ).fetchone() == (0,)
        conn.execute(f"UPDATE {detached} SET v = 0")  # no longer part of events: not captured  # noqa: S608
        engine.run_until_idle()
        exact(db, redis_url)


def test_detach_partition_concurrently(db: str, conn: Conn, engine: SyncEngine, redis_url: str) -> None:
    """DETACH ... CONCURRENTLY (two transactions, outside a transaction block) prunes too."""
    make_events(conn)
    engine.run_until_idle()
    conn.execute("ALTER TABLE events DETACH PARTITION events_eu CONCURRENTLY")
    engine.run_until_idle()
    exact(db, redis_url)
    assert conn.execute("SELECT count(*) FROM asymm.sync_partitions WHERE part = 'events_eu'::regclass").fetchone() == (
        0,
    )


def test_untrack_removes_the_partitions_triggers(db: str, conn: Conn) -> None:
    make_events(conn)
    conn.execute("SELECT asymm.untrack('events')")
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'asymm\\_sync\\_%'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM asymm.sync_partitions").fetchone() == (0,)


def test_prune_never_removes_a_row_inserted_again_concurrently(
    db: str, conn: Conn, engine: SyncEngine, redis_url: str
) -> None:
    """The prune's versioning (see SyncEngine._prune): a key re-inserted by a transaction that
    commits while the prune walks is applied after it and wins."""
    make_events(conn)
    engine.run_until_idle()
    original = engine._prune
    other = psycopg.connect(db, autocommit=True)

    def prune_with_a_reinsert(table: Any, result: Any) -> bool:
        other.execute("INSERT INTO events SELECT g, 'eu', -g FROM generate_series(2, 400, 2) g")
        return original(table, result)

    engine._prune = prune_with_a_reinsert  # type: ignore[method-assign]
    try:
        conn.execute("TRUNCATE events_eu")
        engine.run_until_idle()
    finally:
        engine._prune = original  # type: ignore[method-assign]
        other.close()
    assert conn.execute("SELECT count(*) FROM events WHERE region = 'eu'").fetchone() == (200,)
    exact(db, redis_url)


def test_a_partman_cycle_under_a_write_storm(db: str, conn: Conn, redis_url: str) -> None:
    """A partition manager's maintenance (create the next partition, detach and drop the oldest,
    now and then truncate one, attach a populated one) while writers hit the parent and the
    partitions directly; the daemon syncs throughout."""
    conn.execute("CREATE TABLE log (id int, day int, v int, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)")
    for day in range(4):
        conn.execute(f"CREATE TABLE log_{day} PARTITION OF log FOR VALUES FROM ({day}) TO ({day + 1})")
    conn.execute("INSERT INTO log SELECT g, g % 4, g FROM generate_series(1, 4000) g")
    conn.execute("SELECT asymm.track('log')")
    window = [0, 4]  # live days: [lo, hi)
    stop = threading.Event()
    errors: list[str] = []

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        with psycopg.connect(db, autocommit=True) as c:
            while not stop.is_set():
                lo, hi = window
                day = rnd.randrange(lo, hi)
                key = rnd.randint(1, 5000)
                try:
                    action = rnd.random()
                    if action < 0.3:
                        c.execute("INSERT INTO log VALUES (%s, %s, 0) ON CONFLICT DO NOTHING", (key, day))
                    elif action < 0.55:
                        c.execute(
                            f"INSERT INTO log_{day} VALUES (%s, %s, 1) ON CONFLICT (id, day)"  # noqa: S608
                            f" DO UPDATE SET v = log_{day}.v + 1",
                            (key, day),
                        )
                    elif action < 0.8:
                        c.execute(f"UPDATE log_{day} SET v = v + 1 WHERE id %% 50 = %s", (key % 50,))  # noqa: S608
                    else:
                        c.execute(f"DELETE FROM log_{day} WHERE id = %s", (key,))  # noqa: S608
                except (
                    psycopg.errors.UndefinedTable,
                    psycopg.errors.CheckViolation,
                    psycopg.errors.LockNotAvailable,
                    psycopg.errors.DeadlockDetected,
                ):
                    pass  # the partition was detached or dropped meanwhile
                except psycopg.Error as exc:
                    errors.append(str(exc))

    proc = start_daemon(db, redis_url)
    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(3)]
    try:
        assert wait_for(lambda: settled(db))
        for thread in threads:
            thread.start()
        for cycle in range(6):
            lo, hi = window
            conn.execute(f"CREATE TABLE log_{hi} PARTITION OF log FOR VALUES FROM ({hi}) TO ({hi + 1})")
            window[1] = hi + 1
            if cycle % 2 == 0:  # a populated table attached
                conn.execute(f"CREATE TABLE log_{hi + 1} (LIKE log)")
                conn.execute(f"INSERT INTO log_{hi + 1} SELECT g, {hi + 1}, g FROM generate_series(1, 500) g")  # noqa: S608
                conn.execute(f"ALTER TABLE log ATTACH PARTITION log_{hi + 1} FOR VALUES FROM ({hi + 1}) TO ({hi + 2})")
                window[1] = hi + 2
            time.sleep(0.3)  # deliberate: the writers write into the wider window for a while
            window[0] = lo + 1
            time.sleep(0.05)
            conn.execute(f"ALTER TABLE log DETACH PARTITION log_{lo}")
            conn.execute(f"DROP TABLE log_{lo}")
            if cycle % 3 == 1:
                conn.execute(f"TRUNCATE log_{window[0]}")
            time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert wait_for(lambda: settled(db), timeout=60)
    finally:
        stop.set()
        err = stop_daemon(proc)
    assert errors == [], errors[:3]
    assert "Traceback" not in err, err
    exact(db, redis_url)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "INSERT INTO events_eu SELECT g, 'eu', 7 FROM generate_series(1, 40) g"
                    " ON CONFLICT (id, region) DO UPDATE SET v = 8",
                    "UPDATE events_us_lo SET v = v + 1 WHERE id < 30",
                    "DELETE FROM events_us_hi WHERE id % 7 = 0",
                    "TRUNCATE events_us_lo",
                    "ALTER TABLE events_us DETACH PARTITION events_us_lo",
                    "ALTER TABLE events_us ATTACH PARTITION events_us_lo FOR VALUES FROM (MINVALUE) TO (1000)",
                    "DELETE FROM events WHERE id < 10",
                    "ALTER TABLE events ADD COLUMN IF NOT EXISTS w int DEFAULT 3",
                ]
            ),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_sequence_of_partition_writes_and_ddl_ends_exact(
    make_db: Any, redis_url: str, steps: list[tuple[str, bool]]
) -> None:
    """Writes to partitions and partition DDL in any order, with the sync run between any two
    (``True``) or not: exact at the end."""
    dsn = make_db()
    engine = SyncEngine(dsn, redis_url)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            make_events(conn)
            engine.run_until_idle()
            for step, sync_now in steps:
                # PostgreSQL refusing a step (class 42: detaching a partition twice, attaching one
                # that lacks a column added to the parent meanwhile) is part of the sequence.
                with contextlib.suppress(psycopg.errors.ProgrammingError):
                    conn.execute(step)
                if sync_now:
                    engine.run_until_idle()
            engine.run_until_idle()
        exact(dsn, redis_url)
    finally:
        engine.close()


# -- 6. two-phase commit ------------------------------------------------------------------------

PREPARED = [
    "INSERT INTO items VALUES (1000, 'p', 1, 's')",
    "UPDATE items SET qty = -1 WHERE id <= 5",
    "DELETE FROM items WHERE id BETWEEN 6 AND 9",
    "TRUNCATE items",
]


@pytest.mark.parametrize("finish", ["COMMIT PREPARED", "ROLLBACK PREPARED"])
@pytest.mark.parametrize("statement", PREPARED)
def test_two_phase_commit_on_a_tracked_table_while_the_worker_waits(
    db: str, conn: Conn, engine: SyncEngine, redis_url: str, statement: str, finish: str
) -> None:
    make_items(db, rows=20)
    engine.run_until_idle()
    engine.set_listening(True)  # the worker is idle, waiting for NOTIFY: capture would notify
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("LISTEN asymm_sync")
        conn.execute("BEGIN")
        conn.execute(statement)
        conn.execute("PREPARE TRANSACTION 'asymm_2pc'")
        assert list(listener.notifies(timeout=0.3)) == []  # a prepared transaction wakes no one
        conn.execute(f"{finish} 'asymm_2pc'")
    engine.run_until_idle()
    exact(db, redis_url, empty=statement == "TRUNCATE items" and finish == "COMMIT PREPARED")
    count = conn.execute("SELECT count(*) FROM items").fetchone()
    assert count is not None and (count[0] == 20) == (finish == "ROLLBACK PREPARED" or "UPDATE" in statement)


def test_two_phase_commit_of_track_and_a_savepoint_rolled_back(
    db: str, conn: Conn, engine: SyncEngine, redis_url: str
) -> None:
    """asymm.sync_notify() (track, TRUNCATE) takes the same path: PREPARE works after it too."""
    conn.execute("CREATE TABLE later (id int PRIMARY KEY, v text)")
    conn.execute("INSERT INTO later SELECT g, 'v' || g FROM generate_series(1, 30) g")
    conn.execute("BEGIN")
    conn.execute("SELECT asymm.track('later')")
    conn.execute("SAVEPOINT s")
    conn.execute("TRUNCATE later")
    conn.execute("ROLLBACK TO SAVEPOINT s")
    conn.execute("PREPARE TRANSACTION 'asymm_track'")
    conn.execute("COMMIT PREPARED 'asymm_track'")
    engine.run_until_idle()
    exact(db, redis_url)


def test_ordinary_commits_still_notify_once_and_savepoints_keep_their_semantics(db: str, conn: Conn) -> None:
    make_items(db, rows=3)
    conn.execute("UPDATE asymm.sync_wake SET listening = true")
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("LISTEN asymm_sync")
        conn.execute("UPDATE items SET qty = 5 WHERE id = 1")
        assert [(n.channel, n.payload) for n in listener.notifies(timeout=0.5)] == [("asymm_sync", "")]
        # sync_notify() alone (the wake flag down: only the unconditional path notifies)
        conn.execute("UPDATE asymm.sync_wake SET listening = false")
        for release, expected in ((False, 0), (True, 1)):
            with conn.transaction():
                conn.execute("SAVEPOINT s")
                conn.execute("TRUNCATE items")  # asymm.sync_notify()
                conn.execute("RELEASE SAVEPOINT s" if release else "ROLLBACK TO SAVEPOINT s")
            assert len(list(listener.notifies(timeout=0.5))) == expected, release
        with conn.transaction():
            conn.execute("SELECT asymm.sync_notify()")
            conn.execute("SELECT asymm.sync_notify()")
            conn.execute("SELECT asymm.sync_heartbeat()")
        assert len(list(listener.notifies(timeout=0.5))) == 1
        conn.execute("BEGIN")
        conn.execute("SELECT asymm.sync_notify()")
        conn.execute("ROLLBACK")
        assert list(listener.notifies(timeout=0.3)) == []
