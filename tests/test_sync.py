"""Redis sync against real PostgreSQL + Redis: capture, horizon-safe consumption, CAS, tombstones,
truncate, resync after a flush, backfill under writes, sensitive columns, the cache API, the CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from asymm.cache import Cache, read_tables
from asymm.sandbox import Sandbox
from asymm.sync import SyncEngine
from tests.sync_helpers import ASYMM, Storm, full_compare, make_items

Conn = psycopg.Connection[Any]


@pytest.fixture
def redis_url(sandbox: Sandbox) -> str:
    client = redis.Redis.from_url(sandbox.redis_url)
    client.flushdb()  # tests share the sandbox's Redis; table names repeat between test databases
    client.close()
    return sandbox.redis_url


@pytest.fixture
def engine(db: str, redis_url: str) -> Iterator[SyncEngine]:
    eng = SyncEngine(db, redis_url)
    yield eng
    eng.close()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


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
    rows = conn.execute("SELECT op::text, cardinality(keys), xid = min(xid) OVER () FROM asymm.sync_outbox"
                        " ORDER BY op").fetchall()
    # one row per statement, one xid; UPDATE lists old and new keys (UNION ALL: the worker dedups)
    assert rows == [("D", 1, True), ("I", 1000, True), ("U", 4, True)]


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


def test_plain_writer_captures_with_own_rights_and_cannot_forge(db: str, conn: Conn, engine: SyncEngine,
                                                                r: redis.Redis, redis_url: str) -> None:
    """The capture function is SECURITY INVOKER: a writer with nothing but table rights must be able
    to write, and row security keeps it from adding outbox rows capture would not write."""
    make_items(db, rows=3)
    role = f"asymm_writer_{conn.info.dbname}"[:60]
    conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON items TO {role}")
        engine.run_until_idle()
        with psycopg.connect(db, user=role, autocommit=True) as writer:
            writer.execute("INSERT INTO items VALUES (10, 'new', 1, 'x')")
            writer.execute("UPDATE items SET qty = 42 WHERE id = 1")
            writer.execute("DELETE FROM items WHERE id = 2")
            ins0 = "INSERT INTO asymm.sync_outbox_0 VALUES (%s, pg_current_xact_id(), 'items'::regclass, %s, %s)"
            ins1 = "INSERT INTO asymm.sync_outbox_1 VALUES (%s, pg_current_xact_id(), 'items'::regclass, %s, %s)"
            forged: list[tuple[str, Any]] = [
                (ins0, (0, "T", None)), (ins1, (1, "H", ["1"])), (ins1, (0, "U", ["1"])),  # op, slot
                ("INSERT INTO asymm.sync_outbox_0 VALUES (0, '1', 'items'::regclass, 'U', '{1}')", None),  # xid
                ("DELETE FROM asymm.sync_outbox_0", None), ("SELECT * FROM asymm.sync_outbox_1", None),
                ("UPDATE asymm.sync_wake SET listening = false", None)]
            for query, params in forged:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    writer.execute(query, params)
            # what capture itself writes is allowed, and harmless: the worker re-reads the rows
            writer.execute(ins0, (0, "U", ["1", "999"]))
            writer.execute(ins1, (1, "D", ["3"]))
        engine.run_until_idle()
        assert json.loads(doc(r, "public.items", "1")[b"d"])["qty"] == 42
        assert json.loads(doc(r, "public.items", "10")[b"d"])["name"] == "new"
        assert b"d" not in doc(r, "public.items", "2")
        assert json.loads(doc(r, "public.items", "3")[b"d"])["qty"] == 3  # the forged D changed nothing
        assert full_compare(db, redis_url).total == 0
    finally:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def test_changes_reach_redis_with_versions_tombstones_and_truncate(db: str, conn: Conn, engine: SyncEngine,
                                                                   r: redis.Redis, redis_url: str) -> None:
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


def test_a_long_transaction_with_a_low_xid_is_not_skipped(db: str, conn: Conn, engine: SyncEngine,
                                                          r: redis.Redis, redis_url: str) -> None:
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


def test_old_versions_and_stale_fills_never_resurrect_a_delete(db: str, conn: Conn, engine: SyncEngine,
                                                               r: redis.Redis, redis_url: str) -> None:
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
        assert cache.scripts.write("public.items", epoch, before, 60, [("4", old)]) == -2 or \
            b"t" in doc(r, "public.items", "4")
        assert cache.get("items", 4) is None
        # after a TRUNCATE the floor refuses fills read before it, even for keys with no tombstone
        conn.execute("TRUNCATE items")
        engine.run_until_idle()
        assert cache.scripts.fill("public.items", before, old, "5", 60) is False
        assert cache.get("items", 5) is None and cache.stats.hits + cache.stats.misses == 2
    finally:
        cache.close()
    assert full_compare(db, redis_url).total == 0


def test_read_through_get_fills_and_counts(db: str, conn: Conn, engine: SyncEngine, r: redis.Redis,
                                           redis_url: str) -> None:
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


def test_query_cache_is_invalidated_by_changes_to_tables_it_reads(db: str, conn: Conn, engine: SyncEngine,
                                                                  redis_url: str) -> None:
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


def test_read_tables_finds_what_a_statement_reads() -> None:
    _sql, names, ok = read_tables(
        "WITH c AS (SELECT * FROM s.a) SELECT * FROM c JOIN b ON true WHERE EXISTS (SELECT 1 FROM d)")
    assert names == {("s", "a"), (None, "b"), (None, "d")} and ok
    assert read_tables("SELECT * FROM a FOR UPDATE")[2] is False


def test_redis_flush_is_detected_and_tables_resynced(db: str, conn: Conn, engine: SyncEngine, r: redis.Redis,
                                                     redis_url: str) -> None:
    make_items(db, rows=300)
    engine.run_until_idle()
    r.flushall()
    conn.execute("UPDATE items SET qty = -1 WHERE id = 7")
    engine.run_until_idle()
    assert conn.execute("SELECT resyncs FROM asymm.sync_state").fetchone() == (1,)
    assert json.loads(doc(r, "public.items", "7")[b"d"])["qty"] == -1
    assert full_compare(db, redis_url).total == 0


def test_backfill_is_consistent_with_concurrent_writes(db: str, conn: Conn, engine: SyncEngine,
                                                       redis_url: str) -> None:
    conn.execute("SELECT asymm.set_setting('sync.backfill_chunk', '40')")
    make_items(db, rows=300)
    engine.backfill_chunk = 40
    with Storm(db, threads=2, keys=400):
        for _ in range(30):
            engine.backfill_step()
            engine.sync_once()
    engine.run_until_idle()
    assert full_compare(db, redis_url).total == 0


def test_sensitive_columns_never_reach_redis_in_clear(db: str, conn: Conn, r: redis.Redis, redis_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
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
    out = subprocess.run([ASYMM, "sync", "backfill", "items", "--dsn", db, "--no-wait", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["backfill"] == "pending"
    bad = subprocess.run([ASYMM, "sync", "backfill", "nope", "--dsn", db], capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_daemon_syncs_on_notify_and_reports_lag(db: str, conn: Conn, r: redis.Redis, redis_url: str) -> None:
    from tests.sync_helpers import settled, start_daemon, stop_daemon, wait_for
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
    assert conn.execute("SELECT count(*) FROM asymm.sync_outbox").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE '\\_sync\\_capture\\_%'").fetchone() == (0,)


