"""Turn a normalized ``pg_stat_statements`` text into something the server can PREPARE.

Why: normalization replaces every constant with ``$n``, which breaks constructs whose constant is
part of the grammar (``date '...'``, ``EXTRACT(year FROM d)``); those are repaired on the token
stream and parameters typed from the parse tree (docs/advisor.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pglast
from pglast import ast, parser

from asymm.advisor.analysis import Analysis, analyze
from asymm.advisor.catalog import Catalog
from asymm.advisor.constants import substitute

# Type names that may precede a string literal (``date '...'``) and so end up as ``date $n``.
TYPE_WORDS = {
    "date": "date",
    "interval": "interval",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "time": "time",
    "timetz": "timetz",
    "numeric": "numeric",
    "int": "integer",
    "integer": "integer",
    "bigint": "bigint",
    "smallint": "smallint",
    "text": "text",
    "varchar": "varchar",
    "uuid": "uuid",
    "json": "json",
    "jsonb": "jsonb",
    "inet": "inet",
    "bool": "boolean",
    "boolean": "boolean",
    "real": "real",
    "float": "double precision",
    "money": "money",
    "bytea": "bytea",
    "point": "point",
}
ZONE_TYPES = {"timestamp": "timestamptz", "time": "timetz"}
PARAM_RE = re.compile(r"\$(\d+)")


@dataclass
class Rewritten:
    """A statement ready for PREPARE: text, one type per parameter (``unknown`` = server infers)."""

    text: str
    param_types: list[str]
    tree: Any
    analysis: Analysis
    repairs: list[str] = field(default_factory=list)


class Unplannable(Exception):
    """Raised with the reason a statement cannot be planned (it goes to ``skipped``)."""


def repair_tokens(text: str) -> tuple[str, dict[int, str], list[str]]:
    """Fix grammar broken by normalization; returns (text, forced parameter types, repairs made)."""
    try:
        tokens = parser.scan(text)
    except pglast.parser.ParseError as exc:  # pragma: no cover - the scanner accepts almost anything
        raise Unplannable(f"cannot tokenize: {exc}") from None
    forced: dict[int, str] = {}
    repairs: list[str] = []
    edits: list[tuple[int, int, str]] = []  # (start, end inclusive, replacement)

    def word(i: int) -> str:
        tok = tokens[i]
        return text[tok.start : tok.end + 1].lower()

    for i, tok in enumerate(tokens):
        if tok.name != "PARAM":
            continue
        number = int(text[tok.start + 1 : tok.end + 1])
        # <type> $n  and  timestamp|time with[out] time zone $n
        if i >= 1:
            prev = word(i - 1)
            start = tokens[i - 1].start
            type_name = TYPE_WORDS.get(prev)
            if prev == "zone" and i >= 4 and word(i - 2) == "time" and word(i - 3) in ("with", "without"):
                base = word(i - 4)
                if base in ZONE_TYPES:
                    type_name = ZONE_TYPES[base] if word(i - 3) == "with" else base
                    start = tokens[i - 4].start
            if type_name is not None and not (i >= 2 and word(i - 2) == "."):
                edits.append((start, tok.end, f"(${number}::{type_name})"))
                forced[number] = type_name
                repairs.append(f"{prev} ${number} -> ${number}::{type_name}")
                continue
        # EXTRACT($n FROM ...): the field is grammar; any field gives the same plan.
        if i >= 2 and word(i - 1) == "(" and word(i - 2) == "extract" and i + 1 < len(tokens) and word(i + 1) == "from":
            edits.append((tok.start, tok.end, "epoch"))
            forced[number] = "text"
            repairs.append(f"EXTRACT(${number} FROM ...) -> EXTRACT(epoch FROM ...)")
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end + 1 :]
    return text, forced, repairs


def rewrite(query: str, catalog: Catalog, constants: dict[int, str] | None = None) -> Rewritten:
    """Make ``query`` plannable or raise :class:`Unplannable` with the reason.

    ``constants``: grammar constants normalization took (:mod:`asymm.advisor.constants`), put back
    first so that ``payload->>$2`` is analysed as the key ``payload->>'session'``.
    """
    query = query.strip().rstrip(";")
    if constants:
        query = substitute(query, constants)
    text, forced, repairs = repair_tokens(query)
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError as exc:
        raise Unplannable(f"syntax error after repairs: {exc}") from None
    if len(statements) != 1:
        raise Unplannable(f"{len(statements)} statements in one entry")
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt | ast.UpdateStmt | ast.DeleteStmt | ast.InsertStmt):
        raise Unplannable(f"utility statement ({type(stmt).__name__}) has no plan to improve")
    if isinstance(stmt, ast.SelectStmt) and stmt.intoClause is not None:
        raise Unplannable("SELECT INTO creates a table")
    analysis = analyze(stmt, catalog)
    if not analysis.tables and not analysis.write_table:
        if analysis.unresolved:
            raise Unplannable(f"relation not found in this database: {', '.join(sorted(set(analysis.unresolved)))}")
        raise Unplannable("reads no table of this database")
    count = max((int(m) for m in PARAM_RE.findall(text)), default=0)
    count = max(count, *forced, 0) if forced else count
    types: list[str] = []
    present = {int(m) for m in PARAM_RE.findall(text)}
    for number in range(1, count + 1):
        if number not in present and number not in forced:
            # a gap in the numbering (a constant normalization folded away): nothing uses it, any
            # type will do, and left unknown it would fail the whole statement
            types.append("text")
        elif number in forced:
            types.append(forced[number])
        elif number in analysis.params and analysis.params[number].type:
            types.append(str(analysis.params[number].type))
        else:
            types.append("unknown")
    return Rewritten(text=text, param_types=types, tree=stmt, analysis=analysis, repairs=repairs)


FALLBACK_ATTEMPTS = 4


def fallback_types(rw: Rewritten, attempt: int) -> list[str] | None:
    """Types for a retry after the server could not infer them (``None``: nothing left to try).

    Parameters used in arithmetic get the type their other operand asks for when analysis knows
    it (``current_date + $n``: integer, ``now() - $n``: interval), else ``integer`` at attempts
    1 and 3 and ``interval`` at attempts 2 and 4; attempts 3 and 4 also give every other still
    unknown parameter ``text`` (an unused ``$5``, a value in a VALUES list), keeping the
    arithmetic ones typed: text there would fail again (``date + text``).
    """
    types = list(rw.param_types)
    arith = [n for n in sorted(rw.analysis.arith_params) if n <= len(types) and types[n - 1] == "unknown"]
    others = [n for n in range(1, len(types) + 1) if types[n - 1] == "unknown" and n not in arith]
    if attempt not in range(1, FALLBACK_ATTEMPTS + 1):
        return None
    with_text = attempt >= 3
    if (with_text and not others) or (not arith and attempt != 3):
        return None
    default = "integer" if attempt in (1, 3) else "interval"
    for n in arith:
        types[n - 1] = rw.analysis.arith_types.get(n, default)
    for n in others if with_text else ():
        types[n - 1] = "text"
    return types
