"""Grammar constants: the constants normalization took from an expression key (issue 18).

pg_stat_statements replaces every constant with ``$n``, so ``payload->>'session' = $1`` reaches
the advisor as ``payload->>$2 = $1``: the key ``(payload->>'session')`` a DBA would index is gone.
The constant is part of the expression's *shape*, not a compared value, and can be recovered from
the raw text of a session that ran the statement (``pg_stat_activity.query``, matched by
``query_id``).  Only constants in such grammar positions are kept (a jsonb key, the unit of
``date_trunc``): compared values (``= 'alice'``, IN lists, LIMIT) may be sensitive data and are
never stored.  A raw text is used only when its parse tree is the normalized one's with constants
where the latter has parameters; otherwise nothing is stored.

The stored constants go back into the statement as parse-tree nodes re-rendered by pglast (never
pasted text), and the remaining parameters are renumbered (:func:`substitute`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pglast
import psycopg
from pglast import ast as _ast
from pglast import enums as _enums
from pglast.stream import RawStream

from asymm.db import extension_schema
from asymm.sqlparse import children as _children
from asymm.sqlparse import param_number, param_numbers

ast: Any = _ast
enums: Any = _enums

# Operators whose right operand is a key into the left one (jsonb, hstore): the key is grammar.
ACCESS_OPS = frozenset({"->", "->>", "#>", "#>>"})
# Comparisons: a side that reads a column is a key whose grammar constants matter.
COMPARISONS = frozenset({"=", "<", ">", "<=", ">=", "<>", "!=", "~~", "~~*", "!~~", "!~~*", "@>", "<@", "?", "&&"})
MAX_CONSTANT_CHARS = 200
# Fields that differ between two texts of one statement (positions in the text), never compared.
POSITION_FIELDS = ("location", "stmt_location", "stmt_len", "rexpr_list_start", "rexpr_list_end")
SAMPLE_LIMIT = 50


# -- which parameters are grammar ----------------------------------------------------------------


def _has_column(node: Any) -> bool:
    if isinstance(node, ast.ColumnRef):
        return True
    if isinstance(node, ast.SubLink):
        return False
    return any(_has_column(child) for child in _children(node))


def _grammar_in_key(node: Any, out: set[int]) -> None:
    """Parameters of ``node`` (an expression key) that are part of its shape."""
    if isinstance(node, ast.SubLink):
        return
    if isinstance(node, ast.FuncCall) and node.over is None and not node.agg_star:
        args = list(node.args or ())
        for i, arg in enumerate(args):
            number = param_number(arg)
            if number is not None and any(_has_column(other) for j, other in enumerate(args) if j != i):
                out.add(number)
    elif isinstance(node, ast.A_Expr) and node.kind == enums.A_Expr_Kind.AEXPR_OP and node.name:
        number = param_number(node.rexpr)
        if node.name[-1].sval in ACCESS_OPS and number is not None and _has_column(node.lexpr):
            out.add(number)
    for child in _children(node):
        _grammar_in_key(child, out)


def _keys(node: Any) -> Iterator[Any]:
    """Every expression the statement compares, sorts or groups by (the sides that read a column)."""
    if isinstance(node, ast.A_Expr):
        op = node.name[-1].sval if node.name else ""
        if node.kind == enums.A_Expr_Kind.AEXPR_OP and op in COMPARISONS:
            for side in (node.lexpr, node.rexpr):
                if side is not None and _has_column(side):
                    yield side
        elif node.kind in (
            enums.A_Expr_Kind.AEXPR_IN,
            enums.A_Expr_Kind.AEXPR_BETWEEN,
            enums.A_Expr_Kind.AEXPR_NOT_BETWEEN,
            enums.A_Expr_Kind.AEXPR_LIKE,
            enums.A_Expr_Kind.AEXPR_ILIKE,
            enums.A_Expr_Kind.AEXPR_OP_ANY,
            enums.A_Expr_Kind.AEXPR_OP_ALL,
        ) and _has_column(node.lexpr):
            yield node.lexpr
    elif isinstance(node, ast.NullTest) and _has_column(node.arg):
        yield node.arg
    elif isinstance(node, ast.SelectStmt):
        targets = [t.val for t in node.targetList or () if isinstance(t, ast.ResTarget)]
        ordered = [s.node for s in node.sortClause or () if isinstance(s, ast.SortBy)]
        for item in [*ordered, *(node.groupClause or ())]:
            if isinstance(item, ast.A_Const) and isinstance(item.val, ast.Integer):
                if 1 <= item.val.ival <= len(targets):  # GROUP BY 1: the first output column
                    yield targets[item.val.ival - 1]
            elif _has_column(item):
                yield item
    for child in _children(node):
        yield from _keys(child)


def grammar_params(stmt: Any) -> set[int]:
    """The ``$n`` of a normalized statement that stand for a grammar constant of a key."""
    out: set[int] = set()
    for key in _keys(stmt):
        _grammar_in_key(key, out)
    return out


# -- matching a raw text to its normalized text ----------------------------------------------------


class _Mismatch(Exception):
    pass


def _fields(node: Any) -> list[str]:
    return [name for name in type(node).__slots__ if name not in POSITION_FIELDS]


def _walk(raw: Any, norm: Any, found: dict[int, Any]) -> None:
    if isinstance(norm, ast.ParamRef):
        if isinstance(raw, ast.A_Const):
            if found.setdefault(int(norm.number), raw) is not raw and RawStream()(found[norm.number]) != RawStream()(
                raw
            ):
                raise _Mismatch  # one $n, two different constants
            return
        if isinstance(raw, ast.ParamRef) and raw.number == norm.number:
            return
        raise _Mismatch
    if isinstance(norm, ast.Node):
        if type(raw) is not type(norm):
            raise _Mismatch
        for name in _fields(norm):
            _walk(getattr(raw, name), getattr(norm, name), found)
        return
    if isinstance(norm, list | tuple):
        if not isinstance(raw, list | tuple) or len(raw) != len(norm):
            raise _Mismatch
        for a, b in zip(raw, norm, strict=True):
            _walk(a, b, found)
        return
    if raw != norm:
        raise _Mismatch


def _one_statement(text: str) -> Any | None:
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return None
    return statements[0].stmt if len(statements) == 1 else None


def match(raw_text: str, normalized_text: str) -> dict[int, str]:
    """``{n: literal}`` for the grammar parameters of ``normalized_text``, read from ``raw_text``.

    Empty when the two parse trees are not the same statement (a truncated or different raw text)
    or no grammar parameter has a plain literal behind it.  Only grammar positions are returned:
    a compared value never leaves this function.
    """
    norm = _one_statement(normalized_text)
    raw = _one_statement(raw_text)
    if norm is None or raw is None:
        return {}
    wanted = grammar_params(norm)
    if not wanted:
        return {}
    found: dict[int, Any] = {}
    try:
        _walk(raw, norm, found)
    except _Mismatch:
        return {}
    out: dict[int, str] = {}
    for number in sorted(wanted):
        const = found.get(number)
        if const is None or const.isnull or not isinstance(const.val, ast.String | ast.Integer | ast.Float):
            continue
        literal = str(RawStream()(const))
        if len(literal) <= MAX_CONSTANT_CHARS and literal_node(literal) is not None:
            out[number] = literal
    return out


# -- putting constants back ------------------------------------------------------------------------


def literal_node(literal: str) -> Any | None:
    """The A_Const ``literal`` parses to, or None when it is anything but one plain literal."""
    stmt = _one_statement(f"SELECT {literal}")
    if not isinstance(stmt, ast.SelectStmt) or stmt.fromClause or len(stmt.targetList or ()) != 1:
        return None
    value = stmt.targetList[0].val
    if not isinstance(value, ast.A_Const) or value.isnull:
        return None
    if not isinstance(value.val, ast.String | ast.Integer | ast.Float):
        return None
    return value


def _replace(node: Any, consts: dict[int, Any], renumber: dict[int, int]) -> Any:
    if isinstance(node, ast.ParamRef):
        number = int(node.number)
        if number in consts:
            return consts[number]
        return ast.ParamRef(number=renumber[number], location=node.location)
    if isinstance(node, ast.Node):
        for name in type(node).__slots__:
            value = getattr(node, name)
            if isinstance(value, ast.Node | list | tuple):
                setattr(node, name, _replace(value, consts, renumber))
        return node
    if isinstance(node, list | tuple):
        return type(node)(_replace(item, consts, renumber) for item in node)
    return node


def _substitution(query: str, constants: dict[int, str]) -> tuple[Any, dict[int, Any], dict[int, int]] | None:
    """(statement tree, {n: A_Const} to put back, {old n: new n} for the rest), or None when
    nothing applies or the text does not parse."""
    if not constants:
        return None
    stmt = _one_statement(query)
    if stmt is None:
        return None
    grammar = grammar_params(stmt)
    consts = {}
    for number, literal in constants.items():
        node = literal_node(literal)
        if number in grammar and node is not None:
            consts[number] = node
    if not consts:
        return None
    remaining = sorted(set(param_numbers(stmt)) - set(consts))
    return stmt, consts, {old: new for new, old in enumerate(remaining, start=1)}


def substitute(query: str, constants: dict[int, str]) -> str:
    """``query`` with its grammar parameters replaced by their stored literals, the rest renumbered.

    Each literal is parsed back to an A_Const (anything else is ignored) and the statement is
    re-rendered from its tree: no stored text is ever pasted into SQL.  Only parameters that are
    grammar positions of ``query`` itself are replaced; the text comes back unchanged when nothing
    applies or it does not parse.
    """
    found = _substitution(query, constants)
    if found is None:
        return query
    stmt, consts, renumber = found
    return str(RawStream()(_replace(stmt, consts, renumber)))


def renumbering(query: str, constants: dict[int, str]) -> dict[int, int] | None:
    """``{old n: new n}`` of the parameters :func:`substitute` keeps (None: it changes nothing)."""
    found = _substitution(query, constants)
    return None if found is None else found[2]


# -- the sampler -----------------------------------------------------------------------------------


def stored_constants(conn: psycopg.Connection[Any]) -> dict[int, dict[int, str]]:
    """``{queryid: {n: literal}}`` of this database (empty when the table is not there or not readable)."""
    # CASE, not AND: has_table_privilege raises on a missing table (an install older than 0.3.0)
    row = conn.execute(
        "SELECT CASE WHEN to_regclass('asymm.query_constants') IS NOT NULL"
        "  THEN pg_catalog.has_table_privilege('asymm.query_constants', 'SELECT') ELSE false END"
    ).fetchone()
    if not (row and row[0]):
        return {}
    rows = conn.execute(
        "SELECT queryid, constants FROM asymm.query_constants"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchall()
    out: dict[int, dict[int, str]] = {}
    for queryid, constants in rows:
        doc = json.loads(constants) if isinstance(constants, str) else dict(constants)
        out[int(queryid)] = {int(k): str(v) for k, v in doc.items()}
    return out


def sample_constants(
    conn: psycopg.Connection[Any], *, limit: int = SAMPLE_LIMIT, exclude: set[int] | None = None
) -> dict[str, Any]:
    """Read the grammar constants of statements visible now in pg_stat_activity; store new ones.

    Bounded: at most ``limit`` statements of this database that run (or were last run) in another
    session now, whose normalized text has a parameter and whose constants are not stored yet.
    Needs pg_read_all_stats (or the same role) to see other sessions' texts.  ``exclude``: queryids
    not to look at again (the daemon's tried ones that gave nothing).  Returns the counts and the
    queryids looked at (``tried``) and stored.

    Why pg_stat_activity first: it is cheap, and usually every statement it shows is stored or
    tried already, so nothing else is read.  The normalized texts come from asymm.queries (what the
    telemetry snapshot recorded) and only the missing ones from pg_stat_statements, which reads its
    whole text file on each call.
    """
    home = extension_schema(conn, "pg_stat_statements")
    if home is None or conn.execute("SELECT to_regclass('asymm.query_constants')").fetchone() in (None, (None,)):
        return {"seen": 0, "stored": 0, "tried": []}
    visible = conn.execute(
        "SELECT DISTINCT ON (a.query_id) a.query_id, a.query, a.state = 'idle'"
        "  FROM pg_catalog.pg_stat_activity a"
        " WHERE a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        "   AND a.pid <> pg_catalog.pg_backend_pid() AND a.query_id IS NOT NULL"
        "   AND NOT (a.query_id = ANY(%s))"
        "   AND NOT EXISTS (SELECT 1 FROM asymm.query_constants c WHERE c.dbid = a.datid AND c.queryid = a.query_id)"
        " ORDER BY a.query_id, a.state = 'idle' DESC LIMIT %s",
        (sorted(exclude or ()), limit),
    ).fetchall()
    if not visible:
        return {"seen": 0, "stored": 0, "tried": []}
    ids = [int(r[0]) for r in visible]
    texts: dict[int, str] = {}
    if conn.execute("SELECT has_table_privilege('asymm.queries', 'SELECT')").fetchone() == (True,):
        texts.update(
            conn.execute(
                "SELECT DISTINCT ON (queryid) queryid, query FROM asymm.queries"
                " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                "   AND queryid = ANY(%s) AND query IS NOT NULL",
                (ids,),
            ).fetchall()
        )
    missing = [q for q in ids if q not in texts]
    if missing:
        texts.update(
            conn.execute(
                psycopg.sql.SQL(
                    "SELECT DISTINCT ON (queryid) queryid, query FROM {}.pg_stat_statements"
                    " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    "   AND queryid = ANY(%s)"
                ).format(psycopg.sql.Identifier(str(home))),
                (missing,),
            ).fetchall()
        )
    stored = 0
    tried: list[int] = []
    for queryid, raw, idle in visible:
        normalized = texts.get(int(queryid))
        if normalized is None:
            if idle:  # finished and still not in pg_stat_statements: untracked (a utility, track = none)
                tried.append(int(queryid))
            continue
        tried.append(int(queryid))
        found = match(str(raw or ""), str(normalized)) if "$" in normalized else {}
        if not found:
            continue
        conn.execute(
            "INSERT INTO asymm.query_constants (dbid, queryid, constants)"
            " SELECT oid, %s, %s::jsonb FROM pg_database WHERE datname = current_database()"
            " ON CONFLICT DO NOTHING",
            (int(queryid), json.dumps({str(k): v for k, v in found.items()})),
        )
        stored += 1
    return {"seen": len(visible), "stored": stored, "tried": tried}
