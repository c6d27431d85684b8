"""A database with one generated table for the advisor's integration tests, and statements as
pg_stat_statements would give them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from asymm.advisor.workload import Statement
from asymm.db import connect


@contextmanager
def advisor_conn(make_db: Callable[..., str], schema: str, table: str) -> Iterator[psycopg.Connection[Any]]:
    """The advisor's connection to a new database where ``schema`` ran and ``table`` was vacuumed
    and analyzed (all-visible pages: index-only scans are priced as such)."""
    dsn = make_db()
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute(schema)
        setup.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
    with connect(dsn, pin=False) as conn:
        yield conn


def stmt(query: str, calls: int) -> Statement:
    return Statement(abs(hash(query)) % 2**62, query, calls, calls * 1.0, calls)
