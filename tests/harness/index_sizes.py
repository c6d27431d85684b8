"""The size model's two sides, for the advisor's size tests: what it estimates, what PostgreSQL builds."""

from __future__ import annotations

from typing import Any

import psycopg

from asymm.advisor.candidates import Candidate
from asymm.advisor.catalog import Catalog
from asymm.advisor.whatif import WhatIf


def estimated_and_built(
    conn: psycopg.Connection[Any], table_name: str, keys: tuple[str, ...], include: tuple[str, ...] = ()
) -> tuple[int, int]:
    """(the advisor's size of the btree candidate, pg_relation_size of the same index built and dropped)."""
    catalog = Catalog(conn)
    table = catalog.table(None, table_name)
    assert table is not None
    cand = Candidate(table.oid, table.qualified, keys, include=include)
    with WhatIf(conn, catalog) as whatif:
        estimated = whatif.size(cand)
    assert estimated is not None
    conn.execute(cand.definition(name="size_probe"))
    row = conn.execute("SELECT pg_relation_size('size_probe')").fetchone()
    conn.execute("DROP INDEX size_probe")
    assert row is not None
    return estimated, int(row[0])
