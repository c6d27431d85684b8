"""Whether PostgreSQL accepts an index definition: created on an empty copy, always rolled back.

Why: HypoPG checks less than ``CREATE INDEX`` does (it names no index, so it never meets a name
that is taken), and an expression key is only an index key if every function, operator and cast in
it is IMMUTABLE *for the column's type* (``date_trunc('day', col)`` is on ``timestamp``, not on
``timestamptz``).  Rather than re-implement the server's overload resolution and its mutability
check, the server is asked: the exact key list is indexed on ``CREATE TEMP TABLE ... (LIKE t)``.

``LIKE`` without ``INCLUDING`` copies what an index's validity depends on (column names, types,
typmods, collations, NOT NULL) and nothing that would cost time or run code (defaults, CHECK
constraints, existing indexes).  The copy is empty, so no expression is ever evaluated on a row;
functions are pg_catalog's (see :mod:`asymm.advisor.analysis`), so the little constant folding
the check does runs no user code.  Everything happens in one transaction that is always rolled
back (a savepoint when the caller is in a transaction already): nothing is left behind.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
from psycopg import sql


def rejection(conn: psycopg.Connection[Any], table: str, body: str, name: str | None = None) -> str | None:
    """PostgreSQL's message when it refuses ``CREATE INDEX ON <copy of table> USING <body>``, else None.

    ``table`` is the quoted, qualified name; ``body`` the text after ``USING`` that the advisor
    wrote itself (method, keys, INCLUDE); ``name``, when given, must not be taken in the table's
    schema (the copy lives in pg_temp, so that is checked on the catalog).
    """
    copy = sql.Identifier(f"asymm_validate_{secrets.token_hex(6)}")
    try:
        with conn.transaction(force_rollback=True):
            if name is not None:
                taken = conn.execute(
                    "SELECT 1 FROM pg_catalog.pg_class c WHERE c.relname = %s AND c.relnamespace ="
                    " (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = %s::regclass)",
                    (name, table),
                ).fetchone()
                if taken is not None:
                    return f'relation "{name}" already exists'
            try:
                conn.execute(sql.SQL("CREATE TEMP TABLE pg_temp.{} (LIKE {})").format(copy, sql.SQL(table)))
            except psycopg.Error as exc:
                return f"not validated: cannot copy the table's columns ({_message(exc)})"
            try:
                conn.execute(sql.SQL("CREATE INDEX ON pg_temp.{} USING {}").format(copy, sql.SQL(body)))
            except psycopg.Error as exc:
                return _message(exc)
    except psycopg.Error as exc:  # the rollback itself failed: the connection is gone
        return f"not validated: {_message(exc)}"
    return None


def _message(exc: psycopg.Error) -> str:
    return (exc.diag.message_primary or str(exc)).strip()
