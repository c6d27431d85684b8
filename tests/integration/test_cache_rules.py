"""Cache.query's cacheability rule (one analysis of the whole statement) and Cache.get's privilege check.

The red-team reproducers are in ``tests/integration/test_sync_redteam.py``; these extend them: the same defect
in other positions of a statement (WHERE, ORDER BY, a CTE), the catalog side of the rule (an
IMMUTABLE function or a pg_catalog operator still caches), the purge of recorded results on
TRUNCATE and untrack, and the role change of Cache.get.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from asymm.cache import Cache, analyse
from asymm.errors import AsymmError
from asymm.sync import SyncEngine
from asymm.sync.redis_io import parse_key, redis_name, results_key
from tests.harness.roles import role_dsn
from tests.harness.sync_helpers import full_compare

Conn = psycopg.Connection[Any]


def sync(db: str, redis_url: str) -> None:
    eng = SyncEngine(db, redis_url)
    try:
        eng.run_until_idle()
    finally:
        eng.close()


# -- the analysis, from the text alone ----------------------------------------------------------------

POSITIONS = [  # where an expression {e} can stand in a SELECT over t
    "SELECT {e} AS x FROM t",
    "SELECT id FROM t WHERE {e} IS NOT NULL",
    "SELECT id FROM t ORDER BY {e}",
    "SELECT id FROM t GROUP BY id HAVING count({e}) > 0",
    "WITH w AS (SELECT {e} AS x FROM t) SELECT x FROM w",
    "SELECT id FROM t JOIN u ON u.id = t.id AND {e} IS NOT NULL",
    "SELECT (SELECT {e} FROM u LIMIT 1) AS x FROM t",
    "SELECT v.column1 FROM t, LATERAL (VALUES ({e})) v",
]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(POSITIONS), st.sampled_from(["f(id)", "s.f(id)", "f(t)"]), st.integers(0, 2))
def test_a_call_is_found_wherever_it_stands(position: str, call: str, depth: int) -> None:
    expr = call
    for _ in range(depth):
        expr = f"coalesce({expr}, {expr})"
    assert "f" in analyse(position.format(e=expr)).calls


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(POSITIONS), st.sampled_from(["#~#", "OPERATOR(s.#~#)"]))
def test_an_operator_is_found_wherever_it_stands(position: str, op: str) -> None:
    assert "#~#" in analyse(position.format(e=f"(id {op} 0)")).operators


@pytest.mark.parametrize(
    "statement",
    [
        "WITH u AS (UPDATE t SET x = 1 RETURNING x) SELECT x FROM u",
        "WITH u AS (INSERT INTO t VALUES (1) RETURNING x) SELECT x FROM u",
        "WITH u AS (DELETE FROM t RETURNING x) SELECT x FROM u",
        "WITH a AS (SELECT 1), u AS (DELETE FROM t RETURNING x) SELECT * FROM a",  # an unused one runs too
        "SELECT * FROM (SELECT * FROM t FOR UPDATE) s",
        "WITH l AS (SELECT * FROM t FOR SHARE) SELECT * FROM l",
        "SELECT * FROM t FOR NO KEY UPDATE",
    ],
)
def test_writes_and_locks_anywhere_are_never_cacheable(statement: str) -> None:
    assert not analyse(statement).cacheable


def test_only_and_fields_are_seen() -> None:
    a = analyse("SELECT k.f, (k).g, k.id FROM ONLY p k, q WHERE q.h = 1")
    assert a.inherited == frozenset({(None, "q")})
    assert {"f", "g", "id", "h"} <= a.fields
    assert analyse("SELECT 1 FROM t WHERE a BETWEEN 1 AND 2").operators == frozenset({">=", "<="})
    assert "now" in analyse("SELECT id FROM t WHERE d < current_date").calls


# -- the catalogs' side: what stays cacheable, what does not ------------------------------------------


def _items(conn: Conn) -> None:
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, qty int, d date)")
    conn.execute("INSERT INTO items SELECT g, g, '2026-01-01'::date + g FROM generate_series(1, 5) g")
    conn.execute("SELECT asymm.track('items')")
    conn.execute("CREATE TABLE rates (id int PRIMARY KEY, rate int)")  # not tracked
    conn.execute("INSERT INTO rates VALUES (1, 10)")
    conn.execute(
        "CREATE FUNCTION rate_of(int) RETURNS int LANGUAGE sql STABLE AS $$ SELECT rate FROM rates WHERE id = $1 $$"
    )
    conn.execute("CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 2 * $1 $$")
    conn.execute("CREATE FUNCTION doubled(items) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 2 * $1.qty $$")
    conn.execute(
        "CREATE FUNCTION rated(items) RETURNS int LANGUAGE sql STABLE"
        " AS $$ SELECT $1.qty * rate FROM rates WHERE id = 1 $$"
    )
    conn.execute(
        "CREATE FUNCTION rate_op(int, int) RETURNS int LANGUAGE sql STABLE"
        " AS $$ SELECT rate FROM rates WHERE id = $1 $$"
    )
    conn.execute("CREATE OPERATOR public.#~# (LEFTARG = int, RIGHTARG = int, FUNCTION = public.rate_op)")


FRESH = [  # each reads the untracked rates: after UPDATE rates, a call must see the new rate
    "SELECT id FROM items WHERE rate_of(1) = %s",  # in WHERE, not in a target list
    "SELECT id FROM items WHERE id <= %s ORDER BY rate_of(id), id",
    "WITH w AS (SELECT id, rate_of(1) AS r FROM items) SELECT r FROM w WHERE id = %s",
    "SELECT id FROM items WHERE id = %s AND 1 #~# 0 = 10",  # an operator in WHERE
    "SELECT k.rated FROM items k WHERE k.id = %s",  # attribute notation of a STABLE function
    "SELECT (k).rated FROM items k WHERE k.id = %s",
]


@pytest.mark.parametrize("statement", FRESH)
def test_what_reads_an_untracked_table_is_never_cached(
    db: str, conn: Conn, r: redis.Redis, redis_url: str, statement: str
) -> None:
    _items(conn)
    sync(db, redis_url)
    cache = Cache(db, redis_url)
    try:
        before = cache.query(statement, (1,))
        conn.execute("UPDATE rates SET rate = 20")
        after = cache.query(statement, (1,))
        cur = conn.execute(statement, (1,))
        assert after == [dict(zip([c.name for c in cur.description or ()], row, strict=True)) for row in cur]
        assert cache.stats.query_hits == 0 and cache.stats.query_uncacheable == 2, (before, after)
    finally:
        cache.close()
    assert full_compare(db, redis_url).total == 0


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT id, twice(qty) AS q FROM items WHERE id <= %s ORDER BY id",  # IMMUTABLE function
        "SELECT k.id, k.doubled FROM items k WHERE k.id <= %s ORDER BY k.id",  # IMMUTABLE whole-row function
        "SELECT id, count(*) OVER () AS n FROM items WHERE id <= %s ORDER BY id",  # immutable window aggregate
        "SELECT id FROM items WHERE d = '2026-01-02'::timestamptz AND id <= %s",  # pg_catalog STABLE operator
        "SELECT id FROM items WHERE qty BETWEEN 1 AND %s ORDER BY id",
    ],
)
def test_what_only_reads_tracked_tables_is_still_cached(
    db: str, conn: Conn, r: redis.Redis, redis_url: str, statement: str
) -> None:
    _items(conn)
    sync(db, redis_url)
    cache = Cache(db, redis_url)
    try:
        first = cache.query(statement, (3,))
        assert cache.query(statement, (3,)) == first
        assert cache.stats.query_hits == 1
    finally:
        cache.close()
    assert full_compare(db, redis_url).total == 0


def test_results_differ_per_session_setting(db: str, conn: Conn, r: redis.Redis, redis_url: str) -> None:
    """DateStyle, IntervalStyle, extra_float_digits, bytea_output: one result each, as PostgreSQL gives it."""
    conn.execute("CREATE TABLE obs (id int PRIMARY KEY, d date, i interval, f float8, b bytea)")
    conn.execute("INSERT INTO obs VALUES (1, '2026-03-04', '1 day 02:03:04', 0.1 + 0.2, '\\x00ff')")
    conn.execute("SELECT asymm.track('obs')")
    sync(db, redis_url)
    statement = "SELECT d::text AS d, i::text AS i, f::text AS f, b::text AS b FROM obs WHERE id = %s"
    for options in (
        "-c DateStyle=SQL,DMY",
        "-c IntervalStyle=sql_standard",
        "-c extra_float_digits=0",
        "-c bytea_output=escape",
        "",
    ):
        cache = Cache(db + f" options='{options}'", redis_url)
        try:
            cur = cache.conn.execute(statement, (1,))
            want = [dict(zip([c.name for c in cur.description or ()], row, strict=True)) for row in cur]
            assert cache.query(statement, (1,)) == want, options
            assert cache.query(statement, (1,)) == want, options
        finally:
            cache.close()
    assert full_compare(db, redis_url).total == 0


# -- recorded results: purged with the table's keys -------------------------------------------------


@pytest.mark.parametrize(
    "reset", ["TRUNCATE items", "SELECT asymm.untrack('items')", "SELECT asymm.sync_backfill('items')"]
)
def test_a_reset_or_drop_purges_the_results_read_from_the_table(
    db: str, conn: Conn, r: redis.Redis, redis_url: str, reset: str
) -> None:
    _items(conn)
    sync(db, redis_url)
    cache = Cache(db, redis_url)
    try:
        for n in range(1, 4):
            cache.query("SELECT id, qty FROM items WHERE id <= %s", (n,), ttl=3600)
    finally:
        cache.close()
    record = results_key(redis_name("public", "items"))
    members = r.zrange(record, 0, -1)
    assert len(members) == 3 and all(r.exists(m) for m in members)
    assert 0 < r.pttl(record) <= 3600 * 1000
    assert parse_key(record)[3] == "results"
    conn.execute(reset)
    sync(db, redis_url)
    assert not r.exists(record) and not any(r.exists(m) for m in members)
    assert full_compare(db, redis_url).total == 0


def test_expired_results_leave_the_record(db: str, conn: Conn, r: redis.Redis, redis_url: str) -> None:
    _items(conn)
    sync(db, redis_url)
    cache = Cache(db, redis_url)
    record = results_key(redis_name("public", "items"))
    try:
        cache.query("SELECT id FROM items WHERE id <= %s", (1,), ttl=60)
        old = r.zrange(record, 0, -1)
        r.delete(*old)  # as if it had expired: its expiry (the score) in the past
        r.zadd(record, {old[0]: 1})
        cache.query("SELECT id FROM items WHERE id <= %s", (2,), ttl=60)
        assert old[0] not in r.zrange(record, 0, -1) and r.zcard(record) == 1
    finally:
        cache.close()
    assert full_compare(db, redis_url).total == 0


# -- Cache.get and the role's privilege -------------------------------------------------------------


def test_cache_get_follows_the_roles_select_grant(db: str, conn: Conn, r: redis.Redis, redis_url: str) -> None:
    conn.execute("CREATE TABLE salaries (id int PRIMARY KEY, amount int)")
    conn.execute("INSERT INTO salaries VALUES (1, 99999)")
    conn.execute("SELECT asymm.track('salaries')")
    name, password = f"bob_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
    conn.execute("SELECT asymm.grant_reader(%s)", (name,))
    conn.execute(sql.SQL("GRANT SELECT (id) ON salaries TO {}").format(sql.Identifier(name)))  # a column only
    sync(db, redis_url)
    cache = Cache(role_dsn(conn.info.dsn, name, password), redis_url)
    try:
        with pytest.raises(AsymmError, match="may not SELECT"):
            cache.get("salaries", 1)
    finally:
        cache.close()
    conn.execute(sql.SQL("GRANT SELECT ON salaries TO {}").format(sql.Identifier(name)))
    cache = Cache(role_dsn(conn.info.dsn, name, password), redis_url)
    try:
        assert cache.get("salaries", 1) == {"id": 1, "amount": 99999}
    finally:
        cache.close()
    owner = Cache(db, redis_url)
    try:
        assert owner.get("salaries", 1) == {"id": 1, "amount": 99999}
        conn.execute(sql.SQL("REVOKE SELECT ON salaries FROM {}").format(sql.Identifier(name)))
        owner.query(sql.SQL("SELECT set_config('role', {}, false) AS s").format(sql.Literal(name)).as_string(conn))
        with pytest.raises(AsymmError):  # the role changed (SET ROLE through set_config): checked again
            owner.get("salaries", 1)
    finally:
        owner.close()
    assert full_compare(db, redis_url).total == 0
