"""asymm._explain_as plans with the author's view of the statistics (issue 18, found by the
observed-values work): the code the planner folds runs as asymm_planner, a role without rights,
but whether a column's histogram may be used with an operator that is not leakproof (numeric
comparisons, jsonb's) is decided by the author's SELECT right, as it is when the author runs
the statement.  Before, every such estimate was PostgreSQL's default: `price > $1` was half the
table for any value."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

ROWS = 200_000


@pytest.fixture
def planned(make_db: Callable[..., str]) -> Iterator[tuple[psycopg.Connection[Any], int]]:
    """(superuser connection, oid of a role that may read the table) on a database with prices."""
    dsn = make_db()
    name = f"reader_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
        try:
            conn.execute("CREATE TABLE prices (id int PRIMARY KEY, price numeric NOT NULL, label text NOT NULL)")
            conn.execute(
                "INSERT INTO prices SELECT g, (g::bigint * 7919 %% %s) / 2.0, 'item ' || g"
                " FROM generate_series(1, %s) g",
                (ROWS, ROWS),
            )
            conn.execute("ANALYZE prices")
            conn.execute(sql.SQL("GRANT SELECT ON prices TO {}").format(sql.Identifier(name)))
            row = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            assert row is not None
            yield conn, int(row[0])
        finally:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def plan_rows(conn: psycopg.Connection[Any], author: int, query: str, types: list[str], values: list[str]) -> float:
    row = conn.execute("SELECT asymm._explain_as(%s, %s, %s::text[], %s::text[])", (author, query, types, values))
    doc = row.fetchone()
    assert doc is not None
    plan = doc[0] if not isinstance(doc[0], str) else json.loads(doc[0])
    return float(plan["plan"][0]["Plan"]["Plan Rows"])


@pytest.mark.parametrize(
    ("query", "types", "values", "expected"),
    [
        # numeric_gt: 1 % of the rows (PostgreSQL's default without the histogram: half)
        ("SELECT id FROM prices WHERE price > $1", ["numeric"], ["99000"], (1000, 4000)),
        # 4 % (the default for a range: 0.5 %)
        ("SELECT id FROM prices WHERE price BETWEEN $1 AND $2", ["numeric", "numeric"], ["10", "4010"], (4000, 16000)),
    ],
    ids=["numeric-range", "numeric-between"],
)
def test_a_custom_plan_estimates_from_the_histogram_as_the_author_sees_it(
    planned: tuple[psycopg.Connection[Any], int],
    query: str,
    types: list[str],
    values: list[str],
    expected: tuple[float, float],
) -> None:
    conn, reader = planned
    me = conn.execute("SELECT oid FROM pg_roles WHERE rolname = current_user").fetchone()
    assert me is not None
    for author in (reader, int(me[0])):
        rows = plan_rows(conn, author, query, types, values)
        assert expected[0] <= rows <= expected[1], (author, rows, expected)
