"""Helpers shared by the sync tests: a tracked table, a write storm, a daemon, the final comparison."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from tests.harness.product import ASYMM as ASYMM
from tests.harness.product import Mismatches, Protector, Sandbox, SyncEngine, compare, connect_redis
from tests.harness.waiting import wait_for as wait_for


def make_items(dsn: str, rows: int = 200) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL, secret text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g, g, 's' || g FROM generate_series(1, %s) g", (rows,))
        conn.execute("SELECT asymm.track('items', sensitive => '{secret}')")


class Storm:
    """Threads doing random INSERT/UPDATE/DELETE (some multi-statement) until stopped.

    Server errors (a restart under test) are expected: the thread reconnects and goes on.
    """

    def __init__(self, dsn: str, threads: int = 3, keys: int = 300, seed: int = 7) -> None:
        self.dsn, self.keys = dsn, keys
        self.stop = threading.Event()
        self.commits = 0
        self.errors = 0
        self._threads = [threading.Thread(target=self._run, args=(seed + i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Storm:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, seed: int) -> None:
        rnd = random.Random(seed)
        conn: psycopg.Connection[Any] | None = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, connect_timeout=2)
                with conn.transaction():
                    for _ in range(rnd.randint(1, 3)):
                        key = rnd.randint(1, self.keys)
                        action = rnd.random()
                        if action < 0.4:
                            conn.execute(
                                "INSERT INTO items VALUES (%s, 'new', %s, 'x') ON CONFLICT (id)"
                                " DO UPDATE SET qty = items.qty + 1",
                                (key, rnd.randint(1, 99)),
                            )
                        elif action < 0.8:
                            conn.execute(
                                "UPDATE items SET qty = qty + 1, name = %s WHERE id = %s",
                                (f"n{rnd.randint(1, 9)}", key),
                            )
                        else:
                            conn.execute("DELETE FROM items WHERE id = %s", (key,))
                self.commits += 1
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                time.sleep(0.05)
        if conn is not None:
            conn.close()


def start_daemon(dsn: str, redis_url: str) -> subprocess.Popen[str]:
    """The daemon, given the Redis URL in its environment: the URL holds the sandbox's Redis password,
    and a command line is readable by every local user."""
    return subprocess.Popen(
        [ASYMM, "daemon", "--dsn", dsn, "--period", "0.05"],
        env={**os.environ, "ASYMM_REDIS_URL": redis_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_daemon(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is None:
        return ""
    with proc.stderr:
        return proc.stderr.read()


def settled(dsn: str) -> bool:
    """Everything committed so far is in Redis: no outbox row at or above the position, backfills done."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM asymm.sync_outbox o, asymm.sync_state s"
            "         WHERE o.xid >= s.position AND o.rel <> 0),"
            "       (SELECT count(*) FROM asymm.sync_tables WHERE backfill_state <> 'done')"
        ).fetchone()
    return row == (0, 0)


def full_compare(dsn: str, redis_url: str) -> Mismatches:
    client = connect_redis(redis_url)  # a plain client, or a cluster one for a cluster URL
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            mode = conn.execute("SELECT asymm.setting('sync.sensitive_mode')").fetchone()[0]  # type: ignore[index]
            return compare(conn, client, Protector(str(mode), "test-key"))
    finally:
        client.close()


# Fixtures of the sync test modules (a pytest plugin: registered in tests/conftest.py).


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
