"""How the sync engine batches, against real PostgreSQL + Redis: one statement per batch with a
cached view of the tracked tables (and what makes it reload), the position stored behind the
applied one, the cut at a transaction boundary, and the Redis side of a batch (own RESP packing,
Lua that overwrites live rows in place).  Each test ends with a full PostgreSQL-vs-Redis check."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
import redis

from asymm.sync import SyncEngine
from asymm.sync.redis_io import pack_command
from tests.harness.sync_helpers import full_compare, make_items

Conn = psycopg.Connection[Any]


def doc(client: redis.Redis, table: str, key: str) -> dict[str, Any] | None:
    stored = client.hgetall("asymm:{" + table + "}:" + key)
    return None if b"d" not in stored else dict(json.loads(stored[b"d"]))  # type: ignore[index]


def stored_position(conn: Conn) -> int:
    return int(conn.execute("SELECT position::text::bigint FROM asymm.sync_state").fetchone()[0])  # type: ignore[index]


def test_a_new_table_is_read_by_a_second_statement_then_by_the_batch_itself(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_items(db, rows=2000)
    conn.execute("ANALYZE items")  # (a table the planner thinks small is always read separately)
    engine.run_until_idle()
    fetched: list[int] = []
    fetch = engine._fetch
    monkeypatch.setattr(engine, "_fetch", lambda table, keys: fetched.append(len(keys)) or fetch(table, keys))
    conn.execute("UPDATE items SET qty = 10 WHERE id = 1")
    engine.sync_once()  # the first batch with keys of items: fetched separately, then items is "hot"
    assert doc(r, "public.items", "1") == {"id": 1, "name": "item 1", "qty": 10} and fetched == [1]
    conn.execute("UPDATE items SET qty = 11 WHERE id = 1")
    conn.execute("DELETE FROM items WHERE id = 2")
    engine.sync_once()
    assert fetched == [1]  # read by the batch statement itself
    assert engine._query is not None and b'"public"."items"' in engine._query
    assert doc(r, "public.items", "1") == {"id": 1, "name": "item 1", "qty": 11}
    assert b"t" in r.hgetall("asymm:{public.items}:2")  # type: ignore[operator]
    # a table tracked while the engine caches the tables: the fingerprint check notices it
    conn.execute("CREATE TABLE more (id int PRIMARY KEY, v text)")
    conn.execute("INSERT INTO more VALUES (1, 'a')")
    conn.execute("SELECT asymm.track('more')")
    engine.run_until_idle()  # one call: the backfill queued behind the cached tables' back is done too
    assert doc(r, "public.more", "1") == {"id": 1, "v": "a"}
    conn.execute("UPDATE more SET v = 'b'")
    engine.run_until_idle()
    assert doc(r, "public.more", "1") == {"id": 1, "v": "b"}
    assert full_compare(db, redis_url).total == 0


def test_a_renamed_or_dropped_table_is_not_read_through_stale_sql(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    """The batch statement names tables; the tables fingerprint in the same statement (same
    snapshot) tells the engine that its SQL is stale, and a table that is gone fails it."""
    make_items(db, rows=2000)
    conn.execute("CREATE TABLE other (id int PRIMARY KEY, v text)")
    conn.execute("INSERT INTO other SELECT g, 'x' FROM generate_series(1, 2000) g")
    conn.execute("SELECT asymm.track('other')")
    conn.execute("ANALYZE items, other")  # (so the batch statement reads them itself)
    engine.run_until_idle()
    for i in range(2):  # both tables get a branch in the batch statement
        conn.execute("UPDATE items SET qty = %s WHERE id = 1", (i,))
        conn.execute("UPDATE other SET v = %s", (str(i),))
        engine.run_until_idle()
    assert engine._query is not None and b'"public"."other"' in engine._query
    conn.execute("ALTER TABLE items RENAME TO items_old")
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)")  # same name, not tracked
    conn.execute("INSERT INTO items VALUES (1, 'impostor', -1)")
    conn.execute("UPDATE items_old SET qty = 42 WHERE id = 1")
    engine.sync_once()  # (run_until_idle would check the epochs first, which also notices the rename)
    assert doc(r, "public.items", "1") != {"id": 1, "name": "impostor", "qty": -1}
    engine.run_until_idle()
    assert doc(r, "public.items_old", "1") == {"id": 1, "name": "item 1", "qty": 42}
    assert doc(r, "public.items", "1") != {"id": 1, "name": "impostor", "qty": -1}
    conn.execute("DROP TABLE other")
    conn.execute("UPDATE items_old SET qty = 43 WHERE id = 1")
    engine.run_until_idle()
    assert r.keys("asymm:{public.other}*") == []
    assert doc(r, "public.items_old", "1") == {"id": 1, "name": "item 1", "qty": 43}
    assert full_compare(db, redis_url).total == 0


def test_the_position_is_stored_behind_the_applied_one_and_when_idle(
    db: str, conn: Conn, engine: SyncEngine, redis_url: str
) -> None:
    make_items(db, rows=5)
    engine.run_until_idle()
    assert stored_position(conn) == engine.position
    engine.flush()  # nothing new: no statement, nothing changes
    conn.execute("UPDATE items SET qty = 7 WHERE id = 3")
    assert engine.sync_once().rows == 1
    assert stored_position(conn) <= engine.position  # stored at most FLUSH_EVERY_S later
    engine.sync_once()  # nothing new: the stream paused, so what was applied is stored
    assert stored_position(conn) == engine.position
    assert conn.execute("SELECT rows_applied >= 1, keys_applied >= 1 FROM asymm.sync_state").fetchone() == (True, True)
    # a restart starts from the stored position: at-least-once, nothing skipped
    conn.execute("UPDATE items SET qty = 8 WHERE id = 3")
    engine.sync_once()
    engine.close()  # stores the position of what it applied
    again = SyncEngine(db, redis_url)
    try:
        assert again.position == stored_position(conn)
        conn.execute("UPDATE items SET qty = 9 WHERE id = 3")
        again.run_until_idle()
    finally:
        again.close()
    assert full_compare(db, redis_url).total == 0


def test_a_batch_is_cut_at_a_transaction_boundary(db: str, conn: Conn, engine: SyncEngine, redis_url: str) -> None:
    make_items(db, rows=20)
    engine.run_until_idle()
    engine.batch_rows = 3
    with conn.transaction():  # one xid with more outbox rows than a batch holds
        for i in range(1, 8):
            conn.execute("UPDATE items SET qty = -%s WHERE id = %s", (i, i))
    for i in range(8, 12):
        conn.execute("UPDATE items SET qty = -%s WHERE id = %s", (i, i))
    first = engine.sync_once()
    assert first.rows == 7  # the whole transaction, although the batch holds 3 rows
    rest = 0
    while (result := engine.sync_once()).rows:
        assert result.rows <= 3
        rest += result.rows
    assert rest == 4
    assert full_compare(db, redis_url).total == 0


def test_truncate_clears_rows_overwritten_in_place_and_revived_tombstones(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    """Overwriting a live row skips DEL and SADD: the key must still be in the table's key set."""
    make_items(db, rows=5)
    engine.run_until_idle()
    conn.execute("UPDATE items SET qty = 100 WHERE id = 1")  # live -> live
    conn.execute("DELETE FROM items WHERE id = 2")  # live -> tombstone
    engine.run_until_idle()
    assert r.ttl("asymm:{public.items}:2") > 0
    conn.execute("INSERT INTO items VALUES (2, 'back', 2)")  # tombstone -> live: no expiry left
    engine.run_until_idle()
    assert r.ttl("asymm:{public.items}:2") == -1 and doc(r, "public.items", "2") == {"id": 2, "name": "back", "qty": 2}
    members = r.smembers("asymm:{public.items}#keys")
    assert {b"asymm:{public.items}:1", b"asymm:{public.items}:2"} <= members  # type: ignore[operator]
    conn.execute("TRUNCATE items")
    engine.run_until_idle()
    assert r.keys("asymm:{public.items}:*") == []
    assert full_compare(db, redis_url).total == 0


def test_multibyte_rows_and_a_lost_script_cache(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    """The batch write is packed by hand: lengths are in bytes; Redis forgetting the script
    (SCRIPT FLUSH, a restart) loads it again."""
    assert pack_command(["SET", "k", "é", 5]) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n$1\r\n5\r\n"
    make_items(db, rows=2)
    engine.run_until_idle()
    conn.execute("UPDATE items SET name = 'naïve ☃ 🐘' WHERE id = 1")
    conn.execute("INSERT INTO items VALUES ('3', 'ключ', 3)")
    r.script_flush()
    engine.run_until_idle()
    assert doc(r, "public.items", "1") == {"id": 1, "name": "naïve ☃ 🐘", "qty": 1}
    assert doc(r, "public.items", "3") == {"id": 3, "name": "ключ", "qty": 3}
    assert full_compare(db, redis_url).total == 0


def test_hmac_mode_protects_rows_read_by_either_statement(db: str, conn: Conn, r: redis.Redis, redis_url: str) -> None:
    make_items(db, rows=2000)
    conn.execute("ANALYZE items")  # (so the batch statement reads it the second time)
    conn.execute("SELECT asymm.set_setting('sync.sensitive_mode', 'hmac')")
    eng = SyncEngine(db, redis_url, hmac_key="test-key")
    try:
        eng.run_until_idle()
        for qty in (5, 6):  # the first batch reads items separately, the second in the batch statement
            conn.execute("UPDATE items SET qty = %s, secret = 'top' WHERE id = 1", (qty,))
            eng.run_until_idle()
            stored = doc(r, "public.items", "1")
            assert stored is not None and stored["qty"] == qty
            assert stored["secret"].startswith("hmac:") and "top" not in json.dumps(stored)
    finally:
        eng.close()
    assert full_compare(db, redis_url).total == 0


@pytest.mark.parametrize("rows_when_analyzed", [0, 1])
def test_rows_of_a_table_analyzed_small_then_loaded_are_read_by_key(
    db: str, conn: Conn, engine: SyncEngine, redis_url: str, rows_when_analyzed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table analyzed while empty (or nearly) and then bulk-loaded still looks that small to a plan
    cached from then (inserts do not re-plan): such a plan read the whole table once per key (a load
    of 20,000 rows took 44 s to sync instead of 0.3 s).  The batch statement leaves such a table to
    the separate, unprepared read, and reads it itself again once ANALYZE knows its size.  The
    statement timeout makes a regression fail in seconds instead of minutes; it is not a benchmark."""
    conn.execute("CREATE TABLE loaded (id int PRIMARY KEY, v text)")
    conn.execute("SELECT asymm.track('loaded')")
    conn.execute("INSERT INTO loaded VALUES (0, 'x')")
    engine.run_until_idle()  # loaded has changed: it gets a branch in the batch statement
    conn.execute("TRUNCATE loaded")
    conn.execute("INSERT INTO loaded SELECT g, 'x' FROM generate_series(-%s, -1) g", (rows_when_analyzed,))
    conn.execute("ANALYZE loaded")
    engine.run_until_idle()
    for _ in range(12):  # enough executions for PostgreSQL to switch the batch statement to a generic plan
        conn.execute("SELECT asymm.sync_heartbeat()")
        engine.sync_once()
    engine.conn.execute("SET statement_timeout = '30s'")  # a scan per key would take minutes: fail sooner
    fetched: list[int] = []
    fetch = engine._fetch
    monkeypatch.setattr(engine, "_fetch", lambda table, keys: fetched.append(len(keys)) or fetch(table, keys))
    conn.execute("INSERT INTO loaded SELECT g, md5(g::text) FROM generate_series(1, 50000) g")
    engine.run_until_idle(max_seconds=60)
    assert sum(fetched) == 50000  # the separate read took them
    fetched.clear()
    conn.execute("ANALYZE loaded")  # now the planner knows: the batch statement reads loaded itself
    conn.execute("UPDATE loaded SET v = 'y' WHERE id <= 20000")
    engine.run_until_idle(max_seconds=60)
    assert fetched == []
    assert full_compare(db, redis_url).total == 0
