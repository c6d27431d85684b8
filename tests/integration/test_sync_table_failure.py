"""An error on one tracked table never stops the sync of the others (issue #16, point 10).

The batch statement reads every table that changed recently in one statement, so one table it
could not read (a revoked privilege here) failed the whole batch on every pass, and no table was
synced any more.  Now the table is set aside (state ``failed``, its error in asymm.sync_status(),
its keys cleared so nothing stale is served), the others go on, and it is copied anew once it can
be read again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from asymm.cache import Cache
from asymm.sync import SyncEngine
from asymm.sync.redis_io import redis_name, table_tag
from tests.harness.roles import role_dsn
from tests.harness.sync_helpers import Storm, full_compare, make_items, wait_for

Conn = psycopg.Connection[Any]


@pytest.fixture
def daemon_dsn(db: str) -> Iterator[tuple[str, str]]:
    """(DSN, role) of a plain role given the daemon's rights (a superuser ignores REVOKE)."""
    name, password = f"syncer_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        conn.execute("SELECT asymm.grant_daemon(%s::regrole)", (name,))
    yield role_dsn(db, name, password), name
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _status(conn: Conn, table: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT t FROM jsonb_array_elements(asymm.sync_status() -> 'tables') t WHERE t ->> 'table' = %s", (table,)
    ).fetchone()
    assert row is not None
    return dict(row[0])


def _passes(engine: SyncEngine, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        engine.backfill_step()
        engine.sync_once()
        time.sleep(0.01)


def test_one_unreadable_table_never_stops_the_others(
    db: str, conn: Conn, daemon_dsn: tuple[str, str], redis_url: str, r: redis.Redis
) -> None:
    dsn, role = daemon_dsn
    make_items(db)
    conn.execute("CREATE TABLE other (k int PRIMARY KEY, v int NOT NULL)")
    conn.execute("CREATE TABLE broken (k int PRIMARY KEY, v int NOT NULL)")
    conn.execute("INSERT INTO other SELECT g, 0 FROM generate_series(1, 50) g")
    conn.execute("INSERT INTO broken SELECT g, 0 FROM generate_series(1, 50) g")
    conn.execute("SELECT asymm.track('other')")
    conn.execute("SELECT asymm.track('broken')")
    engine = SyncEngine(dsn, redis_url)
    try:
        engine.run_until_idle()
        conn.execute("UPDATE broken SET v = 1 WHERE k <= 5")  # the table gets its branch in the batch statement
        conn.execute("UPDATE other SET v = 1 WHERE k <= 5")
        engine.run_until_idle()
        assert full_compare(db, redis_url).total == 0

        conn.execute(sql.SQL("REVOKE SELECT ON broken FROM {}").format(sql.Identifier(role)))
        with Storm(db) as storm:  # items, written by three threads
            for i in range(30):
                conn.execute("UPDATE broken SET v = v + 1 WHERE k = %s", (i % 50 + 1,))
                conn.execute("UPDATE other SET v = v + 1 WHERE k = %s", (i % 50 + 1,))
                _passes(engine, 0.05)
            assert wait_for(lambda: storm.commits >= 100, timeout=30)
        _passes(engine, 0.2)
        engine.run_until_idle()

        status = _status(conn, "public.broken")
        assert status["backfill"] == "failed" and "permission denied" in status["error"], status
        assert _status(conn, "public.other")["error"] is None
        mismatches = full_compare(db, redis_url)
        assert mismatches.different == [] and mismatches.extra == []  # nothing stale, in any table
        assert mismatches.missing and all(m.startswith("public.broken:") for m in mismatches.missing)
        assert not r.exists(table_tag(redis_name("public", "broken")))  # no meta: fills are refused
        cache = Cache(db, redis_url)
        try:
            current = conn.execute("SELECT v FROM broken WHERE k = 1").fetchone()
            assert current is not None and cache.get("broken", 1) == {"k": 1, "v": current[0]}
            assert cache.stats.fills == 0
        finally:
            cache.close()

        conn.execute(sql.SQL("GRANT SELECT ON broken TO {}").format(sql.Identifier(role)))
        conn.execute("UPDATE broken SET v = v + 100 WHERE k = 2")

        def recovered() -> bool:
            _passes(engine, 0.2)
            return bool(_status(conn, "public.broken")["backfill"] == "done")

        assert wait_for(recovered, timeout=60)
        engine.run_until_idle()
        assert _status(conn, "public.broken")["error"] is None
        assert full_compare(db, redis_url).total == 0
    finally:
        engine.close()
