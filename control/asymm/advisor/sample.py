"""Price an index HypoPG refuses (GIN) by building the real one on a bounded sample copy of its table.

Why: HypoPG 1.3 cannot simulate GIN, so a ``jsonb @>`` or array-containment statement had no
priced candidate and stayed a full scan.  Here the planner prices a real index instead, on a copy
of at most :data:`SAMPLE_ROWS` rows: each statement that asks for the candidate is planned against
the copy without and with the index, and the full-table cost is scaled by that ratio (capped at 1);
the index's size on the copy is scaled by the table's rows.  docs/advisor.md, "Indexes HypoPG
cannot simulate", says what the ratio does and does not capture.

Safety, in order of the steps:

* Everything happens in ONE transaction that is always rolled back (``force_rollback``): the temp
  copy, its indexes and the grants on it never outlive it, on success, on error, or on an interrupt
  (a dropped connection aborts it too).  HypoPG's hypothetical indexes live in backend memory and
  survive the rollback, so the what-if session around it is untouched.
* The copy is read with the advisor's own rights (a plain ``SELECT``): a table it may not read,
  or one under row-level security (a copy without the policies would plan differently), is not
  sampled and its candidate stays unverified with the reason.  Tables with a column of a type from
  outside pg_catalog are not sampled either: ANALYZE and CREATE INDEX on the copy would run that
  type's functions with the advisor's rights.
* Statements are planned as their author by ``asymm._explain_as``, as every what-if plan is.  The
  author gets on the copy exactly the column privileges it has on the original
  (``has_column_privilege``), so a statement it could not plan there fails here as well.  The table
  reference is retargeted on the parse tree (pglast) and deparsed, never by editing text.
* search_path is pinned to ``pg_catalog, pg_temp`` inside the transaction; every name is quoted.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg import sql

from asymm.advisor.candidates import Candidate
from asymm.advisor.catalog import Table


class Prepared(Protocol):
    """What this module needs of :class:`asymm.advisor.whatif.Prepared` (whatif imports this module)."""

    name: str
    rewritten: Any  # asymm.advisor.rewrite.Rewritten: .tree is the statement's parse tree
    param_types: list[str]
    values: list[str | None]
    mode: str
    author: int


log = logging.getLogger("asymm.advisor")

SAMPLE_ROWS = 100_000  # rows in a copy: a GIN build on it takes well under a second
MAX_SAMPLED = 6  # candidates priced this way per run, most called first (each costs one index build)
COPY_NAME = "asymm_sample_copy"
SAMPLE_EXPLAIN_AS = "SELECT asymm._explain_as(%s, %s, %s::text[], %s::text[])"
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")
TABLE_PRIVILEGES = ("DELETE", "TRUNCATE")


@dataclass
class SamplePrice:
    """What the copy said about one candidate."""

    factors: dict[str, float]  # Prepared.name -> copy cost with the index / without (capped at 1)
    used: frozenset[str]  # the statements (Prepared.name) whose copy plan used the index
    size_bytes: int  # the index's size on the copy x table rows / copy rows
    copy_rows: int
    table_rows: int
    notes: list[str] = field(default_factory=list)  # statements that could not be planned on the copy

    @property
    def estimate(self) -> str:
        return f"real index on a sample copy ({self.copy_rows} of {self.table_rows} rows), planner cost scaled"


@dataclass
class SampleRun:
    """One copy of one table: how long it took (reported in the advise JSON)."""

    table: str
    copy_rows: int
    table_rows: int
    candidates: int
    seconds: float


def retarget(tree: Any, catalog: Any, table: Table, name: str = COPY_NAME) -> str | None:
    """The statement's SQL with every reference to ``table`` replaced by ``pg_temp.<name>``.

    The reference keeps its visible name as an alias (``FROM docs`` becomes ``FROM
    pg_temp.asymm_sample_copy AS docs``), so column references qualified by the table still
    resolve.  None when the statement does not reference the table.  Names are resolved the way
    :mod:`asymm.advisor.analysis` resolved them (``Catalog.table``); a WITH query named like the
    table shadows it and is left alone.
    """
    from pglast import ast as typed_ast
    from pglast.stream import RawStream

    pg_ast: Any = typed_ast
    root = copy.deepcopy(tree)
    ctes: set[str] = set()
    changed = False

    def collect(node: Any) -> None:
        if isinstance(node, pg_ast.CommonTableExpr) and node.ctename:
            ctes.add(node.ctename)
        for child in _children(node, pg_ast):
            collect(child)

    def swap(node: Any) -> None:
        nonlocal changed
        if isinstance(node, pg_ast.RangeVar) and not (node.schemaname is None and node.relname in ctes):
            found = catalog.table(node.schemaname, node.relname)
            if found is not None and found.oid == table.oid:
                if node.alias is None:
                    node.alias = pg_ast.Alias(aliasname=node.relname)
                node.schemaname = "pg_temp"
                node.relname = name
                node.catalogname = None
                changed = True
                return
        for child in _children(node, pg_ast):
            swap(child)

    collect(root)
    swap(root)
    return str(RawStream()(root)) if changed else None


def _children(node: Any, pg_ast: Any) -> list[Any]:
    if isinstance(node, tuple | list):
        return list(node)
    if isinstance(node, pg_ast.Node):
        return [v for slot in node.__slots__ if isinstance(v := getattr(node, slot, None), pg_ast.Node | tuple | list)]
    return []


def refusal(conn: psycopg.Connection[Any], table: Table) -> str | None:
    """Why ``table`` may not be copied by this role (None: it may)."""
    row = conn.execute(
        "SELECT pg_catalog.has_table_privilege(c.oid, 'SELECT'), c.relrowsecurity,"
        "       (SELECT pg_catalog.string_agg(pg_catalog.format('%%I %%s', a.attname,"
        "                                     pg_catalog.format_type(a.atttypid, a.atttypmod)), ', ')"
        "          FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
        "         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        "           AND t.typnamespace <> 'pg_catalog'::pg_catalog.regnamespace)"
        "  FROM pg_catalog.pg_class c WHERE c.oid = %s",
        (table.oid,),
    ).fetchone()
    if row is None:
        return f"table {table.qualified} is gone"
    if not row[0]:
        return f"the advisor's role may not read {table.qualified} (SELECT denied), so it builds no sample copy"
    if row[1]:
        return f"{table.qualified} has row-level security: a copy without its policies would plan differently"
    if row[2]:
        return (
            f"{table.qualified} has columns of types defined outside pg_catalog ({row[2]}): "
            "building on a copy would run their functions with the advisor's rights"
        )
    return None


def price_table(
    conn: psycopg.Connection[Any],
    catalog: Any,
    table: Table,
    wanted: Mapping[Candidate, Sequence[Prepared]],
    max_rows: int = SAMPLE_ROWS,
) -> tuple[dict[Candidate, SamplePrice | str], SampleRun | None]:
    """Price every candidate in ``wanted`` (all on ``table``) for the statements that ask for it.

    Returns, per candidate, its :class:`SamplePrice` or the reason it could not be priced, and
    the copy's timing (None when no copy was made).
    """
    refused = refusal(conn, table)
    if refused is not None:
        return dict.fromkeys(wanted, refused), None
    started = time.monotonic()
    out: dict[Candidate, SamplePrice | str] = {}
    try:
        with conn.transaction(force_rollback=True):
            copy_rows, table_rows = _build_copy(conn, table, max_rows)
            authors = {p.author for ps in wanted.values() for p in ps}
            for author in authors:
                _mirror_grants(conn, table, author)
            targets: dict[str, tuple[Prepared, str | None]] = {}
            for prepared in {p.name: p for ps in wanted.values() for p in ps}.values():
                targets[prepared.name] = (prepared, retarget(prepared.rewritten.tree, catalog, table))
            without = {name: _plan(conn, p, text) for name, (p, text) in targets.items()}
            for cand, statements in wanted.items():
                out[cand] = _price_one(conn, cand, statements, targets, without, copy_rows, table_rows)
    except psycopg.Error as exc:
        message = (exc.diag.message_primary or str(exc)).strip()
        reason = f"the sample copy of {table.qualified} failed: {message}"
        return dict.fromkeys(wanted, reason), None
    run = SampleRun(table.qualified, copy_rows, table_rows, len(wanted), round(time.monotonic() - started, 3))
    log.info(
        "advisor: priced %d candidates on a copy of %s (%d of %d rows) in %.2f s",
        len(wanted),
        table.qualified,
        copy_rows,
        table_rows,
        run.seconds,
    )
    return out, run


def _build_copy(conn: psycopg.Connection[Any], table: Table, max_rows: int) -> tuple[int, int]:
    """Create and ANALYZE ``pg_temp.<COPY_NAME>``: at most ``max_rows`` rows, sampled row by row.

    BERNOULLI, not SYSTEM: SYSTEM takes whole pages, and rows written together (one tenant's, one
    day's) would come in clumps and skew the copy's statistics.  The percentage asks for 10 % more
    rows than needed and LIMIT cuts; a table no larger than ``max_rows`` is copied whole.  The
    table's plain-column indexes (with operator classes of pg_catalog or of an extension, such as
    pg_trgm's: no code of the table's owner runs) are built on the copy too, so the cost
    "without" the candidate is what the statement costs with the indexes it has today.
    """
    conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")
    source = sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))
    reltuples = max(table.reltuples, 0.0)
    if reltuples > max_rows:
        percent = min(100.0, 110.0 * max_rows / reltuples)
        sample = sql.SQL("TABLESAMPLE BERNOULLI ({})").format(sql.Literal(round(percent, 6)))
    else:
        sample = sql.Composed([])
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} AS SELECT * FROM {} {} LIMIT {}").format(
            sql.Identifier(COPY_NAME), source, sample, sql.Literal(max_rows)
        )
    )
    target = sql.SQL("pg_temp.{}").format(sql.Identifier(COPY_NAME))
    for (definition,) in conn.execute(
        "SELECT pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i"
        " WHERE i.indrelid = %s AND i.indisvalid AND i.indisready AND i.indexprs IS NULL AND i.indpred IS NULL"
        "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_opclass o WHERE o.oid = ANY (i.indclass)"
        "                      AND o.opcnamespace <> 'pg_catalog'::pg_catalog.regnamespace"
        "                      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
        "                                       WHERE d.classid = 'pg_catalog.pg_opclass'::pg_catalog.regclass"
        "                                         AND d.objid = o.oid AND d.deptype = 'e'))",
        (table.oid,),
    ).fetchall():
        statement = _index_on_copy(str(definition))
        if statement is not None:
            conn.execute(statement)
    conn.execute(sql.SQL("ANALYZE {}").format(target))
    row = conn.execute(sql.SQL("SELECT pg_catalog.count(*) FROM {}").format(target)).fetchone()
    copy_rows = int(row[0]) if row else 0
    return copy_rows, max(int(reltuples), copy_rows)


def _index_on_copy(definition: str) -> str | None:
    """An existing index's definition (``pg_get_indexdef``) retargeted, on its parse tree, to the copy."""
    import pglast
    from pglast import ast as typed_ast
    from pglast.stream import RawStream

    pg_ast: Any = typed_ast
    try:
        stmt = pglast.parse_sql(definition)[0].stmt
    except pglast.parser.ParseError:
        return None
    if not isinstance(stmt, pg_ast.IndexStmt):
        return None
    stmt.idxname = None
    stmt.relation = pg_ast.RangeVar(schemaname="pg_temp", relname=COPY_NAME, inh=True, relpersistence="t")
    return str(RawStream()(stmt))


def _mirror_grants(conn: psycopg.Connection[Any], table: Table, author: int) -> None:
    """Grant ``author`` on the copy exactly the privileges it has on ``table``, column by column."""
    row = conn.execute("SELECT rolname FROM pg_catalog.pg_roles WHERE oid = %s", (author,)).fetchone()
    me = conn.execute("SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user").fetchone()
    if row is None or (me is not None and int(str(me[0])) == author):
        return  # the copy's owner: no grant needed (and its rights on the original were checked)
    role = sql.Identifier(str(row[0]))
    target = sql.SQL("pg_temp.{}").format(sql.Identifier(COPY_NAME))
    for privilege in TABLE_PRIVILEGES:
        allowed = conn.execute("SELECT pg_catalog.has_table_privilege(%s, %s, %s)", (author, table.oid, privilege))
        if (found := allowed.fetchone()) and found[0]:
            conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), target, role))
    for attname, privileges in conn.execute(
        "SELECT a.attname, ARRAY(SELECT p FROM pg_catalog.unnest(%s::text[]) p"
        "                         WHERE pg_catalog.has_column_privilege(%s, a.attrelid, a.attnum, p))"
        "  FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (list(COLUMN_PRIVILEGES), author, table.oid),
    ).fetchall():
        for privilege in privileges:
            if privilege in COLUMN_PRIVILEGES:  # one of ours, so safe as SQL text
                conn.execute(
                    sql.SQL("GRANT {} ({}) ON {} TO {}").format(
                        sql.SQL(privilege), sql.Identifier(str(attname)), target, role
                    )
                )


def _plan(conn: psycopg.Connection[Any], prepared: Prepared, text: str | None) -> tuple[float, list[str]] | str:
    """(total cost, index names in the plan) of the retargeted statement, or why it failed.

    In a savepoint: a statement the author may not plan on the copy aborts only that savepoint.
    """
    if text is None:
        return "the statement does not reference the table"
    values = prepared.values if prepared.mode == "custom" else None
    try:
        with conn.transaction():
            row = conn.execute(SAMPLE_EXPLAIN_AS, (prepared.author, text, prepared.param_types, values)).fetchone()
    except psycopg.Error as exc:
        return (exc.diag.message_primary or str(exc)).strip()
    assert row is not None
    doc = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    plan = doc["plan"][0]["Plan"]
    return float(plan["Total Cost"]), _index_names(plan)


def _price_one(
    conn: psycopg.Connection[Any],
    cand: Candidate,
    statements: Sequence[Prepared],
    targets: dict[str, tuple[Prepared, str | None]],
    without: dict[str, tuple[float, list[str]] | str],
    copy_rows: int,
    table_rows: int,
) -> SamplePrice | str:
    """Build ``cand`` on the copy, plan its statements, drop it again (still inside the transaction)."""
    index_name = "asymm_sample_index"
    conn.execute(
        sql.SQL("CREATE INDEX {} ON pg_temp.{} USING {} ({})").format(
            sql.Identifier(index_name),
            sql.Identifier(COPY_NAME),
            sql.Identifier(cand.method),
            sql.SQL(cand.key_sql()),  # the candidate's own keys: quoted columns and a pg_catalog opclass
        )
    )
    row = conn.execute(
        "SELECT pg_catalog.pg_relation_size(c.oid) FROM pg_catalog.pg_class c"
        " WHERE c.relname = %s AND c.relnamespace = pg_catalog.pg_my_temp_schema()",
        (index_name,),
    ).fetchone()
    copy_size = int(row[0]) if row else 0
    factors: dict[str, float] = {}
    used: set[str] = set()
    notes: list[str] = []
    for prepared in statements:
        before = without[prepared.name]
        after = _plan(conn, prepared, targets[prepared.name][1])
        if isinstance(before, str) or isinstance(after, str):
            notes.append(f"{prepared.name}: {before if isinstance(before, str) else after}")
            continue
        factors[prepared.name] = min(1.0, after[0] / before[0]) if before[0] > 0 else 1.0
        if index_name in after[1]:
            used.add(prepared.name)
    conn.execute(sql.SQL("DROP INDEX pg_temp.{}").format(sql.Identifier(index_name)))
    if not factors:
        return "no statement asking for it could be planned on the sample copy (" + "; ".join(notes) + ")"
    size = int(copy_size * table_rows / copy_rows) if copy_rows else copy_size
    return SamplePrice(factors, frozenset(used), size, copy_rows, table_rows, notes)


def _index_names(plan: dict[str, Any]) -> list[str]:
    names = [plan["Index Name"]] if "Index Name" in plan else []
    for child in plan.get("Plans", ()):
        names.extend(_index_names(child))
    return names
