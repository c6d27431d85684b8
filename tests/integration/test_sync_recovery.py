"""Redis state older than PostgreSQL knows (RDB/AOF restores), fencing of a stalled sync leader,
untrack clearing keys, and the limits that are reported rather than removed (issue 16, points 7,
9, 11, 12).  Each test ends with a full PostgreSQL-vs-Redis comparison.

The restore tests run their own redis-server (in a temporary directory, on a free port) so they
can SAVE, crash and restart it from its files without disturbing the sandbox's Redis.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from asymm.cli.sync_cmd import render_sync_status
from asymm.sync import SyncEngine, redis_io
from asymm.sync.engine import LOCK_KEY
from asymm.sync.redis_io import table_tag
from tests.harness.daemon_process import Running, free_port
from tests.harness.roles import role_dsn
from tests.harness.sync_helpers import full_compare, make_items, stop_daemon, wait_for
from tests.harness.sync_helpers import start_daemon as start_sync_daemon

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


class OwnRedis:
    """A redis-server of the test's own: started, crashed (kill -9) and restarted from its files."""

    def __init__(self, root: Path, *args: str) -> None:
        self.root, self.args, self.port = root, args, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--save",
                "",
                "--appendonly",
                "no",
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_for(self._ping, timeout=20), "redis-server did not start"

    def _ping(self) -> bool:
        with redis.Redis(port=self.port, socket_timeout=1) as client:
            return bool(client.ping())

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., OwnRedis]]:
    started: list[OwnRedis] = []

    def start(*args: str) -> OwnRedis:
        server = OwnRedis(tmp_path, *args)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.kill9()


def _change_after_snapshot(db: str) -> None:
    """Updates, deletes and inserts that a Redis restored from an earlier snapshot does not have."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE items SET name = 'after snapshot' WHERE id <= 50")
        conn.execute("DELETE FROM items WHERE id BETWEEN 51 AND 80")
        conn.execute("INSERT INTO items SELECT g, 'late ' || g, g, 'x' FROM generate_series(301, 320) g")


def _assert_exact(db: str, url: str) -> None:
    result = full_compare(db, url)
    assert result.rows_compared == 200 - 30 + 20
    assert (result.missing, result.different, result.extra) == ([], [], [])
    with redis.Redis.from_url(url) as client:  # deleted rows are not resurrected
        for key in (51, 65, 80):
            stored = client.hgetall(f"asymm:{{public.items}}:{key}")
            assert not stored or b"t" in stored


def test_restart_from_an_older_rdb_snapshot_is_detected_and_resynced(db: str, own_redis: Any) -> None:
    server = own_redis("--dbfilename", "dump.rdb")
    make_items(db, rows=200)
    engine = SyncEngine(db, server.url)
    try:
        engine.run_until_idle()
        with server.client() as client:
            client.save()
        _change_after_snapshot(db)
        engine.run_until_idle()  # applied, acknowledged, position stored
        with server.client() as client:
            assert client.hget("asymm:{public.items}:1", "d") is not None
            client.shutdown(nosave=True)
    finally:
        engine.close()
    server.start()  # comes back from dump.rdb: the old epoch, the old rows
    engine = SyncEngine(db, server.url)
    try:
        assert engine.check_epochs() == ["public.items"]
        engine.run_until_idle()
    finally:
        engine.close()
    _assert_exact(db, server.url)


def test_aof_losing_its_last_second_is_detected_by_the_running_engine(db: str, own_redis: Any, tmp_path: Path) -> None:
    """``appendfsync everysec`` loses up to a second on a host crash: the AOF file ends earlier
    than what Redis acknowledged.  Simulated exactly: the file cut back to its size before the
    last writes, then Redis killed and restarted.  The same engine goes on (its connection
    reconnects) and must notice at its next write or check."""
    server = own_redis("--appendonly", "yes", "--appendfsync", "everysec", "--appenddirname", "aof")
    make_items(db, rows=200)
    engine = SyncEngine(db, server.url)
    try:
        engine.run_until_idle()
        with server.client() as client:
            client.bgrewriteaof()
            assert wait_for(
                lambda: (
                    client.info("persistence")["aof_rewrite_in_progress"] == 0
                    and client.info("persistence")["aof_rewrite_scheduled"] == 0
                )
            )
        time.sleep(1.5)  # let everysec fsync the rewrite's aftermath; the size below is then final
        incr = sorted((tmp_path / "aof").glob("*.incr.aof"))[-1]
        durable = incr.stat().st_size
        _change_after_snapshot(db)
        engine.run_until_idle()
        assert incr.stat().st_size > durable  # the changes reached the file, and then...
        server.kill9()
        with incr.open("r+b") as f:  # ... the host lost the last second of it
            f.truncate(durable)
        server.start()
        for _ in range(3):  # the engine's Redis connections were cut: the first calls may fail
            try:
                engine.run_until_idle()
                break
            except redis.ConnectionError:
                continue
        engine.run_until_idle()
        with psycopg.connect(db) as conn:
            assert conn.execute("SELECT resyncs FROM asymm.sync_state").fetchone()[0] >= 1  # type: ignore[index]
    finally:
        engine.close()
    _assert_exact(db, server.url)


def test_no_false_resync_when_a_backfill_ends_with_an_empty_chunk(db: str, engine: SyncEngine, redis_url: str) -> None:
    """A table whose size is a multiple of the backfill chunk ends with a chunk of no rows: no script
    runs for it, so nothing may count as acknowledged (it made every such table re-sync for ever)."""
    make_items(db, rows=40)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT asymm.set_setting('sync.backfill_chunk', '20')")
    eng = SyncEngine(db, redis_url)
    try:
        eng.run_until_idle()
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE items SET qty = 0 WHERE id = 1")
        eng.run_until_idle()
        assert eng.check_epochs() == []
        assert engine.check_epochs() == []  # nor for another engine, from what PostgreSQL recorded
        with psycopg.connect(db) as conn:
            assert conn.execute("SELECT resyncs FROM asymm.sync_state").fetchone() == (0,)
    finally:
        eng.close()
    result = full_compare(db, redis_url)
    assert result.rows_compared == 40
    assert (result.missing, result.different, result.extra) == ([], [], [])


def test_daemon_converges_after_redis_restarts_from_an_older_snapshot(db: str, own_redis: Any) -> None:
    server = own_redis("--dbfilename", "dump.rdb")
    make_items(db, rows=200)
    proc = start_sync_daemon(db, server.url)
    try:
        assert wait_for(
            lambda: full_compare(db, server.url).rows_compared == 200 and full_compare(db, server.url).total == 0
        )
        with server.client() as client:
            client.save()
        _change_after_snapshot(db)
        assert wait_for(lambda: full_compare(db, server.url).total == 0)
        with server.client() as client:
            client.shutdown(nosave=True)
        server.start()
        assert wait_for(lambda: full_compare(db, server.url).total == 0, timeout=30), full_compare(db, server.url)
    finally:
        err = stop_daemon(proc)
    assert "Traceback" not in err, err
    _assert_exact(db, server.url)


# -- fencing ------------------------------------------------------------------------------------


def _dump(client: redis.Redis) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match="asymm:*"):
        kind = client.type(key)
        out[key] = client.hgetall(key) if kind == b"hash" else sorted(client.smembers(key))
    return out


def test_stalled_leader_loses_the_lock_and_its_late_writes_are_refused(db: str, redis_url: str, r: redis.Redis) -> None:
    make_items(db, rows=50)
    old = SyncEngine(db, redis_url, session_timeout_s=1.0)
    new = SyncEngine(db, redis_url, session_timeout_s=1.0)
    try:
        assert old.try_lock()
        old.run_until_idle()
        table = next(iter(old.tables().values()))
        assert table.epoch is not None
        assert not new.try_lock()
        # The old leader stalls (no statement on its session): the server ends the session, and
        # with it the lock; the standby takes over and stamps its fencing token.
        assert wait_for(new.try_lock, timeout=20, every=0.2)
        assert new.scripts.token is not None and old.scripts.token is not None
        assert new.scripts.token > old.scripts.token
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE items SET name = 'by the new leader' WHERE id <= 10")
            conn.execute("DELETE FROM items WHERE id = 11")
        new.run_until_idle()
        before = _dump(r)
        # The old one wakes up with a batch it read before stalling: every script is refused.
        stale_doc = '{"id": 1, "name": "stale", "qty": 1}'
        with pytest.raises(redis_io.Deposed):
            old.scripts.write(table.name, table.epoch, 10**15, 60, [("1", stale_doc), ("11", stale_doc)])
        with pytest.raises(redis_io.Deposed):
            old.scripts.reset(table.name, table.epoch, 10**15)
        with pytest.raises(redis_io.Deposed):
            old.scripts.reset(table.name, "another-epoch", 0)
        with pytest.raises(redis_io.Deposed):
            old.scripts.drop(table.name)
        with pytest.raises(psycopg.OperationalError):  # and its session is gone
            old.sync_once()
        assert _dump(r) == before  # nothing it sent landed
        assert r.hget(table_tag(table.name), "fence") == str(new.scripts.token).encode()
    finally:
        old.close()
        new.close()
    result = full_compare(db, redis_url)
    assert result.rows_compared == 49
    assert (result.missing, result.different, result.extra) == ([], [], [])


def _sync_lock_pid(db: str) -> int | None:
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = %s AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())",
            LOCK_KEY,
        ).fetchone()
    return None if row is None else int(row[0])


def test_sigstopped_daemon_is_replaced_and_converges_after_sigcont(
    db: str, redis_url: str, start_daemon: Callable[..., Running]
) -> None:
    make_items(db, rows=200)
    env = {"ASYMM_REDIS_URL": redis_url, "ASYMM_LEADER_SESSION_TIMEOUT_S": "1"}
    first = start_daemon(db, "--period", "0.05", env=env)
    assert wait_for(lambda: full_compare(db, redis_url).total == 0 and _sync_lock_pid(db) is not None)
    holder = _sync_lock_pid(db)
    second = start_daemon(db, "--period", "0.05", env=env)
    first.proc.send_signal(signal.SIGSTOP)
    try:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE items SET name = 'while stopped' WHERE id <= 20")
            conn.execute("DELETE FROM items WHERE id BETWEEN 21 AND 30")
        # The standby takes the sync lock once the stopped one's idle session times out, and syncs.
        assert wait_for(lambda: _sync_lock_pid(db) not in (None, holder), timeout=30)

        def synced() -> bool:
            with redis.Redis.from_url(redis_url) as client:
                return client.hget("asymm:{public.items}:20", "d") is not None and b"while stopped" in client.hget(
                    "asymm:{public.items}:20", "d"
                )  # type: ignore[operator]

        assert wait_for(synced, timeout=30)
    finally:
        first.proc.send_signal(signal.SIGCONT)
    new_holder = _sync_lock_pid(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE items SET qty = qty + 1000 WHERE id > 100")
    assert wait_for(lambda: full_compare(db, redis_url).total == 0, timeout=30)
    assert _sync_lock_pid(db) == new_holder  # the old one came back as a standby
    assert first.proc.poll() is None and second.proc.poll() is None
    result = full_compare(db, redis_url)
    assert result.rows_compared == 190
    assert (result.missing, result.different, result.extra) == ([], [], [])
    for running in (first, second):
        assert "Traceback" not in running.stop()


# -- untrack --------------------------------------------------------------------------------------


def _keys(client: redis.Redis, table: str) -> list[bytes]:
    return list(client.scan_iter(match=f"asymm:{{public.{table}}}*", count=1000))


def test_untrack_removes_the_keys_unless_asked_to_keep_them(
    db: str, engine: SyncEngine, redis_url: str, r: redis.Redis
) -> None:
    make_items(db, rows=100)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO kept SELECT g, 'v' || g FROM generate_series(1, 30) g")
        conn.execute("SELECT asymm.track('kept')")
        engine.run_until_idle()
        assert len(_keys(r, "items")) == 102 and len(_keys(r, "kept")) == 32  # rows, key set, meta
        assert conn.execute("SELECT asymm.untrack('items')").fetchone() == (True,)
        assert conn.execute("SELECT asymm.untrack('kept', keep_keys => true)").fetchone() == (True,)
        engine.run_until_idle()
        assert _keys(r, "items") == []
        assert len(_keys(r, "kept")) == 32
        assert conn.execute("SELECT asymm.untrack('items')").fetchone() == (False,)
        conn.execute("SELECT asymm.track('kept')")  # tracked again: its keys are reset and copied
        engine.run_until_idle()
    result = full_compare(db, redis_url)
    assert result.rows_compared == 30
    assert (result.missing, result.different, result.extra) == ([], [], [])


def test_retrack_right_after_untrack_keeps_the_new_backfill(
    db: str, engine: SyncEngine, redis_url: str, r: redis.Redis
) -> None:
    make_items(db, rows=100)
    engine.run_until_idle()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT asymm.untrack('items')")
        conn.execute("SELECT asymm.track('items', sensitive => '{secret}')")  # before the worker saw the 'X'
        conn.execute("UPDATE items SET name = 'renewed' WHERE id <= 5")
    engine.run_until_idle()
    assert len(_keys(r, "items")) == 102
    with psycopg.connect(db, autocommit=True) as conn:  # and the other order: cleared, then tracked again
        conn.execute("SELECT asymm.untrack('items')")
        engine.run_until_idle()
        assert _keys(r, "items") == []
        conn.execute("SELECT asymm.track('items', sensitive => '{secret}')")
    engine.run_until_idle()
    result = full_compare(db, redis_url)
    assert result.rows_compared == 100
    assert (result.missing, result.different, result.extra) == ([], [], [])


# -- limits: the cluster-wide xid horizon, the eviction policy ------------------------------------


def test_sync_status_names_a_transaction_in_another_database_holding_the_horizon(
    db: str, make_db: Callable[..., str], engine: SyncEngine, redis_url: str
) -> None:
    other = make_db(extension=False)
    make_items(db, rows=10)
    engine.run_until_idle()
    with psycopg.connect(other) as blocker, psycopg.connect(db, autocommit=True) as conn:
        blocker.execute("SELECT pg_current_xact_id()")  # an open transaction with an xid, elsewhere
        other_name = blocker.info.dbname
        conn.execute("UPDATE items SET name = 'held back' WHERE id = 1")
        assert engine.sync_once().rows == 0  # the other database's transaction holds it back
        held = conn.execute("SELECT asymm.sync_status() -> 'horizon_held_by'").fetchone()[0]  # type: ignore[index]
        assert held["database"] == other_name and held["this_database"] is False
        assert held["kind"] == "backend" and held["pid"] == blocker.info.backend_pid
        assert held["xid_age"] >= 1 and "query" not in held
        status = conn.execute("SELECT asymm.sync_status()").fetchone()[0]  # type: ignore[index]
        assert f"database {other_name!r}" in render_sync_status(status)  # asymm sync status shows it
        # The reader role sees it too (SECURITY DEFINER), without query texts.
        conn.execute("CREATE ROLE sync_status_reader LOGIN PASSWORD 'reader-pw-0123'")
        conn.execute("SELECT asymm.grant_reader('sync_status_reader')")
        with psycopg.connect(role_dsn(db, "sync_status_reader", "reader-pw-0123")) as reader:
            seen = reader.execute("SELECT asymm.sync_status() -> 'horizon_held_by'").fetchone()[0]  # type: ignore[index]
            assert seen["pid"] == blocker.info.backend_pid
        blocker.rollback()
        engine.run_until_idle()
        assert conn.execute("SELECT asymm.sync_status() -> 'horizon_held_by'").fetchone()[0] is None  # type: ignore[index]
        conn.execute("DROP OWNED BY sync_status_reader")
        conn.execute("DROP ROLE sync_status_reader")
    result = full_compare(db, redis_url)
    assert result.rows_compared == 10
    assert (result.missing, result.different, result.extra) == ([], [], [])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--maxmemory-policy", "volatile-lru"), "volatile-lru"),
        (("--maxmemory-policy", "allkeys-lfu"), "allkeys-lfu"),
        (("--rename-command", "CONFIG", ""), "cannot check"),
        (("--maxmemory-policy", "noeviction"), None),
    ],
)
def test_eviction_policy_is_checked_when_the_engine_connects(
    db: str, own_redis: Any, args: tuple[str, ...], expected: str | None
) -> None:
    server = own_redis(*args)
    make_items(db, rows=20)
    engine = SyncEngine(db, server.url)
    try:
        assert (engine.redis_warning is None) == (expected is None)
        if expected is not None:
            assert engine.redis_warning is not None and expected in engine.redis_warning
        with psycopg.connect(db) as conn:
            status = conn.execute("SELECT asymm.sync_status()").fetchone()[0]  # type: ignore[index]
        assert status["redis_warning"] == engine.redis_warning
        engine.run_until_idle()  # a warning, not a refusal: the sync runs
    finally:
        engine.close()
    result = full_compare(db, server.url)
    assert result.rows_compared == 20
    assert (result.missing, result.different, result.extra) == ([], [], [])
