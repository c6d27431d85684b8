"""Redis sync and the cache API against a real local 3-master Redis Cluster.

A table's keys share the hash tag ``{schema.table}``, so every Lua script touches one slot; these
tests prove it on a cluster started by the sandbox helper (CROSSSLOT or MOVED errors would fail
them), ending with the full PostgreSQL-vs-Redis comparison."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from asymm.cache import Cache
from asymm.dev import sandbox as sandbox_mod
from asymm.sync import SyncEngine
from asymm.sync.redis_io import connect_redis, row_key, table_tag
from tests.harness.sync_helpers import Storm, full_compare, make_items, settled, start_daemon, stop_daemon, wait_for


@pytest.fixture(scope="module")
def cluster(sandbox: sandbox_mod.Sandbox) -> Iterator[sandbox_mod.RedisClusterBox]:
    root = Path(tempfile.mkdtemp(prefix="asymm-cluster-", dir=Path(sandbox.root).parent))
    root.rmdir()
    box = sandbox_mod.cluster_up(root, os_user=sandbox.os_user)
    try:
        yield box
    finally:
        sandbox_mod.cluster_down(box)


@pytest.fixture
def cluster_url(cluster: sandbox_mod.RedisClusterBox) -> str:
    client = connect_redis(cluster.url)
    client.flushall()  # flushes every master
    client.close()
    return cluster.url


def test_cluster_helper_serves_every_slot(cluster: sandbox_mod.RedisClusterBox) -> None:
    client = connect_redis(cluster.url)
    try:
        assert type(client).__name__ == "RedisCluster"
        masters = {n.port for n in client.get_primaries()}
        assert masters == set(cluster.ports)
    finally:
        client.close()


def test_engine_and_cache_on_a_redis_cluster(db: str, conn: psycopg.Connection[Any], cluster_url: str) -> None:
    make_items(db, rows=300)
    conn.execute("CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b))")
    conn.execute("INSERT INTO pairs SELECT g, 'k' || g, g FROM generate_series(1, 50) g")
    conn.execute("SELECT asymm.track('pairs')")
    engine = SyncEngine(db, cluster_url)
    cache = Cache(db, cluster_url)
    client = connect_redis(cluster_url)
    try:
        engine.run_until_idle()
        # the two tables live in different slots (on different masters here, most likely), each whole
        slots = {client.keyslot(table_tag(t)) for t in ("public.items", "public.pairs")}
        assert len(slots) == 2
        assert client.keyslot(row_key("public.items", "17")) == client.keyslot(table_tag("public.items"))
        conn.execute("UPDATE items SET qty = -5 WHERE id = 10")
        conn.execute("DELETE FROM items WHERE id = 11")
        conn.execute("UPDATE pairs SET v = 0 WHERE a <= 10")
        conn.execute("TRUNCATE pairs")
        conn.execute("INSERT INTO pairs VALUES (1, 'x', 1)")
        engine.run_until_idle()
        assert cache.get("items", 10) == {"id": 10, "name": "item 10", "qty": -5}
        assert cache.get("items", 11) is None
        client.delete(row_key("public.items", "12"))  # evicted: read-through fill
        assert cache.get("items", 12) == {"id": 12, "name": "item 12", "qty": 12}
        assert json.loads(client.hget(row_key("public.items", "12"), "d")) == {"id": 12, "name": "item 12", "qty": 12}
        assert cache.get("pairs", (1, "x")) == {"a": 1, "b": "x", "v": 1}
        sql = "SELECT count(*) AS n, sum(qty) AS q FROM items JOIN pairs ON pairs.a = items.id"
        first = cache.query(sql)
        assert cache.query(sql) == first and cache.stats.query_hits == 1
        conn.execute("UPDATE items SET qty = 1000 WHERE id = 1")
        engine.run_until_idle()
        assert cache.query(sql) == [{"n": 1, "q": 1000}] and cache.stats.query_misses == 2
        with Storm(db, threads=2, keys=350):
            for _ in range(20):
                engine.sync_once()
        engine.run_until_idle()
        # a flush of every master is detected and the tables re-synced
        client.flushall()
        conn.execute("UPDATE items SET qty = 7 WHERE id = 2")
        engine.run_until_idle()
        assert engine.conn.execute("SELECT resyncs FROM asymm.sync_state").fetchone()[0] >= 1  # type: ignore[index]
    finally:
        cache.close()
        engine.close()
        client.close()
    result = full_compare(db, cluster_url)
    assert result.rows_compared > 200
    assert (result.missing, result.different, result.extra) == ([], [], [])


def test_daemon_syncs_into_a_redis_cluster(db: str, cluster_url: str) -> None:
    make_items(db, rows=100)
    proc = start_daemon(db, cluster_url)
    try:
        with Storm(db, threads=2) as storm:
            wait_for(lambda: storm.commits > 100, timeout=20)
        assert wait_for(lambda: settled(db), timeout=60)
    finally:
        err = stop_daemon(proc)
    assert "Traceback" not in err, err
    result = full_compare(db, cluster_url)
    assert result.rows_compared > 0 and result.total == 0
