"""Parameter values pg_qualstats observed, to plan a statement with values it really runs with.

Why: a normalized statement has ``$n`` where the application sent values, and the cost of a plan
depends on them.  Without values the advisor picks representative ones from the column's
statistics (whatif.pick_value: the 90th percentile for ``>``, one histogram bucket for a range),
which is right on average and wrong for the statement that always asks for the top 0.01 %
(``l_extendedprice > $1`` near the maximum) or for a window of one year, not one bucket.
pg_qualstats, when it is loaded and installed in the database, samples the quals each statement
evaluates with their constants, Params of the extended protocol included (``constvalue``, at
``constant_position``, the byte offset of ``$n`` in the statement's text).  The advisor plans
with a typical observed value per parameter instead of a guessed one.

The values are read for the run and never stored or logged: they are the application's data.
Each comes back as the text of a single literal (``'a b'::text``, ``42::bigint``), parsed with
pglast (never evaluated); the advisor passes it to the planner as a parameter value, as it does
with values from ``pg_stats``.  Without pg_qualstats, without the right to read it (pg_qualstats
decides what a role may see), with ``asymm advise --no-observed-values``, or when a position does
not point at ``$n`` (a statement sent with literals, whose text pg_stat_statements normalized),
nothing is observed and the statistics' values are used as before.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

import pglast
import psycopg
from pglast import ast
from psycopg import sql

from asymm.db import extension_schema

log = logging.getLogger(__name__)

PARAM_AT = re.compile(r"\$(\d+)(?!\d)")
MAX_VALUES = 50  # per parameter: the most frequent ones are enough for a typical value
MAX_VALUE_CHARS = 1000


def read_observed(conn: psycopg.Connection[Any]) -> dict[int, list[tuple[int, str, int]]]:
    """``{queryid: [(constant_position, constvalue, occurrences)]}`` of this database from
    pg_qualstats, empty when it is not installed or cannot be read."""
    schema = extension_schema(conn, "pg_qualstats")
    if schema is None:
        return {}
    query = sql.SQL(
        "SELECT queryid, constant_position, constvalue, occurences FROM {}.pg_qualstats()"
        " WHERE dbid OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database"
        "   WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
        "   AND queryid IS NOT NULL AND constvalue IS NOT NULL AND constant_position IS NOT NULL"
    ).format(sql.Identifier(schema))
    try:
        with conn.transaction():
            rows = conn.execute(query).fetchall()
    except psycopg.Error as exc:
        log.info("advisor: pg_qualstats' observed values not read: %s", (exc.diag.message_primary or "").strip())
        return {}
    out: dict[int, list[tuple[int, str, int]]] = {}
    for queryid, position, value, occurrences in rows:
        if len(str(value)) <= MAX_VALUE_CHARS:
            out.setdefault(int(queryid), []).append((int(position), str(value), int(occurrences or 1)))
    return out


def literal_value(constvalue: str) -> str | None:
    """The value of a single literal (``'x'::text`` → ``x``, ``-4.5::numeric`` → ``-4.5``) in its
    type's input syntax; None for anything else (an array, a ROW, an expression)."""
    try:
        statements = pglast.parse_sql(f"SELECT {constvalue}")
    except pglast.parser.ParseError:
        return None
    if len(statements) != 1:
        return None
    stmt = statements[0].stmt
    targets = (stmt.targetList or ()) if isinstance(stmt, ast.SelectStmt) else ()
    if not isinstance(stmt, ast.SelectStmt) or stmt.fromClause or len(targets) != 1:
        return None
    node = targets[0].val
    negative = False
    if isinstance(node, ast.A_Expr) and node.lexpr is None:
        # -4.5::numeric is -(4.5::numeric): a unary minus on the cast constant
        if [getattr(n, "sval", None) for n in node.name or ()] != ["-"]:
            return None
        negative, node = True, node.rexpr
    if isinstance(node, ast.TypeCast):
        node = node.arg
    if not isinstance(node, ast.A_Const) or node.isnull:
        return None
    val = node.val
    if isinstance(val, ast.String):
        text = str(val.sval)
    elif isinstance(val, ast.Integer):
        text = str(val.ival)
    elif isinstance(val, ast.Float):
        text = str(val.fval)
    elif isinstance(val, ast.Boolean):
        text = "true" if val.boolval else "false"
    else:
        return None
    return f"-{text}" if negative else text


def values_by_param(text: str, observed: list[tuple[int, str, int]]) -> dict[int, list[str]]:
    """``{n: values, most frequent first}`` for the ``$n`` of ``text`` that pg_qualstats saw."""
    counts: dict[int, Counter[str]] = {}
    for position, constvalue, occurrences in observed:
        found = PARAM_AT.match(text, position) if 0 <= position < len(text) else None
        if found is None:
            continue
        value = literal_value(constvalue)
        if value is not None:
            counts.setdefault(int(found.group(1)), Counter())[value] += occurrences
    return {n: [v for v, _ in c.most_common(MAX_VALUES)] for n, c in counts.items()}


def renumbered(values: dict[int, list[str]], renumber: dict[int, int] | None) -> dict[int, list[str]]:
    """``values`` in the numbering of the rewritten statement (grammar constants put back: see
    asymm.advisor.constants.renumbering); parameters that became constants are dropped."""
    if renumber is None:
        return values
    return {renumber[n]: v for n, v in values.items() if n in renumber}


def typical(values: list[str]) -> str:
    """The median of observed values: numerically when every one is a number, else in text order
    (ISO dates and timestamps, as pg_qualstats prints them, sort right as text).  The median, not
    the most frequent: a range's two bounds are observed apart, and their medians keep a typical
    width where two most frequent bounds of different calls could cross."""
    try:
        ordered = sorted(values, key=float)
    except ValueError:
        ordered = sorted(values)
    return ordered[len(ordered) // 2]
