"""Tracked tables through a DBA's life cycle: DROP TABLE, DROP EXTENSION, pg_dump/pg_restore.

* Dropping a tracked table never fails; its configuration and capture triggers go, and the sync
  worker clears its keys in Redis (asymm._sync_sql_drop queues the table's name).
* Renaming one (table, schema, or SET SCHEMA) clears the keys under the old name and copies the
  table under the new one (asymm._sync_ddl_end).
* DROP EXTENSION asymm refuses while tables are tracked (their capture triggers depend on the
  extension's function asymm._sync_capture): PostgreSQL names them and hints at CASCADE.
  Untracking first, or CASCADE, leaves the user's tables and data intact and nothing of asymm behind.
* pg_dump/pg_restore of a database with a tracked table restores its triggers (with their key
  column arguments) and configuration, and the restored capture reports the table under its NEW OID.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from asymm.dev.sandbox import Sandbox
from asymm.sync import SyncEngine
from tests.harness.catalog import object_set
from tests.harness.sync_helpers import full_compare, make_items

Conn = psycopg.Connection[Any]
# Tables whose INSERT/UPDATE/DELETE the C capture function watches.
CAPTURES = "SELECT count(DISTINCT tgrelid) FROM pg_trigger WHERE tgfoid = 'asymm._sync_capture'::regproc"


@pytest.fixture
def redis_url(sandbox: Sandbox) -> str:
    client = redis.Redis.from_url(sandbox.redis_url)
    client.flushdb()
    client.close()
    return sandbox.redis_url


def test_dropping_a_tracked_table_cleans_config_capture_and_redis(db: str, conn: Conn, redis_url: str) -> None:
    make_items(db, rows=30)
    conn.execute("CREATE TABLE keep (id int PRIMARY KEY)")
    conn.execute("INSERT INTO keep VALUES (1)")
    conn.execute("SELECT asymm.track('keep')")
    engine = SyncEngine(db, redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        engine.run_until_idle()
        assert len(client.keys("asymm:{public.items}*")) == 32  # 30 rows, meta, key set
        conn.execute("DROP TABLE items")  # must not fail
        assert conn.execute("SELECT rel::text FROM asymm.sync_tables").fetchall() == [("keep",)]
        assert conn.execute(CAPTURES).fetchone() == (1,)
        engine.run_until_idle()
        assert client.keys("asymm:{public.items}*") == []
        assert client.exists("asymm:{public.keep}:1")
        conn.execute("CREATE SCHEMA s")
        conn.execute("CREATE TABLE s.t (id int PRIMARY KEY)")
        conn.execute("SELECT asymm.track('s.t')")
        conn.execute("DROP SCHEMA s CASCADE")
        assert conn.execute("SELECT count(*) FROM asymm.sync_tables").fetchone() == (1,)
        engine.run_until_idle()
    finally:
        engine.close()
        client.close()
    assert full_compare(db, redis_url).total == 0


def test_renaming_a_tracked_table_moves_its_keys_to_the_new_name(db: str, conn: Conn, redis_url: str) -> None:
    make_items(db, rows=30)
    engine = SyncEngine(db, redis_url)
    client = redis.Redis.from_url(redis_url)

    def keys(name: str) -> int:
        return len(client.keys("asymm:{" + name + "}*"))

    try:
        engine.run_until_idle()
        assert keys("public.items") == 32  # 30 rows, meta, key set
        conn.execute("ALTER TABLE items RENAME TO goods")
        conn.execute("UPDATE goods SET qty = -1 WHERE id = 1")  # a change made under the new name
        engine.run_until_idle()
        assert keys("public.items") == 0 and keys("public.goods") == 32
        assert full_compare(db, redis_url).total == 0
        conn.execute("CREATE SCHEMA s2")
        conn.execute("ALTER TABLE goods SET SCHEMA s2")
        conn.execute("ALTER SCHEMA s2 RENAME TO s3")
        engine.run_until_idle()
        assert keys("public.goods") == 0 and keys("s2.goods") == 0 and keys("s3.goods") == 32
        # Renamed away and back while an older transaction holds the horizon: the backfill under
        # the name runs first, and the first rename's 'X' (applied once the horizon passes it)
        # must not clear what the backfill wrote.  (No write follows: a later write would notice
        # the missing epoch and resync the table, which would hide the loss.)
        with psycopg.connect(db) as blocker:
            blocker.execute("SELECT pg_current_xact_id()")
            conn.execute("ALTER TABLE s3.goods RENAME TO tmp")
            conn.execute("ALTER TABLE s3.tmp RENAME TO goods")
            engine.run_until_idle()
            assert keys("s3.goods") == 32
            blocker.rollback()
        engine.run_until_idle()
        assert keys("s3.tmp") == 0 and keys("s3.goods") == 32
        assert conn.execute("SELECT redis_name FROM asymm.sync_tables").fetchall() == [('["s3", "goods"]',)]
    finally:
        engine.close()
        client.close()
    assert full_compare(db, redis_url).total == 0


def test_a_broken_cleanup_warns_instead_of_failing_the_drop(db: str, conn: Conn) -> None:
    make_items(db, rows=1)
    conn.execute("ALTER TABLE asymm.sync_outbox_0 ADD CONSTRAINT no CHECK (false) NOT VALID")
    conn.execute("ALTER TABLE asymm.sync_outbox_1 ADD CONSTRAINT no CHECK (false) NOT VALID")
    warnings: list[str] = []
    conn.add_notice_handler(lambda d: warnings.append(str(d.message_primary)))
    conn.execute("DROP TABLE items")
    assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)
    assert any("could not forget the dropped tracked table" in w for w in warnings), warnings


def test_drop_extension_refuses_while_tracked_then_untrack_or_cascade(make_db: Callable[..., str]) -> None:
    dsn = make_db(extension=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION plpython3u")
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO items VALUES (1, 'a')")
        before = object_set(conn)
        conn.execute("CREATE EXTENSION asymm")
        conn.execute("SELECT asymm.track('items')")
        with pytest.raises(psycopg.errors.DependentObjectsStillExist) as err:
            conn.execute("DROP EXTENSION asymm")
        assert "trigger asymm_sync_ins on table items" in str(err.value.diag.message_detail)
        assert "CASCADE" in str(err.value.diag.message_hint)
        conn.execute("SELECT asymm.untrack(rel) FROM asymm.sync_tables")
        conn.execute("DROP EXTENSION asymm")
        assert object_set(conn) == before
        conn.execute("CREATE EXTENSION asymm")
        conn.execute("SELECT asymm.track('items')")
        conn.execute("DROP EXTENSION asymm CASCADE")
        assert object_set(conn) == before  # the capture triggers went too
        assert conn.execute("SELECT * FROM items").fetchall() == [(1, "a")]
        conn.execute("INSERT INTO items VALUES (2, 'b')")  # no trigger left behind to fail


def test_pg_dump_restore_keeps_tracking(
    sandbox: Sandbox, make_db: Callable[..., str], tmp_path: Path, redis_url: str
) -> None:
    source = make_db()
    make_items(source, rows=20)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("SELECT asymm.set_setting('sync.batch_rows', '500')")
    dump = tmp_path / "src.dump"
    subprocess.run([sandbox.pg_bindir + "/pg_dump", "-Fc", "-f", str(dump), source], check=True, capture_output=True)
    target = make_db(extension=False)
    with psycopg.connect(target, autocommit=True) as conn:  # pg_restore creates the extension itself
        conn.execute("CREATE EXTENSION plpython3u")
        conn.execute("CREATE EXTENSION pg_stat_statements")
    done = subprocess.run(
        [sandbox.pg_bindir + "/pg_restore", "--exit-on-error", "-d", target, str(dump)], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    with psycopg.connect(target, autocommit=True) as conn:
        assert conn.execute("SELECT rel::text, key_columns, sensitive FROM asymm.sync_tables").fetchall() == [
            ("items", ["id"], ["secret"])
        ]
        assert conn.execute("SELECT asymm.setting('sync.batch_rows')").fetchone() == ("500",)
        triggers = conn.execute(
            "SELECT tgname, tgfoid::regproc::text, encode(tgargs, 'escape') FROM pg_trigger"
            " WHERE tgrelid = 'items'::regclass ORDER BY 1"
        ).fetchall()
        assert triggers == [
            ("asymm_sync_del", "asymm._sync_capture", "id\\000"),
            ("asymm_sync_ins", "asymm._sync_capture", "id\\000"),
            ("asymm_sync_trunc", "asymm._sync_truncated", ""),
            ("asymm_sync_upd", "asymm._sync_capture", "id\\000"),
        ]
        new_oid = conn.execute("SELECT 'items'::regclass::oid").fetchone()[0]  # type: ignore[index]
        conn.execute("UPDATE items SET qty = 99 WHERE id = 1")
        assert conn.execute("SELECT rel::oid, op::text, keys FROM asymm.sync_outbox").fetchall() == [
            (new_oid, "U", ["1"])
        ]
        conn.execute("SELECT asymm.sync_backfill('items')")  # its Redis keys belong to the source database
    engine = SyncEngine(target, redis_url)
    try:
        engine.run_until_idle()
    finally:
        engine.close()
    assert full_compare(target, redis_url).total == 0


def test_two_databases_share_one_redis_with_their_own_key_prefix(make_db: Callable[..., str], redis_url: str) -> None:
    dbs = [make_db(), make_db()]
    client = redis.Redis.from_url(redis_url)
    try:
        for i, dsn in enumerate(dbs):
            make_items(dsn, rows=10 + i)  # same table name, different contents
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("SELECT asymm.set_setting('sync.key_prefix', %s)", (f"asymm:db{i}",))
                conn.execute("UPDATE items SET name = %s WHERE id = 1", (f"db{i}",))
            engine = SyncEngine(dsn, redis_url)
            try:
                engine.run_until_idle()
            finally:
                engine.close()
        assert client.hget("asymm:db0:{public.items}:1", "d") != client.hget("asymm:db1:{public.items}:1", "d")
        assert client.exists("asymm:db1:{public.items}:11") and not client.exists("asymm:db0:{public.items}:11")
        assert client.keys("asymm:{*") == []
        for dsn in dbs:
            assert full_compare(dsn, redis_url).total == 0
        with psycopg.connect(dbs[0], autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"sync\.key_prefix"):
                conn.execute("SELECT asymm.set_setting('sync.key_prefix', 'bad{tag}')")
            # stored behind set_setting()'s back (or before its rules existed): the engine refuses it
            conn.execute("UPDATE asymm.setting_values SET value = 'bad{tag}' WHERE name = 'sync.key_prefix'")
        with pytest.raises(Exception, match=r"sync\.key_prefix"):
            SyncEngine(dbs[0], redis_url)
    finally:
        client.close()
