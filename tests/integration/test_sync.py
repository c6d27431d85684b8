"""Redis sync against real PostgreSQL + Redis: capture, horizon-safe consumption, CAS, tombstones,
truncate, resync after a flush, backfill under writes, sensitive columns, the cache API, the CLI."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from asymm.cache import Cache
from asymm.sync import SyncEngine
from asymm.sync.keys import pin_key_settings
from asymm.sync.tables import load_tables
from tests.harness.sync_helpers import ASYMM, Storm, full_compare, make_items

Conn = psycopg.Connection[Any]


def doc(client: redis.Redis, table: str, key: str) -> dict[bytes, bytes]:
    return client.hgetall("asymm:{" + table + "}:" + key)  # type: ignore[return-value]


def test_capture_writes_thin_rows_and_notifies_once_per_transaction(db: str, conn: Conn) -> None:
    make_items(db, rows=3)
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("LISTEN asymm_sync")
        with conn.transaction():
            conn.execute("INSERT INTO items SELECT g, 'b', g FROM generate_series(10, 1009) g")
            conn.execute("UPDATE items SET qty = 0 WHERE id <= 2")
            conn.execute("DELETE FROM items WHERE id = 3")
        notes = list(listener.notifies(timeout=0.5))
    assert [(n.channel, n.payload) for n in notes] == [("asymm_sync", "")]
    rows = conn.execute(
        "SELECT op::text, cardinality(keys), xid = min(xid) OVER () FROM asymm.sync_outbox ORDER BY op"
    ).fetchall()
    # one row per statement, one xid; UPDATE lists new keys, and old keys that differ from them
    assert rows == [("D", 1, True), ("I", 1000, True), ("U", 2, True)]


def test_a_notify_rolled_back_with_a_savepoint_is_sent_again(db: str, conn: Conn) -> None:
    """Capture remembers that its transaction notified, to skip the wake flag afterwards; a
    savepoint rolled back takes the notification with it, so the next change notifies again."""
    make_items(db, rows=3)
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("LISTEN asymm_sync")
        for release in (False, True):
            with conn.transaction():
                with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
                    conn.execute("UPDATE items SET qty = qty + 1 WHERE id = 1")  # notifies
                    conn.execute("SELECT 1 / 0")  # the savepoint rolls back: no notification left
                if release:
                    with conn.transaction():  # a savepoint released: its notification stays
                        conn.execute("UPDATE items SET qty = qty + 1 WHERE id = 2")
                conn.execute("UPDATE items SET qty = qty + 1 WHERE id = 3")
            assert len(list(listener.notifies(timeout=0.5))) == 1, release
        with conn.transaction():
            conn.execute("UPDATE items SET qty = qty + 1 WHERE id = 1")
            conn.execute("SAVEPOINT s")
            conn.execute("UPDATE items SET qty = qty + 1 WHERE id = 2")
            conn.execute("ROLLBACK TO SAVEPOINT s")  # the notification came from before it: kept
        assert len(list(listener.notifies(timeout=0.5))) == 1
        conn.execute("BEGIN")
        conn.execute("UPDATE items SET qty = qty + 1 WHERE id = 1")
        conn.execute("ROLLBACK")  # nothing committed: no notification
        assert list(listener.notifies(timeout=0.3)) == []


def test_capture_skips_notify_while_the_worker_drains(db: str, conn: Conn) -> None:
    make_items(db, rows=3)
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("LISTEN asymm_sync")
        conn.execute("UPDATE asymm.sync_wake SET listening = false")  # what the worker does while busy
        conn.execute("UPDATE items SET qty = 1 WHERE id = 1")
        assert list(listener.notifies(timeout=0.3)) == []
        conn.execute("DELETE FROM asymm.sync_wake")  # as after a crash (unlogged): notify
        conn.execute("UPDATE items SET qty = 2 WHERE id = 1")
        assert len(list(listener.notifies(timeout=0.5))) == 1
    assert conn.execute("SELECT count(*) FROM asymm.sync_outbox WHERE op = 'U'").fetchone() == (2,)


def test_cached_wake_flag_follows_every_change(db: str, conn: Conn) -> None:
    """Capture caches the wake flag per backend; a change committed by another session (the
    worker), one made in the writer's own transaction, and one rolled back must each be seen by
    the writer's next statement, although its session has read the flag before."""
    make_items(db, rows=3)
    with psycopg.connect(db, autocommit=True) as listener, psycopg.connect(db, autocommit=True) as worker:
        listener.execute("LISTEN asymm_sync")

        def notified(statement: str) -> bool:
            conn.execute(statement)
            return len(list(listener.notifies(timeout=0.3))) == 1

        worker.execute("UPDATE asymm.sync_wake SET listening = false")
        assert not notified("UPDATE items SET qty = 1 WHERE id = 1")  # reads (and caches) false
        assert not notified("UPDATE items SET qty = 2 WHERE id = 1")  # from the cache
        worker.execute("UPDATE asymm.sync_wake SET listening = true")  # committed elsewhere
        assert notified("UPDATE items SET qty = 3 WHERE id = 1")
        worker.execute(
            "INSERT INTO asymm.sync_wake (listening) VALUES (false)"
            " ON CONFLICT (singleton) DO UPDATE SET listening = excluded.listening"
        )  # the worker's way
        assert not notified("UPDATE items SET qty = 4 WHERE id = 1")
        worker.execute("DELETE FROM asymm.sync_wake")  # no row: notify
        assert notified("UPDATE items SET qty = 5 WHERE id = 1")
        worker.execute("INSERT INTO asymm.sync_wake (listening) VALUES (false)")
        assert not notified("UPDATE items SET qty = 6 WHERE id = 1")
        worker.execute("TRUNCATE asymm.sync_wake")
        assert notified("UPDATE items SET qty = 7 WHERE id = 1")
        worker.execute("INSERT INTO asymm.sync_wake (listening) VALUES (false)")
        # the writer's own change, seen within its transaction, then forgotten with its rollback
        conn.execute("BEGIN")
        conn.execute("UPDATE items SET qty = 8 WHERE id = 1")  # false, from a fresh read
        conn.execute("UPDATE asymm.sync_wake SET listening = true")
        conn.execute("UPDATE items SET qty = 9 WHERE id = 2")  # reads its own true: will notify
        conn.execute("ROLLBACK")
        assert list(listener.notifies(timeout=0.3)) == []  # rolled back: nothing sent
        assert not notified("UPDATE items SET qty = 10 WHERE id = 1")  # false again, not the rolled-back true
        with conn.transaction():
            conn.execute("UPDATE asymm.sync_wake SET listening = true")
            conn.execute("UPDATE items SET qty = 11 WHERE id = 1")
        assert len(list(listener.notifies(timeout=0.3))) == 1
    assert conn.execute("SELECT count(*) FROM asymm.sync_outbox WHERE op = 'U'").fetchone() == (9,)


def test_plain_writer_captures_with_own_rights_and_cannot_forge(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    """The C capture function writes the outbox itself: a writer with nothing but rights on the
    table captures its changes, and has no way to add, change or read outbox rows, nor to point the
    capture function at a table of its own."""
    make_items(db, rows=3)
    role = f"asymm_writer_{conn.info.dbname}"[:60]
    conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON items TO {role}")
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        engine.run_until_idle()
        with psycopg.connect(db, user=role, autocommit=True) as writer:
            writer.execute("INSERT INTO items VALUES (10, 'new', 1, 'x')")
            writer.execute("UPDATE items SET qty = 42 WHERE id = 1")
            writer.execute("DELETE FROM items WHERE id = 2")
            writer.execute("CREATE TABLE mine (id int PRIMARY KEY)")
            ins0 = "INSERT INTO asymm.sync_outbox_0 VALUES (%s, pg_current_xact_id(), 'items'::regclass, %s, %s)"
            forged: list[tuple[str, Any]] = [
                (ins0, (0, "U", ["1", "999"])),
                (ins0, (0, "D", ["3"])),
                (ins0, (0, "T", None)),
                ("INSERT INTO asymm.sync_outbox VALUES (1, pg_current_xact_id(), 'items'::regclass, 'D', '{3}')", None),
                ("DELETE FROM asymm.sync_outbox_0", None),
                ("SELECT * FROM asymm.sync_outbox_1", None),
                ("UPDATE asymm.sync_wake SET listening = false", None),
                (
                    "CREATE TRIGGER t AFTER DELETE ON mine REFERENCING OLD TABLE AS o FOR EACH STATEMENT"
                    " EXECUTE FUNCTION asymm._sync_capture('id')",
                    None,
                ),
                ("SELECT asymm._sync_capture()", None),
            ]
            for query, params in forged:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    writer.execute(query, params)
        rows = conn.execute(
            "SELECT op::text, keys FROM asymm.sync_outbox WHERE rel = 'items'::regclass ORDER BY op"
        ).fetchall()
        assert rows == [("D", ["2"]), ("I", ["10"]), ("U", ["1"])]  # the writer's changes, nothing else
        engine.run_until_idle()
        assert json.loads(doc(r, "public.items", "1")[b"d"])["qty"] == 42
        assert json.loads(doc(r, "public.items", "10")[b"d"])["name"] == "new"
        assert b"d" not in doc(r, "public.items", "2")
        assert json.loads(doc(r, "public.items", "3")[b"d"])["qty"] == 3
        assert full_compare(db, redis_url).total == 0
    finally:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


# Key columns of every kind the capture must turn into text exactly as the worker's key expression
# does (pk::text, jsonb_build_array(pk...)::text): values chosen where a type's text form is not its
# obvious one (boolean::text is 'true', not 't'; char(n)::text drops trailing blanks; numeric keeps
# its scale; timestamptz follows the session's TimeZone; jsonb escapes quotes and non-ASCII).
KEY_CASES: list[tuple[str, str]] = [
    ("int", "VALUES (1), (-2147483648), (2147483647), (0)"),
    ("bigint", "VALUES (9223372036854775807), (-1), (42)"),
    ("smallint", "VALUES (-32768), (7)"),
    ("text", "VALUES ('plain'), ('with \"quotes\" and \\ backslash'), ('ünïcødé ✓'), (' padded '), ('')"),
    ("varchar(20)", "VALUES ('v1'), ('v 2 ')"),
    ("char(6)", "VALUES ('ab'), ('abcdef'), ('a b')"),
    ("uuid", "VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), ('00000000-0000-0000-0000-000000000000')"),
    ("numeric", "VALUES (1.50), (-0.000), (1e20), ('NaN'), (123456789.123456789)"),
    ("numeric(10,3)", "VALUES (1.5), (2)"),
    ("double precision", "VALUES (0.1), (1e300), ('-Infinity'), (3)"),
    ("timestamptz", "VALUES ('2026-11-24 12:34:56.789+00'), ('1999-12-31 23:59:59-05'), ('infinity')"),
    ("timestamp", "VALUES ('2026-11-24 12:34:56.000001')"),
    ("date", "VALUES ('2026-02-28'), ('-infinity')"),
    ("boolean", "VALUES (true), (false)"),
    ("interval", "VALUES ('1 day 02:03:04'), ('-1 month')"),
    ("bytea", "VALUES ('\\x00ff'), ('abc')"),
    ("inet", "VALUES ('10.0.0.1'), ('10.0.0.0/8'), ('::1')"),
    ("mood", "VALUES ('sad'), ('happy')"),
    ("posint", "VALUES (1), (99)"),
]


def test_capture_keys_match_the_worker_key_expression(db: str, conn: Conn) -> None:
    """What capture writes for a key is byte for byte what the worker computes from the row
    (TrackedTable.key_expr), for INSERT, UPDATE (old and new keys) and DELETE, one-column and
    composite keys; and the worker finds every captured key's row again (TrackedTable.fetch_sql)."""
    conn.execute("SET TimeZone = 'America/St_Johns'")  # a half-hour offset, not the server's default
    conn.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")
    conn.execute("CREATE DOMAIN posint AS int CHECK (VALUE > 0)")
    tables = []
    for i, (sqltype, values) in enumerate(KEY_CASES):
        name = f"k{i}"
        conn.execute(f"CREATE TABLE {name} (k {sqltype} PRIMARY KEY, v int)")
        conn.execute(f"CREATE TEMP TABLE src_{name} (k {sqltype})")
        conn.execute(f"INSERT INTO src_{name} {values}")
        tables.append((name, f"INSERT INTO {name} SELECT k, 0 FROM src_{name}"))  # noqa: S608 (test constants)
    conn.execute(
        "CREATE TABLE combo (i int, b bigint, t text, u uuid, n numeric, ts timestamptz, f boolean,"
        " v int, PRIMARY KEY (i, b, t, u, n, ts, f))"
    )
    tables.append(
        (
            "combo",
            "INSERT INTO combo VALUES"
            " (1, 2, 'a \"quoted\" ü', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1.50,"
            "  '2026-11-24 12:00:00.5+00', true, 0),"
            " (-1, 9223372036854775807, '', '00000000-0000-0000-0000-000000000000', 'NaN',"
            "  'infinity', false, 0)",
        )
    )
    for name, _ in tables:
        conn.execute("SELECT asymm.track(%s)", (name,))
    loaded = {t.table: t for t in load_tables(conn).values()}
    # The worker's session has the canonical key settings (asymm.sync.keys), whatever the writer's.
    worker = psycopg.connect(db, autocommit=True)
    pin_key_settings(worker)

    def worker_keys(name: str) -> list[str]:
        key = loaded[name].key_expr()
        query = sql.SQL("SELECT {} FROM {} t").format(key, sql.Identifier(name))
        return sorted(k for (k,) in worker.execute(query))

    for name, insert in tables:
        table = loaded[name]
        checks: list[tuple[str, list[str]]] = []
        conn.execute(insert)
        checks.append(("I", worker_keys(name)))
        before = worker_keys(name)
        first = sql.SQL("(SELECT {} FROM {} t ORDER BY 1 LIMIT 1)").format(table.key_expr(), sql.Identifier(name))
        if name == "combo":  # a key change: old and new keys
            conn.execute("UPDATE combo SET i = i + 100, v = 1 WHERE f")
        else:
            conn.execute(
                sql.SQL("UPDATE {} t SET v = 1 WHERE {} = {}").format(sql.Identifier(name), table.key_expr(), first)
            )
        after = worker_keys(name)
        changed = sorted(set(before) ^ set(after)) or sorted(
            k
            for (k,) in worker.execute(
                sql.SQL("SELECT {} FROM {} t WHERE v = 1").format(table.key_expr(), sql.Identifier(name))
            )
        )
        checks.append(("U", changed))
        gone = worker_keys(name)
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(name)))
        checks.append(("D", gone))
        for op, expected in checks:
            rows = conn.execute(
                "SELECT keys FROM asymm.sync_outbox WHERE rel = %s::regclass AND op = %s", (name, op)
            ).fetchall()
            assert len(rows) == 1, (name, op, rows)
            assert sorted(rows[0][0]) == expected, (name, op)
        # the worker finds the rows of captured keys again (re-insert, then look every key up)
        conn.execute(insert)
        keys = conn.execute(
            "SELECT keys FROM asymm.sync_outbox WHERE rel = %s::regclass AND op = 'I' ORDER BY xid DESC LIMIT 1",
            (name,),
        ).fetchone()[0]  # type: ignore[index]
        docs = worker.execute(table.fetch_sql("drop"), (keys,)).fetchall()
        assert len(docs) == len(keys) and all(d is not None for _, _, d in docs), name  # (xmin, key, doc)
    worker.close()


def test_changes_reach_redis_with_versions_tombstones_and_truncate(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    make_items(db, rows=50)
    conn.execute("CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b))")
    conn.execute("SELECT asymm.track('pairs')")
    engine.run_until_idle()
    conn.execute("INSERT INTO pairs VALUES (1, 'x', 1), (2, 'y', 2)")
    conn.execute("UPDATE items SET name = 'renamed' WHERE id = 1")
    conn.execute("UPDATE items SET id = 1000 WHERE id = 2")  # a key change: old key deleted
    conn.execute("DELETE FROM items WHERE id = 3")
    engine.run_until_idle()
    assert json.loads(doc(r, "public.items", "1")[b"d"]) == {"id": 1, "name": "renamed", "qty": 1}
    assert b"t" in doc(r, "public.items", "2") and b"t" in doc(r, "public.items", "3")
    assert int(doc(r, "public.items", "3")[b"v"]) > 0 and r.ttl("asymm:{public.items}:3") > 0
    assert json.loads(doc(r, "public.pairs", '[2, "y"]')[b"d"]) == {"a": 2, "b": "y", "v": 2}
    conn.execute("TRUNCATE pairs")
    conn.execute("INSERT INTO pairs VALUES (3, 'z', 3)")
    engine.run_until_idle()
    assert r.keys("asymm:{public.pairs}:*") == [b'asymm:{public.pairs}:[3, "z"]']
    assert full_compare(db, redis_url).total == 0


def test_columns_named_like_the_sync_aliases_do_not_replace_the_row(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    """The sync's SQL calls the table ``t`` and the keys ``k.key``: a column named ``t`` must not
    stand in for the whole row (a bare ``to_jsonb(t)`` there is that column), with or without
    sensitive columns (the drop mode builds the row differently), in batches, backfill and fills."""
    conn.execute("CREATE TABLE clash (k int PRIMARY KEY, t text, key text, secret text)")
    conn.execute("CREATE TABLE clash_plain (t int PRIMARY KEY, key text)")
    conn.execute("INSERT INTO clash VALUES (1, 'a', 'b', 's')")
    conn.execute("INSERT INTO clash_plain VALUES (1, 'b')")
    conn.execute("SELECT asymm.track('clash', sensitive => '{secret}')")
    conn.execute("SELECT asymm.track('clash_plain')")
    engine.run_until_idle()  # backfill
    assert json.loads(doc(r, "public.clash", "1")[b"d"]) == {"k": 1, "t": "a", "key": "b"}
    assert json.loads(doc(r, "public.clash_plain", "1")[b"d"]) == {"t": 1, "key": "b"}
    conn.execute("UPDATE clash SET t = 'c'")
    conn.execute("INSERT INTO clash_plain VALUES (2, 'd')")
    engine.run_until_idle()  # the batch statement: the tables are hot once they changed
    conn.execute("UPDATE clash SET key = 'e'")
    engine.run_until_idle()
    assert json.loads(doc(r, "public.clash", "1")[b"d"]) == {"k": 1, "t": "c", "key": "e"}
    assert json.loads(doc(r, "public.clash_plain", "2")[b"d"]) == {"t": 2, "key": "d"}
    r.delete("asymm:{public.clash_plain}:2")
    cache = Cache(db, redis_url)
    try:
        assert cache.get("clash_plain", 2) == {"t": 2, "key": "d"}  # a miss: read from PostgreSQL and filled
        assert json.loads(doc(r, "public.clash_plain", "2")[b"d"]) == {"t": 2, "key": "d"}
    finally:
        cache.close()
    assert full_compare(db, redis_url).total == 0


def test_a_long_transaction_with_a_low_xid_is_not_skipped(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    make_items(db, rows=5)
    engine.run_until_idle()
    with psycopg.connect(db) as slow:
        slow.execute("UPDATE items SET name = 'slow' WHERE id = 1")  # takes an xid below what follows
        slow_xid = slow.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]  # type: ignore[index]
        for i in range(2, 6):
            conn.execute("UPDATE items SET name = 'fast' WHERE id = %s", (i,))
        later = conn.execute("SELECT max(xid::text::bigint) FROM asymm.sync_outbox").fetchone()[0]  # type: ignore[index]
        assert later > slow_xid
        engine.sync_once()  # the horizon is held at the slow xid: nothing above it is consumed yet
        assert json.loads(doc(r, "public.items", "2")[b"d"])["name"] == "item 2"
        slow.commit()
    engine.run_until_idle()
    assert json.loads(doc(r, "public.items", "1")[b"d"])["name"] == "slow"
    assert json.loads(doc(r, "public.items", "5")[b"d"])["name"] == "fast"
    assert full_compare(db, redis_url).total == 0


def test_old_versions_and_stale_fills_never_resurrect_a_delete(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    make_items(db, rows=10)
    engine.run_until_idle()
    before = int(conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()[0])  # type: ignore[index]
    old = conn.execute("SELECT (to_jsonb(i) - 'secret')::text FROM items i WHERE id = 4").fetchone()[0]  # type: ignore[index]
    conn.execute("DELETE FROM items WHERE id = 4")
    engine.run_until_idle()
    cache = Cache(db, redis_url)
    try:
        # a read-through fill that read the row before the delete arrives late: refused by version
        assert cache.scripts.fill("public.items", before, old, "4", 60) is False
        # so does a replayed (older) daemon write
        epoch = r.hget("asymm:{public.items}", "epoch").decode()  # type: ignore[union-attr]
        assert cache.scripts.write("public.items", epoch, before, 60, [("4", old)]) == -2 or b"t" in doc(
            r, "public.items", "4"
        )
        assert cache.get("items", 4) is None
        # after a TRUNCATE the floor refuses fills read before it, even for keys with no tombstone
        conn.execute("TRUNCATE items")
        engine.run_until_idle()
        assert cache.scripts.fill("public.items", before, old, "5", 60) is False
        assert cache.get("items", 5) is None and cache.stats.hits + cache.stats.misses == 2
    finally:
        cache.close()
    assert full_compare(db, redis_url).total == 0


def test_read_through_get_fills_and_counts(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    make_items(db, rows=5)
    engine.run_until_idle()
    r.delete("asymm:{public.items}:2")  # evicted
    cache = Cache(db, redis_url)
    try:
        assert cache.get("items", 1) == {"id": 1, "name": "item 1", "qty": 1}  # hit
        assert cache.get("public.items", "2") == {"id": 2, "name": "item 2", "qty": 2}  # miss, filled
        assert cache.get("items", 2) == {"id": 2, "name": "item 2", "qty": 2}  # hit
        assert cache.get("items", 99) is None  # miss, tombstone filled
        assert cache.get("items", 99) is None  # hit
        assert (cache.stats.hits, cache.stats.misses, cache.stats.fills) == (3, 2, 2)
        conn.execute("UPDATE items SET qty = 7 WHERE id = 2")
        conn.execute("INSERT INTO items VALUES (99, 'late', 1)")
        engine.run_until_idle()
        assert cache.get("items", 2)["qty"] == 7  # type: ignore[index]
        assert cache.get("items", 99)["name"] == "late"  # type: ignore[index]
    finally:
        cache.close()
    assert full_compare(db, redis_url).total == 0


def test_query_cache_is_invalidated_by_changes_to_tables_it_reads(
    db: str, conn: Conn, engine: SyncEngine, redis_url: str
) -> None:
    make_items(db, rows=5)
    conn.execute("CREATE TABLE other (id int PRIMARY KEY)")
    conn.execute("CREATE TABLE untracked (id int PRIMARY KEY)")
    conn.execute("SELECT asymm.track('other')")
    engine.run_until_idle()
    cache = Cache(db, redis_url)
    sql = "SELECT sum(qty) AS total FROM items i JOIN (SELECT 1 AS one) o ON true WHERE i.id <= %s"
    try:
        assert cache.query(sql, (3,)) == [{"total": 6}]
        assert cache.query(sql, (3,)) == [{"total": 6}]
        assert cache.query(sql, (4,)) == [{"total": 10}]
        assert (cache.stats.query_hits, cache.stats.query_misses) == (1, 2)
        conn.execute("INSERT INTO other VALUES (1)")  # a table the query does not read
        engine.run_until_idle()
        assert cache.query(sql, (3,)) == [{"total": 6}] and cache.stats.query_hits == 2
        conn.execute("UPDATE items SET qty = 100 WHERE id = 1")
        engine.run_until_idle()
        assert cache.query(sql, (3,)) == [{"total": 105}]
        assert cache.stats.query_misses == 3
        assert cache.query("SELECT count(*) AS n FROM untracked") == [{"n": 0}]
        assert cache.stats.query_uncacheable == 1
    finally:
        cache.close()


def test_redis_flush_is_detected_and_tables_resynced(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    make_items(db, rows=300)
    engine.run_until_idle()
    r.flushall()
    conn.execute("UPDATE items SET qty = -1 WHERE id = 7")
    engine.run_until_idle()
    assert conn.execute("SELECT resyncs FROM asymm.sync_state").fetchone() == (1,)
    assert json.loads(doc(r, "public.items", "7")[b"d"])["qty"] == -1
    assert full_compare(db, redis_url).total == 0


def test_backfill_is_consistent_with_concurrent_writes(db: str, conn: Conn, engine: SyncEngine, redis_url: str) -> None:
    conn.execute("SELECT asymm.set_setting('sync.backfill_chunk', '40')")
    make_items(db, rows=300)
    engine.backfill_chunk = 40
    with Storm(db, threads=2, keys=400):
        for _ in range(30):
            engine.backfill_step()
            engine.sync_once()
    engine.run_until_idle()
    assert full_compare(db, redis_url).total == 0


def test_sensitive_columns_never_reach_redis_in_clear(
    db: str, conn: Conn, r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_items(db, rows=3)
    eng = SyncEngine(db, redis_url)
    eng.run_until_idle()
    eng.close()
    assert json.loads(doc(r, "public.items", "1")[b"d"]) == {"id": 1, "name": "item 1", "qty": 1}
    conn.execute("SELECT asymm.set_setting('sync.sensitive_mode', 'hmac')")
    monkeypatch.delenv("ASYMM_SYNC_HMAC_KEY", raising=False)
    with pytest.raises(Exception, match="ASYMM_SYNC_HMAC_KEY"):
        SyncEngine(db, redis_url)
    eng = SyncEngine(db, redis_url, hmac_key="test-key")
    conn.execute("SELECT asymm.sync_backfill('items')")
    eng.run_until_idle()
    eng.close()
    stored = json.loads(doc(r, "public.items", "1")[b"d"])
    assert stored["secret"].startswith("hmac:") and "s1" not in json.dumps(stored)
    assert full_compare(db, redis_url).total == 0


def test_outbox_slots_are_truncated_once_consumed(db: str, conn: Conn, engine: SyncEngine) -> None:
    make_items(db, rows=3)
    slot = conn.execute("SELECT asymm.sync_slot()").fetchone()[0]  # type: ignore[index]
    with psycopg.connect(db) as slow:
        slow.execute("SELECT pg_current_xact_id()")  # holds the horizon: the next change stays unconsumed
        conn.execute("UPDATE items SET qty = 5 WHERE id = 1")
        engine.sync_once()
        if conn.execute("SELECT asymm.sync_slot()").fetchone()[0] == slot:  # type: ignore[index]
            assert engine.rotate(slot) is False
        slow.commit()
    engine.run_until_idle()
    rows_slot = [s for (s,) in conn.execute("SELECT DISTINCT slot FROM asymm.sync_outbox")]
    for s in rows_slot:
        assert engine.rotate(s) is True
    assert conn.execute("SELECT count(*) FROM asymm.sync_outbox").fetchone() == (0,)


def test_cli_sync_status_and_backfill(db: str, conn: Conn) -> None:
    make_items(db, rows=3)
    out = subprocess.run([ASYMM, "sync", "status", "--dsn", db, "--json"], capture_output=True, text=True, check=True)
    status = json.loads(out.stdout)
    assert status["tables"][0]["table"] == "public.items" and status["backlog_rows"] == 0
    text = subprocess.run([ASYMM, "sync", "status", "--dsn", db], capture_output=True, text=True, check=True).stdout
    assert "backlog: 0 outbox rows" in text and "public.items" in text
    out = subprocess.run(
        [ASYMM, "sync", "backfill", "items", "--dsn", db, "--no-wait", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["backfill"] == "pending"
    bad = subprocess.run([ASYMM, "sync", "backfill", "nope", "--dsn", db], capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_daemon_syncs_on_notify_and_reports_lag(db: str, conn: Conn, r: redis.Redis, redis_url: str) -> None:
    from tests.harness.sync_helpers import settled, start_daemon, stop_daemon, wait_for

    make_items(db, rows=20)
    proc = start_daemon(db, redis_url)
    try:
        assert wait_for(lambda: settled(db))
        conn.execute("UPDATE items SET qty = 42 WHERE id = 3")
        assert wait_for(lambda: json.loads(doc(r, "public.items", "3").get(b"d", b"{}")).get("qty") == 42)
        assert wait_for(lambda: conn.execute("SELECT lag_ms FROM asymm.sync_state").fetchone()[0] is not None)  # type: ignore[index]
    finally:
        err = stop_daemon(proc)
    assert "Traceback" not in err, err
    assert full_compare(db, redis_url).total == 0


def test_untrack_removes_capture(db: str, conn: Conn) -> None:
    make_items(db, rows=1)
    assert conn.execute("SELECT asymm.untrack('items')").fetchone() == (True,)
    assert conn.execute("SELECT asymm.untrack('items')").fetchone() == (False,)
    conn.execute("INSERT INTO items VALUES (5, 'x', 1)")
    # (only the 'X' row untrack queued to clear the keys: the INSERT was not captured)
    assert conn.execute("SELECT op, keys FROM asymm.sync_outbox").fetchall() == [("X", ['["public", "items"]'])]
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'items'::regclass").fetchone() == (0,)


def test_busy_interval_setting_spaces_the_worker_passes(db: str, conn: Conn, redis_url: str) -> None:
    """sync.busy_interval: under a steady stream of commits, passes start that far apart, so each
    one carries several commits (fewer passes, less CPU per key) instead of one."""
    import threading
    import time

    from asymm.sync.worker import SyncWorker
    from tests.harness.sync_helpers import settled, wait_for

    make_items(db, rows=10)
    conn.execute("SELECT asymm.set_setting('sync.busy_interval', '150 ms')")
    stop = threading.Event()
    worker = SyncWorker(db, redis_url, stop, period=0.2037)
    worker.start()
    try:
        assert wait_for(lambda: settled(db))
        assert worker.engine is not None and worker.engine.busy_interval_s == pytest.approx(0.15)
        before = conn.execute("SELECT batches FROM asymm.sync_state").fetchone()[0]  # type: ignore[index]
        commits, started = 60, time.monotonic()
        for i in range(commits):  # one commit every ~20 ms for ~1.2 s
            conn.execute("UPDATE items SET qty = %s WHERE id = %s", (i, 1 + i % 10))
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        assert wait_for(lambda: settled(db))
        time.sleep(0.3)  # the worker stores its counters when the stream pauses
        batches = conn.execute("SELECT batches FROM asymm.sync_state").fetchone()[0] - before  # type: ignore[index]
    finally:
        stop.set()
        worker.join(timeout=10)
    # at most one pass per 150 ms of the stream, plus the first one a NOTIFY triggers and the last
    assert 1 <= batches <= elapsed / 0.15 + 3, (batches, elapsed)
    assert full_compare(db, redis_url).total == 0


def test_a_partitioned_table_is_tracked_through_its_parent(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    """asymm.track() accepts a partitioned table: its statement triggers see the rows of every
    partition (an UPDATE that moves a row to another partition included), and the keys are its own."""
    conn.execute(
        "CREATE TABLE events (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)"
    )
    conn.execute("CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu')")
    conn.execute("CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us')")
    conn.execute(
        "INSERT INTO events SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 2000) g"
    )
    conn.execute("SELECT asymm.track('events')")
    engine.run_until_idle()  # backfill
    assert json.loads(doc(r, "public.events", '[2, "eu"]')[b"d"]) == {"id": 2, "region": "eu", "v": 2}
    for _ in range(2):  # read separately, then (analyzed: 2,000 rows) by the batch statement itself
        conn.execute("UPDATE events SET v = v + 1 WHERE id <= 10")
        conn.execute("UPDATE events SET region = 'us' WHERE id = 4")  # moves to the other partition
        conn.execute("DELETE FROM events WHERE id = 6")
        conn.execute("INSERT INTO events VALUES (5000, 'eu', 0)")
        engine.run_until_idle()
        conn.execute("DELETE FROM events WHERE id = 5000")
        conn.execute("UPDATE events SET region = 'eu' WHERE id = 4")
        conn.execute("ANALYZE events")
    engine.run_until_idle()
    assert b"t" in doc(r, "public.events", '[6, "eu"]')
    assert json.loads(doc(r, "public.events", '[4, "eu"]')[b"d"])["v"] == 6
    assert full_compare(db, redis_url).total == 0
