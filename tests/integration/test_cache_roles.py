"""Cache.query() results are shared between roles: the cache key is the SQL text, parameters and
table generations, not who ran it.  A role that may not read a row (RLS, column grants, no SELECT
at all) gets another role's result on a hit, and a role whose session resolves a function name
differently (its own search_path) stores a result that every other role then reads.

Safe behaviour: a hit only returns what the calling role itself would have got from PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import conninfo, sql

from asymm.cache import Cache
from asymm.sync import SyncEngine
from tests.harness.roles import role_dsn


@pytest.fixture
def apps(db: str) -> Iterator[dict[str, str]]:
    """Two application roles, alice and bob, that may use the cache; a tracked multi-tenant table."""
    names = {k: f"{k}_{uuid.uuid4().hex[:8]}" for k in ("alice", "bob")}
    dsns: dict[str, str] = {}
    with psycopg.connect(db, autocommit=True) as conn:
        for key, name in names.items():
            password = uuid.uuid4().hex
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
            )
            # what an application needs to construct a Cache (asymm.setting)
            conn.execute(sql.SQL("SELECT asymm.grant_reader({})").format(sql.Literal(name)))
            dsns[key] = role_dsn(db, name, password)
        conn.execute("CREATE TABLE public.orders (id int PRIMARY KEY, tenant name, total int, card text)")
        conn.execute(
            sql.SQL("INSERT INTO public.orders VALUES (1, {a}, 10, '4111-alice'), (2, {b}, 20, '4111-bob')").format(
                a=sql.Literal(names["alice"]), b=sql.Literal(names["bob"])
            )
        )
        conn.execute("ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY own ON public.orders USING (tenant = current_user)")
        conn.execute(
            sql.SQL("GRANT SELECT (id, tenant, total) ON public.orders TO {}").format(sql.Identifier(str(names["bob"])))
        )
        conn.execute(sql.SQL("GRANT SELECT ON public.orders TO {}").format(sql.Identifier(names["alice"])))
        conn.execute("SELECT asymm.track('public.orders', sensitive => '{card}')")
        dsns["names"] = names  # type: ignore[assignment]
    yield dsns


def test_rls_rows_of_one_role_are_not_served_to_another(
    db: str, apps: dict[str, str], engine: SyncEngine, redis_url: str
) -> None:
    engine.run_until_idle()
    q = "SELECT id, tenant, total FROM public.orders ORDER BY id"
    alice, bob = Cache(apps["alice"], redis_url), Cache(apps["bob"], redis_url)
    try:
        alice_rows = alice.query(q)
        assert [r["id"] for r in alice_rows] == [1]  # RLS: alice sees her order only
        with psycopg.connect(apps["bob"]) as c:  # what PostgreSQL gives bob
            assert [r[0] for r in c.execute(q).fetchall()] == [2]
        bob_rows = bob.query(q)
        assert [r["id"] for r in bob_rows] == [2], f"bob got alice's rows from the cache: {bob_rows}"
    finally:
        alice.close()
        bob.close()


def test_a_column_a_role_may_not_read_is_not_served_to_it(
    db: str, apps: dict[str, str], engine: SyncEngine, redis_url: str
) -> None:
    engine.run_until_idle()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("ALTER TABLE public.orders DISABLE ROW LEVEL SECURITY")
    engine.run_until_idle()
    q = "SELECT id, card FROM public.orders ORDER BY id"
    alice, bob = Cache(apps["alice"], redis_url), Cache(apps["bob"], redis_url)
    try:
        alice.query(q)
        with psycopg.connect(apps["bob"]) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute(q)  # bob may not read card
        with pytest.raises(Exception):  # noqa: B017  (safe: refused, like PostgreSQL)
            leaked = bob.query(q)
            pytest.fail(f"bob read a column he has no SELECT on, through the cache: {leaked}")
    finally:
        alice.close()
        bob.close()


def test_a_role_search_path_cannot_poison_another_roles_result(
    db: str, apps: dict[str, str], engine: SyncEngine, redis_url: str
) -> None:
    names = apps["names"]  # type: ignore[index]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("ALTER TABLE public.orders DISABLE ROW LEVEL SECURITY")
        conn.execute(sql.SQL("CREATE SCHEMA evil AUTHORIZATION {}").format(sql.Identifier(names["bob"])))
    with psycopg.connect(apps["bob"], autocommit=True) as conn:
        conn.execute("CREATE FUNCTION evil.abs(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 0'")
    engine.run_until_idle()
    q = "SELECT id, abs(total) AS total FROM public.orders WHERE id = %s"
    bob = Cache(
        role_dsn(
            apps["bob"],
            names["bob"],
            conninfo.conninfo_to_dict(apps["bob"])["password"],
            options="-c search_path=evil,pg_catalog",
        ),
        redis_url,
    )
    alice = Cache(apps["alice"], redis_url)
    try:
        assert bob.query(q, (1,)) == [{"id": 1, "total": 0}]  # bob's own session: his abs()
        assert alice.query(q, (1,)) == [{"id": 1, "total": 10}], "alice read bob's poisoned result"
    finally:
        alice.close()
        bob.close()
