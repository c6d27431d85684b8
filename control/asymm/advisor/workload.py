"""The workload the advisor optimises: normalized statements of the current database.

Why one statement per text, planned as one of its roles: pg_stat_statements keeps an entry per
role, and nothing may be planned with more rights than the role that ran it (docs/advisor.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from asymm.advisor.constants import stored_constants
from asymm.db import extension_schema
from asymm.errors import AsymmError

SYSTEM_TEXT = re.compile(r"\b(pg_catalog|information_schema|pg_stat_\w+|hypopg\w*|asymm\.)", re.IGNORECASE)
UTILITY = re.compile(
    r"^\s*(begin|commit|rollback|set|show|reset|prepare|deallocate|explain|vacuum|analy[sz]e|"
    r"create|drop|alter|grant|revoke|copy|truncate|listen|notify|discard|savepoint|release|"
    r"lock|do|call|checkpoint|fetch|close|declare|comment|refresh)\b",
    re.IGNORECASE,
)


@dataclass
class Statement:
    queryid: int
    query: str
    calls: int
    total_exec_time: float  # ms
    rows: int
    # the role that ran it (pg_stat_statements.userid); None: a text the caller gives, planned as the caller
    userid: int | None = None
    # grammar constants normalization took ({n: SQL literal}, asymm.query_constants): put back before analysis
    constants: dict[int, str] = field(default_factory=dict)

    @property
    def mean_exec_time(self) -> float:
        return self.total_exec_time / self.calls if self.calls else 0.0


def pg_stat_statements_ready(conn: psycopg.Connection[Any]) -> None:
    """Raise a clear error when pg_stat_statements cannot be read in this database."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone() is None:
        raise AsymmError("pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)")


def read_workload(conn: psycopg.Connection[Any], *, limit: int = 2000, min_calls: int = 1) -> list[Statement]:
    """Statements of the current database, heaviest (total time) first."""
    pg_stat_statements_ready(conn)
    home = extension_schema(conn, "pg_stat_statements")
    rows = conn.execute(
        sql.SQL(
            "SELECT s.queryid, s.query, sum(s.calls)::int8, sum(s.total_exec_time), sum(s.rows)::int8,"
            "       (array_agg(s.userid ORDER BY coalesce(pg_has_role(s.userid, 'MEMBER'), false) DESC,"
            "                  s.calls DESC, s.userid))[1]"
            "  FROM {}.pg_stat_statements s"
            " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            "   AND s.toplevel AND s.queryid IS NOT NULL"
            " GROUP BY s.queryid, s.query"
            " HAVING sum(s.calls) >= %s"
            " ORDER BY sum(s.total_exec_time) DESC LIMIT %s"
        ).format(sql.Identifier(str(home))),
        (min_calls, limit * 2),
    ).fetchall()
    constants = stored_constants(conn)
    out: list[Statement] = []
    for queryid, query, calls, total, nrows, userid in rows:
        text = str(query)
        if UTILITY.match(text) or SYSTEM_TEXT.search(text):
            continue
        out.append(
            Statement(
                int(queryid),
                text,
                int(calls),
                float(total),
                int(nrows or 0),
                int(userid),
                constants.get(int(queryid), {}),
            )
        )
    return out[:limit]
