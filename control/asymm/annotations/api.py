"""Calls into the extension's annotation API, returning plain JSON-ready dictionaries."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from asymm.annotations.fingerprint import check_single_statement
from asymm.db import lookup_relation, require_extension, session_search_path
from asymm.errors import AsymmError

Conn = psycopg.Connection[Any]

ANNOTATION_COLUMNS = (
    "id",
    "target",
    "target_type",
    "resolved",
    "symbol",
    "scope",
    "regime",
    "cost",
    "lineage",
    "source",
    "confidence",
    "evidence",
    "derived_from",
    "query_text",
    "created_at",
    "updated_at",
)


def annotate(
    conn: Conn,
    *,
    target: str | None,
    symbol: str,
    scope: str,
    regime: str,
    cost: str,
    lineage: list[str],
    column: str | None = None,
    query: str | None = None,
    queryid: int | None = None,
) -> dict[str, Any]:
    """Write one user annotation through the matching ``asymm.annotate`` overload; returns its row.

    Exactly one of ``target`` (a relation or function signature, optionally with ``column``),
    ``query`` (SQL text) or ``queryid`` must be given.
    """
    require_extension(conn)
    given = [x is not None for x in (target, query, queryid)]
    if sum(given) != 1:
        raise AsymmError("give exactly one of TARGET, --query or --queryid")
    fields = (symbol, scope, regime, cost, lineage)
    if query is not None:
        check_single_statement(query)
        row = conn.execute("SELECT asymm.annotate_query(%s, %s, %s, %s, %s, %s)", (query, *fields)).fetchone()
    elif queryid is not None:
        row = conn.execute("SELECT asymm.annotate(%s::bigint, %s, %s, %s, %s, %s)", (queryid, *fields)).fetchone()
    elif column is not None:
        assert target is not None
        rel = lookup_relation(conn, target)
        if rel is None:
            raise AsymmError(f"invalid annotation field target: relation {target!r} does not exist")
        row = conn.execute(
            "SELECT asymm.annotate(%s::regclass, %s, %s, %s, %s, %s, %s)", (rel, column, *fields)
        ).fetchone()
    else:
        with session_search_path(conn):  # the target is named the way the user's session names it
            row = conn.execute("SELECT asymm.annotate(%s::text, %s, %s, %s, %s, %s)", (target, *fields)).fetchone()
    assert row is not None
    found = list_annotations(conn, annotation_id=str(row[0]))
    return found[0]


def list_annotations(conn: Conn, annotation_id: str | None = None) -> list[dict[str, Any]]:
    """Rows of the ``asymm.annotations`` view (all, or one by id)."""
    require_extension(conn)
    columns = ", ".join(ANNOTATION_COLUMNS)
    with conn.cursor(row_factory=dict_row) as cur:
        if annotation_id is None:
            cur.execute(f"SELECT {columns} FROM asymm.annotations ORDER BY target, source, id")  # noqa: S608
        else:
            cur.execute(f"SELECT {columns} FROM asymm.annotations WHERE id = %s", (annotation_id,))  # noqa: S608
        return [
            {k: (str(v) if k in ("id", "derived_from") and v is not None else v) for k, v in row.items()}
            for row in cur.fetchall()
        ]


def export_annotations(conn: Conn) -> list[dict[str, Any]]:
    """``asymm.export_annotations()``: what ``pg_dump --schema-only`` leaves behind."""
    require_extension(conn)
    row = conn.execute("SELECT asymm.export_annotations()").fetchone()
    return list(row[0]) if row else []


def import_annotations(conn: Conn, annotations: Any) -> int:
    """``asymm.import_annotations()`` in one transaction: all of them or none."""
    require_extension(conn)
    try:
        with conn.transaction():
            row = conn.execute("SELECT asymm.import_annotations(%s)", (Jsonb(annotations),)).fetchone()
    except psycopg.Error as exc:
        diag = exc.diag
        hint = f" ({diag.message_hint})" if diag.message_hint else ""
        raise AsymmError(f"cannot import the annotations: {diag.message_primary or exc}{hint}") from None
    return int(row[0]) if row else 0


def coherence(conn: Conn) -> dict[str, Any]:
    """``asymm.coherence()``: the score and every per-annotation verdict."""
    require_extension(conn)
    with session_search_path(conn):  # statements are planned with the names their sessions used
        row = conn.execute("SELECT asymm.coherence()").fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


def infer(conn: Conn) -> list[dict[str, Any]]:
    """``asymm.infer()``: the inferred annotations written or reinforced by this run.

    A frequent query that could not be planned as the role that ran it (the role is gone, this
    role may not assume it, or the plan failed) comes back as a row with ``skipped`` = the reason
    and no annotation written.
    """
    require_extension(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        with session_search_path(conn):
            cur.execute("SELECT * FROM asymm.infer()")
        return list(cur.fetchall())
