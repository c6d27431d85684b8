"""Index advisor, issue #18's defect classes: candidates across statements (wider keys, INCLUDE),
expression keys of any immutable pg_catalog function, operator or cast, definitions PostgreSQL
refuses, and every statement planned or skipped with a reason (real PostgreSQL + HypoPG)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asymm.advisor import candidates as cand_mod
from asymm.advisor.advise import Settings, advise
from asymm.advisor.catalog import Catalog
from asymm.advisor.rewrite import rewrite
from asymm.advisor.validate import rejection
from asymm.advisor.whatif import WhatIf
from asymm.advisor.workload import Statement
from asymm.db import connect

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, country text NOT NULL, born timestamp NOT NULL,
                     seen timestamptz NOT NULL, meta jsonb NOT NULL, nick text, pad text NOT NULL);
INSERT INTO people SELECT g, 'User' || g || '@Example.com', (ARRAY['de','fr','us','uk'])[1 + g % 4],
       timestamp '2020-01-01' + g * interval '37 min', timestamptz '2020-01-01' + g * interval '37 min',
       jsonb_build_object('ref', 'r' || g, 'plan', g % 500), CASE WHEN g % 3 = 0 THEN 'n' || g END, repeat('x', 60)
  FROM generate_series(1, 40000) g;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL, amount numeric NOT NULL,
                     created_at timestamp NOT NULL, note text);
INSERT INTO orders SELECT g, 1 + g % 50, (ARRAY['new','paid','shipped','done'])[1 + g % 4], g % 1000,
       timestamp '2026-01-01' + g * interval '10 s', NULL FROM generate_series(1, 60000) g;
CREATE TABLE tickets (id int PRIMARY KEY, tenant_id int NOT NULL, status text NOT NULL, created_at timestamp NOT NULL,
                      title text NOT NULL, body text NOT NULL);
INSERT INTO tickets SELECT g, 1 + (g * 31) % 20000,
       (ARRAY['open','pending','closed','spam','merged','archived'])[1 + (g / 7) % 6],
       timestamp '2026-01-01' + g * interval '13 s', 'ticket ' || g, repeat('b', 200)
  FROM generate_series(1, 200000) g;
"""


@pytest.fixture
def dsn(make_db: Callable[..., str]) -> str:
    dsn = make_db()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("VACUUM ANALYZE")  # all-visible pages: index-only scans are priced as such
    return dsn


@pytest.fixture
def aconn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(dsn, pin=False) as conn:
        yield conn


def stmt(query: str, calls: int = 1000, queryid: int = 0) -> Statement:
    return Statement(queryid or abs(hash(query)) % 2**62, query, calls, calls * 1.0, calls)


def columns(result: dict[str, Any]) -> list[tuple[list[str], list[str]]]:
    return sorted((i["columns"], i.get("include", [])) for i in result["indexes"])


def workload_cost(aconn: psycopg.Connection[Any], workload: list[Statement], definitions: list[str]) -> float:
    """The workload's estimated cost (calls x planner cost) with exactly these hypothetical indexes."""
    catalog = Catalog(aconn)
    with WhatIf(aconn, catalog) as whatif:
        total = 0.0
        for s in workload:
            rw = rewrite(s.query, catalog)
            prepared = whatif.prepare(rw)
            table = rw.analysis.tables[0]
            config = frozenset(_parse(table, d) for d in definitions if table.qualified in d)
            total += s.calls * whatif.cost(prepared, config).cost
        return total


def _parse(table: Any, definition: str) -> cand_mod.Candidate:
    """A Candidate from ``ON <table> (k1, k2)`` (plain column keys only: the narrow sets of today)."""
    keys = definition.split("(", 1)[1].rstrip(")").split(", ")
    return cand_mod.Candidate(table.oid, table.qualified, tuple(keys))


def plan_uses(aconn: psycopg.Connection[Any], query: str, definition: str) -> str:
    """The real plan's node for ``query`` once the index of ``definition`` exists and is analyzed."""
    aconn.execute(definition)
    table = definition.split(" ON ", 1)[1].split(" USING ", 1)[0]
    aconn.execute(f"ANALYZE {table}")
    plan = aconn.execute(f"EXPLAIN (FORMAT JSON) {query}").fetchone()
    assert plan is not None
    return json.dumps(plan[0])


# -- 1. candidates across statements --------------------------------------------------------


def test_a_narrow_index_next_to_a_wide_one_that_serves_its_statement_is_dropped(aconn: psycopg.Connection[Any]) -> None:
    """(customer_id) for the count, (customer_id, created_at DESC) for the ORDER BY ... LIMIT: the
    wide one serves both about as well (2 % costlier for the count), at the default settings (on
    main both were kept).  Pages written since the last VACUUM: no index-only scan, where the
    narrow index would be 30 % cheaper for the count, and kept.  Storage is free here: priced, the
    narrow one (a quarter of the bytes: 50 values deduplicate) wins outright, the LIMIT statement
    gaining only 1 % more with the wide one (test_advisor_storage.py)."""
    aconn.execute("UPDATE orders SET note = 'x' WHERE id % 20 = 0")
    aconn.execute("ANALYZE orders")
    heavy = stmt("select count(*) from orders where customer_id = $1", 1000)
    light = stmt("select * from orders where customer_id = $1 order by created_at desc limit $2", 40)
    result = advise(aconn, Settings(storage_weight=0.0), [heavy, light])
    assert columns(result) == [(["customer_id", "created_at DESC"], [])]
    assert sorted(result["indexes"][0]["queryids"]) == sorted([heavy.queryid, light.queryid])
    today = workload_cost(
        aconn,
        [heavy, light],
        ["ON public.orders (customer_id)", "ON public.orders (customer_id, created_at DESC)"],
    )
    # one index fewer, the statements' cost within the near-tie tolerance of the two indexes'
    assert result["workload_cost_after"] <= today * (1 + Settings().near_tie)


def test_three_statements_of_a_tenant_get_one_wide_index_with_include(aconn: psycopg.Connection[Any]) -> None:
    """Per statement the advisor found (tenant_id, status) and (tenant_id, created_at); across them,
    one index (equality columns, the range/sort column, INCLUDE for index-only scans) serves all
    three, cheaper than the two."""
    workload = [
        stmt("select id, status from tickets where tenant_id = $1 and status = $2", 1000),
        stmt("select id, created_at from tickets where tenant_id = $1 and created_at > $2", 500),
        stmt("select id, title, created_at from tickets where tenant_id = $1 order by created_at desc limit $2", 300),
    ]
    result = advise(aconn, Settings(), workload)
    assert len(result["indexes"]) == 1, result["indexes"]
    (index,) = result["indexes"]
    assert index["columns"][0] == "tenant_id" and index["include"], index
    assert " INCLUDE (" in index["definition"]
    assert sorted(index["queryids"]) == sorted(s.queryid for s in workload)
    today = workload_cost(
        aconn, workload, ["ON public.tickets (tenant_id, status)", "ON public.tickets (tenant_id, created_at)"]
    )
    assert result["workload_cost_after"] < today
    # HypoPG 1.3.1 simulated INCLUDE, and the real index gives the index-only scan it priced
    assert '"Index Only Scan"' in plan_uses(
        aconn, "select id, status from tickets where tenant_id = 7 and status = 'open'", index["definition"]
    )


def test_an_existing_index_with_include_covers_a_candidate_with_fewer(aconn: psycopg.Connection[Any]) -> None:
    aconn.execute("CREATE INDEX tickets_tenant_incl ON tickets (tenant_id, created_at) INCLUDE (status, title)")
    table = Catalog(aconn).table(None, "tickets")
    assert table is not None
    make = lambda keys, include=(): cand_mod.Candidate(table.oid, table.qualified, keys, include=include)  # noqa: E731
    assert cand_mod.covered_by_existing(make(("tenant_id",), ("status",)), table) == "tickets_tenant_incl"
    assert cand_mod.covered_by_existing(make(("tenant_id",), ("created_at",)), table) == "tickets_tenant_incl"
    assert cand_mod.covered_by_existing(make(("tenant_id", "created_at"), ("title",)), table) == "tickets_tenant_incl"
    assert cand_mod.covered_by_existing(make(("tenant_id",), ("body",)), table) is None
    assert cand_mod.covered_by_existing(make(("tenant_id", "status")), table) is None  # an INCLUDE column is no key


# -- 2. expression keys -----------------------------------------------------------------------

# (statement with its constants, as a caller gives it; the key as the DBA reads it; a statement
# with other values that the created index must serve)
SHAPES = [
    (
        "select * from people where lower(email) = 'user5@example.com'",
        "lower(email)",
        "select * from people where lower(email) = 'user77@example.com'",
    ),
    (
        "select * from people where (meta->>'ref') = 'r5'",
        "meta ->> 'ref'",
        "select * from people where (meta->>'ref') = 'r77'",
    ),
    (
        "select id from people where date_trunc('day', born) = '2020-03-01'",
        "date_trunc('day', born)",
        "select id from people where date_trunc('day', born) = '2020-04-01'",
    ),
    (
        "select * from people where born::date = '2020-03-01'",
        "born::date",
        "select * from people where born::date = '2020-04-02'",
    ),
    (
        "select * from people where coalesce(nick, '') = 'n300'",
        "COALESCE(nick, '')",
        "select * from people where coalesce(nick, '') = 'n303'",
    ),
]


@pytest.mark.parametrize(("query", "key", "other"), SHAPES, ids=[s[1] for s in SHAPES])
def test_an_expression_key_is_a_candidate_chosen_and_used_by_the_real_plan(
    aconn: psycopg.Connection[Any], query: str, key: str, other: str
) -> None:
    rw = rewrite(query, Catalog(aconn))
    assert [key] in [c.columns for c in cand_mod.for_statement(rw.analysis, 1)]
    result = advise(aconn, Settings(), [stmt(query)])
    assert [i["columns"] for i in result["indexes"]] == [[key]], result["indexes"]
    definition = result["indexes"][0]["definition"]
    # functions, casts and operators resolve in pg_catalog only (COALESCE is grammar, no function)
    assert "pg_catalog." in definition or key.startswith("COALESCE")
    assert result["indexes"][0]["name"] in plan_uses(aconn, other, definition)
    # once it exists, the same candidate is covered by it (pg_get_indexdef's spelling matches ours)
    catalog = Catalog(aconn)
    fresh = rewrite(query, catalog)
    (cand,) = [c for c in cand_mod.for_statement(fresh.analysis, 1) if c.columns == [key]]
    table = catalog.table(None, "people")
    assert table is not None
    assert cand_mod.covered_by_existing(cand, table) == result["indexes"][0]["name"]


def test_an_expression_that_is_not_immutable_for_its_column_type_is_no_candidate(
    aconn: psycopg.Connection[Any],
) -> None:
    """date_trunc on timestamp is IMMUTABLE, on timestamptz STABLE (it depends on TimeZone)."""
    catalog = Catalog(aconn)
    for query in (
        "select id from people where date_trunc('day', seen) = '2020-03-01'",
        "select id from people where seen::date = '2020-03-01'",  # timestamptz -> date reads TimeZone too
    ):
        stable = rewrite(query, catalog)
        assert not [c for c in cand_mod.for_statement(stable.analysis, 1) if "seen" in "".join(c.keys)]
        assert advise(aconn, Settings(), [stmt(stable.text)])["indexes"] == []
    # a parameter where the index needs a constant: a normalized text lost it
    normalized = rewrite("select id from people where date_trunc($1, born) = $2", catalog)
    assert not [c for c in cand_mod.for_statement(normalized.analysis, 1) if "born" in "".join(c.keys)]


def test_an_expression_over_a_user_type_is_no_candidate(aconn: psycopg.Connection[Any]) -> None:
    """A domain's CHECK (or a user type's input function) would run when a constant is coerced to
    it, as the advisor's role, in HypoPG or in the validation: such a column gets no expression key."""
    aconn.execute(
        "CREATE TABLE spied (who text);"
        "CREATE FUNCTION public.spy(v text) RETURNS boolean LANGUAGE sql AS"
        " $$ INSERT INTO spied VALUES (current_user) RETURNING true $$;"
        "CREATE DOMAIN tagged AS text CHECK (public.spy(VALUE));"
        "CREATE TABLE labels (id int PRIMARY KEY, tag tagged);"
        "ANALYZE labels"
    )
    rw = rewrite("select * from labels where coalesce(tag, 'x') = 'y'", Catalog(aconn))
    assert not [c for c in cand_mod.for_statement(rw.analysis, 1) if "tag" in "".join(c.keys)]
    assert aconn.execute("SELECT count(*) FROM spied").fetchone() == (0,)


def test_two_expressions_of_one_column_are_priced_apart(aconn: psycopg.Connection[Any]) -> None:
    """btrim(email) > 'A' matches every row; lower(email) = ... one.  Through one shared proxy
    (email = ... AND email > 'A') an index on either looked as selective as the equality."""
    query = "select * from people where lower(email) = 'user5@example.com' and btrim(email) > 'A'"
    catalog = Catalog(aconn)
    rw = rewrite(query, catalog)
    by_columns = {tuple(c.columns): c for c in cand_mod.for_statement(rw.analysis, 1)}
    with WhatIf(aconn, catalog) as whatif:
        prepared = whatif.prepare(rw)
        base = whatif.cost(prepared, frozenset()).cost
        lower = whatif.cost(prepared, frozenset({by_columns[("lower(email)",)]})).cost
        btrim = whatif.cost(prepared, frozenset({by_columns[("btrim(email)",)]})).cost
    assert lower < 0.1 * base
    assert btrim > 0.5 * base, (base, lower, btrim)  # it serves nothing here
    result = advise(aconn, Settings(), [stmt(query)])
    assert [i["columns"] for i in result["indexes"]] == [["lower(email)"]], result["indexes"]


# -- 3. definitions PostgreSQL refuses ------------------------------------------------------


def test_a_definition_postgresql_refuses_is_reported_and_never_chosen(aconn: psycopg.Connection[Any]) -> None:
    """HypoPG names no index, so it accepts a candidate whose (deterministic) name is taken."""
    query = "select * from orders where status = $1 and amount = $2"
    result = advise(aconn, Settings(), [stmt(query)])
    assert result["indexes"] and not result.get("candidates_rejected")
    taken = result["indexes"][0]["name"]
    aconn.execute(f"CREATE TABLE public.{taken} (x int)")
    again = advise(aconn, Settings(), [stmt(query)])
    assert taken not in [i["name"] for i in again["indexes"]]
    refused = {"definition": result["indexes"][0]["definition"], "reason": f'relation "{taken}" already exists'}
    assert refused in again.get("candidates_rejected", [])
    for item in again["indexes"]:  # whatever it chose instead is runnable
        aconn.execute(item["definition"])


def test_the_check_reports_postgresqls_message_and_leaves_nothing_behind(aconn: psycopg.Connection[Any]) -> None:
    before = aconn.execute("SELECT count(*) FROM pg_class").fetchone()
    message = rejection(aconn, "public.people", "btree ((pg_catalog.date_trunc('day', seen)))")
    assert message == "functions in index expression must be marked IMMUTABLE"
    assert rejection(aconn, "public.people", "brin (id) INCLUDE (email)") == (
        'access method "brin" does not support included columns'
    )
    assert rejection(aconn, "public.people", "btree ((pg_catalog.lower(email))) INCLUDE (pad)") is None
    assert aconn.execute("SELECT count(*) FROM pg_class").fetchone() == before
    assert aconn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'asymm_validate%'").fetchone() == (0,)


# -- 4. every statement planned or skipped ----------------------------------------------------

FRAGMENTS = [
    "select",
    "*",
    "from",
    "people",
    "orders",
    "tickets",
    "nosuch",
    "where",
    "email",
    "meta",
    "born",
    "seen",
    "id",
    "=",
    "<",
    ">=",
    "->>",
    "@>",
    "$1",
    "$2",
    "$0",
    "$99999",
    "'x'",
    "'",
    '"',
    "(",
    ")",
    ",",
    ";",
    "and",
    "or",
    "not",
    "order by",
    "group by",
    "limit",
    "lower(",
    "date_trunc(",
    "::date",
    "::jsonb",
    "coalesce(",
    "update",
    "set",
    "delete",
    "insert into",
    "values",
    "with x as",
    "union all",
    "vacuum",
    "explain",
    "--",
    "/*",
    "\\",
    "\x00",
    "é",
    "1e999",
    "-",
    "null",
    "in",
    "between",
    "exists",
]

texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14).map(" ".join),
    st.text(max_size=60),
    st.sampled_from([s[0] for s in SHAPES]),
)
statements = st.lists(
    st.builds(
        Statement,
        queryid=st.integers(-(2**63), 2**63 - 1),
        query=texts,
        calls=st.integers(0, 10**6),
        total_exec_time=st.floats(0, 1e6),
        rows=st.integers(0, 10**6),
        userid=st.one_of(st.sampled_from([None, 10, 0, 4242424]), st.integers(-(2**63), 2**64)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workload=statements)
@example(workload=[Statement(1, "vacuum people", 1, 1.0, 1), Statement(2, "select 1", 1, 1.0, 1)])
@example(workload=[Statement(3, "", 1, 1.0, 1), Statement(3, "select * from people; select 1", 1, 1.0, 1)])
@example(workload=[Statement(4, "select * from people where id = $1", 1, 1.0, 1, userid=2**40)])
@example(workload=[Statement(5, "select * from nosuch where x = $1", 0, 0.0, 0, userid=-1)])
def test_every_statement_is_planned_or_skipped_with_a_reason(
    aconn: psycopg.Connection[Any], workload: list[Statement]
) -> None:
    result = advise(aconn, Settings(), workload)
    assert result["planned"] + len(result["skipped"]) == result["statements"] == len(workload)
    assert all(isinstance(s["reason"], str) and s["reason"] and "\n" not in s["reason"] for s in result["skipped"])
    assert aconn.execute("SELECT count(*) FROM hypopg_list_indexes").fetchone() == (0,)  # nothing left behind
