"""Cache rules for CTEs that need no server."""

from __future__ import annotations

from asymm.cache import statement_tables

Q = "SELECT (SELECT count(*) FROM items) AS n, x.one FROM (WITH items AS (SELECT 1 AS one) SELECT one FROM items) x"


def test_a_cte_in_a_subquery_does_not_hide_the_table() -> None:
    # named by a CTE somewhere, so the cache checks whether a relation "items" exists (it counts then)
    assert statement_tables(Q)[2] == {(None, "items")}
