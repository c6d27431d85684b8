"""Cache.get() on a miss reads the row on the application's connection, with row security on,
and writes what it read into the shared mirror.  A role that a policy hides the row from reads
nothing and fills a tombstone: every other role is then told the row does not exist (until the
row next changes).  The safe behaviour: a fill never writes what one role's policies made of the
row; the other role still gets the row.
"""

from __future__ import annotations

import uuid

import psycopg
import redis
from psycopg import sql

from asymm.cache import Cache
from asymm.sync import SyncEngine
from tests.harness.roles import role_dsn


def test_a_role_hidden_by_rls_does_not_fill_a_tombstone(
    db: str, engine: SyncEngine, redis_url: str, r: redis.Redis
) -> None:
    dsns = {}
    with psycopg.connect(db, autocommit=True) as conn:
        for who in ("alice", "bob"):
            name, password = f"{who}_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
            )
            conn.execute(sql.SQL("SELECT asymm.grant_reader({})").format(sql.Literal(name)))
            dsns[who] = (name, role_dsn(db, name, password))
        conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, tenant name, total int)")
        conn.execute(sql.SQL("INSERT INTO public.orders VALUES (1, {}, 10)").format(sql.Literal(dsns["alice"][0])))
        conn.execute("ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY own ON public.orders USING (tenant = current_user)")
        for name, _ in dsns.values():
            conn.execute(sql.SQL("GRANT SELECT ON public.orders TO {}").format(sql.Identifier(name)))
        conn.execute("SELECT asymm.track('public.orders')")
    engine.run_until_idle()
    r.delete("asymm:{public.orders}:1")  # evicted (maxmemory), or not backfilled yet
    bob, alice = Cache(dsns["bob"][1], redis_url), Cache(dsns["alice"][1], redis_url)
    try:
        assert bob.get("orders", 1) is None  # bob may not see it: fine for bob
        assert alice.get("orders", 1) == {"id": 1, "tenant": dsns["alice"][0], "total": 10}, (
            "bob's miss wrote a tombstone: alice is told her row does not exist"
        )
    finally:
        bob.close()
        alice.close()
