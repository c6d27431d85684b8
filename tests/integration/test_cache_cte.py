"""A CTE name must not hide a real table from invalidation (red-team finding).

read_tables() used to drop every relation named like a CTE anywhere in the statement, whatever the
CTE's scope: a statement reading tracked table `items` outside a CTE named `items` was cached with
no table to invalidate it, and stayed stale for its whole TTL after the table changed.  Safe
behaviour: the real table counts, so a change to it is seen at once.
"""

from __future__ import annotations

import psycopg

from asymm.cache import Cache
from asymm.sync import SyncEngine
from tests.harness.sync_helpers import make_items

Q = "SELECT (SELECT count(*) FROM items) AS n, x.one FROM (WITH items AS (SELECT 1 AS one) SELECT one FROM items) x"


def test_the_cached_result_sees_a_change(
    db: str,
    conn: psycopg.Connection,
    engine: SyncEngine,  # type: ignore[type-arg]
    redis_url: str,
) -> None:
    make_items(db, rows=5)
    engine.run_until_idle()
    cache = Cache(db, redis_url)
    try:
        assert cache.query(Q, ttl=600) == [{"n": 5, "one": 1}]
        conn.execute("INSERT INTO items VALUES (99, 'x', 1)")
        engine.run_until_idle()
        assert cache.query(Q, ttl=600) == [{"n": 6, "one": 1}], "stale result served after the change"
    finally:
        cache.close()
