"""The semantic data graph: what the database is made of and what uses what.

Nodes are tables, views (and materialized views), indexes, statements (from
``asymm.queries``, which the telemetry snapshot fills from pg_stat_statements, and from
pg_stat_statements itself) and Redis keyspaces (one per table tracked by ``asymm.track``).
Edges:

* ``foreign_key``   table -> referenced table (columns on both sides);
* ``view_depends``  view -> relation it reads (``pg_depend`` through the view's ``pg_rewrite``
  rule, with the columns it uses);
* ``reads`` / ``writes``  statement -> relation, found by parsing the statement with pglast
  (INSERT/UPDATE/DELETE/MERGE targets are writes; every other relation it names is a read);
* ``index_of``      index -> its table (with the indexed columns, expressions included);
* ``synced_to``     table -> its Redis keyspace.

Why built from the catalog on demand rather than stored: the catalog is the truth and changes
with every DDL; building the graph for a few hundred objects takes milliseconds, a stored copy
would need invalidation.  Statement-to-column links are a pglast approximation: a column
reference counts for a relation of the statement that has a column of that name (aliases and
qualifiers are honoured when present), which is what impact analysis needs ("which statements
may break if this column goes").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pglast
import psycopg
from pglast import ast
from pglast.visitors import Visitor

from asymm.db import session_search_path
from asymm.errors import AsymmError

EXCLUDED_SCHEMAS = ("pg_catalog", "information_schema", "asymm", "pg_toast")
MAX_QUERIES = 300  # the heaviest statements; a graph of thousands of statements helps nobody


@dataclass
class Node:
    id: str
    kind: str  # table | view | matview | index | query | cache
    label: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "label": self.label, **self.data}


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # foreign_key | view_depends | reads | writes | index_of | synced_to
    columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "kind": self.kind, "columns": self.columns}


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    # relation oid -> node id, and relation node id -> {attnum: column name}
    by_oid: dict[int, str] = field(default_factory=dict)
    columns: dict[str, dict[int, str]] = field(default_factory=dict)

    def add(self, node: Node) -> None:
        self.nodes[node.id] = node

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for node in self.nodes.values():
            counts[node.kind] = counts.get(node.kind, 0) + 1
        edge_counts: dict[str, int] = {}
        for edge in self.edges:
            edge_counts[edge.kind] = edge_counts.get(edge.kind, 0) + 1
        return {
            "nodes": [n.as_dict() for n in sorted(self.nodes.values(), key=lambda n: (n.kind, n.id))],
            "edges": [e.as_dict() for e in sorted(self.edges, key=lambda e: (e.kind, e.source, e.target))],
            "counts": {"nodes": counts, "edges": edge_counts},
        }

    def incoming(self, target: str, kinds: tuple[str, ...] | None = None) -> list[Edge]:
        return [e for e in self.edges if e.target == target and (kinds is None or e.kind in kinds)]


def rel_id(kind: str, qualified: str) -> str:
    return f"{kind}:{qualified}"


# ---------------------------------------------------------------------------------------------
# Statement parsing


@dataclass
class StatementUse:
    """What one statement touches: relations read and written, and column references."""

    reads: set[tuple[str | None, str]] = field(default_factory=set)
    writes: set[tuple[str | None, str]] = field(default_factory=set)
    aliases: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    column_refs: set[tuple[str | None, str]] = field(default_factory=set)  # (qualifier, column)


class _Relations(Visitor):
    """Second pass: every relation named, once the write targets and CTE names are known."""

    def __init__(self, first: _Uses) -> None:
        super().__init__()
        self.first = first

    def visit_RangeVar(self, _ancestors: Any, node: Any) -> None:
        use = self.first.use
        name = (node.schemaname, node.relname)
        if node.alias is not None:
            use.aliases[node.alias.aliasname] = name
        use.aliases.setdefault(node.relname, name)
        if node.schemaname is None and node.relname in self.first.ctes:
            return
        if id(node) not in self.first.write_targets:
            use.reads.add(name)


class _Uses(Visitor):
    def __init__(self, use: StatementUse) -> None:
        super().__init__()
        self.use = use
        self.ctes: set[str] = set()
        self.write_targets: set[int] = set()

    def _name(self, node: Any) -> tuple[str | None, str]:
        return (node.schemaname, node.relname)

    def visit_CommonTableExpr(self, _ancestors: Any, node: Any) -> None:
        self.ctes.add(node.ctename)

    def _target(self, relation: Any) -> None:
        if relation is not None:
            self.write_targets.add(id(relation))
            self.use.writes.add(self._name(relation))
            if relation.alias is not None:
                self.use.aliases[relation.alias.aliasname] = self._name(relation)
            self.use.aliases.setdefault(relation.relname, self._name(relation))

    def visit_InsertStmt(self, _ancestors: Any, node: Any) -> None:
        self._target(node.relation)
        for col in node.cols or ():
            if isinstance(col, ast.ResTarget) and col.name:
                self.use.column_refs.add((node.relation.relname if node.relation else None, col.name))

    def visit_UpdateStmt(self, _ancestors: Any, node: Any) -> None:
        self._target(node.relation)
        for col in node.targetList or ():
            if isinstance(col, ast.ResTarget) and col.name:
                self.use.column_refs.add((node.relation.relname if node.relation else None, col.name))

    def visit_DeleteStmt(self, _ancestors: Any, node: Any) -> None:
        self._target(node.relation)

    def visit_MergeStmt(self, _ancestors: Any, node: Any) -> None:
        self._target(getattr(node, "relation", None))

    def visit_JoinExpr(self, _ancestors: Any, node: Any) -> None:
        for name in node.usingClause or ():
            if isinstance(name, ast.String):
                self.use.column_refs.add((None, str(name.sval)))

    def visit_ColumnRef(self, _ancestors: Any, node: Any) -> None:
        parts = [str(f.sval) if isinstance(f, ast.String) else "*" for f in node.fields
                 if isinstance(f, ast.String | ast.A_Star)]
        if not parts:
            return
        column = parts[-1]
        qualifier = parts[-2] if len(parts) >= 2 else None
        self.use.column_refs.add((qualifier, column))


def statement_uses(statement: str) -> StatementUse | None:
    """Parse ``statement`` (pg_stat_statements text, ``$1`` placeholders are fine); None if unparsable."""
    try:
        tree = pglast.parse_sql(statement)
    except Exception:  # pglast raises ParseError and, for odd inputs, others: skip the statement
        return None
    use = StatementUse()
    first = _Uses(use)
    first(tree)
    _Relations(first)(tree)
    return use


# ---------------------------------------------------------------------------------------------
# Building


def _qualified(schema: str, name: str) -> str:
    return f"{schema}.{name}"


def build(conn: psycopg.Connection[Any], *, max_queries: int = MAX_QUERIES) -> Graph:
    """The graph of the database ``conn`` is connected to (asymm installed or not)."""
    graph = Graph()
    relkinds = {"r": "table", "p": "table", "v": "view", "m": "matview", "f": "table"}
    rows = conn.execute(
        "SELECT c.oid, n.nspname, c.relname, c.relkind, c.reltuples::bigint,"
        "       coalesce((SELECT array_agg(a.attnum || ':' || a.attname ORDER BY a.attnum) FROM pg_attribute a"
        "                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}')"
        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition"
        "   AND n.nspname <> ALL (%s) AND n.nspname NOT LIKE 'pg\\_temp%%'"
        "   AND n.nspname NOT LIKE 'pg\\_toast%%'"
        "   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        "                      AND d.objid = c.oid AND d.deptype = 'e')",  # extensions' own views
        (list(EXCLUDED_SCHEMAS),)).fetchall()
    for oid, schema, name, relkind, tuples, atts in rows:
        kind = relkinds[relkind]
        qualified = _qualified(schema, name)
        node_id = rel_id(kind, qualified)
        cols = {int(a.split(":", 1)[0]): a.split(":", 1)[1] for a in atts}
        graph.add(Node(node_id, kind, qualified, {"schema": schema, "name": name, "rows": max(int(tuples), 0),
                                                   "columns": list(cols.values())}))
        graph.by_oid[int(oid)] = node_id
        graph.columns[node_id] = cols

    _foreign_keys(conn, graph)
    _view_dependencies(conn, graph)
    _indexes(conn, graph)
    _caches(conn, graph)
    _queries(conn, graph, max_queries)
    return graph


def _names(graph: Graph, node_id: str, attnums: list[int] | None) -> list[str]:
    cols = graph.columns.get(node_id, {})
    return [cols[a] for a in (attnums or []) if a in cols]


def _foreign_keys(conn: psycopg.Connection[Any], graph: Graph) -> None:
    for conname, src, dst, src_cols, dst_cols in conn.execute(
            "SELECT conname, conrelid, confrelid, conkey::int[], confkey::int[]"
            "  FROM pg_constraint WHERE contype = 'f'").fetchall():
        s, t = graph.by_oid.get(int(src)), graph.by_oid.get(int(dst))
        if s and t:
            cols = [f"{a}->{b}" for a, b in zip(_names(graph, s, src_cols), _names(graph, t, dst_cols), strict=False)]
            graph.edges.append(Edge(s, t, "foreign_key", cols))
            graph.nodes[s].data.setdefault("constraints", []).append(conname)


def _view_dependencies(conn: psycopg.Connection[Any], graph: Graph) -> None:
    deps: dict[tuple[int, int], list[int]] = {}
    for view, ref, attnum in conn.execute(
            "SELECT DISTINCT r.ev_class, d.refobjid, d.refobjsubid"
            "  FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid"
            " WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass"
            "   AND d.refobjid <> r.ev_class").fetchall():
        deps.setdefault((int(view), int(ref)), [])
        if attnum:
            deps[(int(view), int(ref))].append(int(attnum))
    for (view, ref), attnums in sorted(deps.items()):
        s, t = graph.by_oid.get(view), graph.by_oid.get(ref)
        if s and t:
            graph.edges.append(Edge(s, t, "view_depends", _names(graph, t, sorted(attnums))))


def _indexes(conn: psycopg.Connection[Any], graph: Graph) -> None:
    for idx_oid, schema, name, table_oid, attnums, unique, primary, size, scans, expr_cols in conn.execute(
            "SELECT i.indexrelid, n.nspname, c.relname, i.indrelid, i.indkey::int[], i.indisunique,"
            "       i.indisprimary, pg_relation_size(i.indexrelid), coalesce(s.idx_scan, 0),"
            "       coalesce((SELECT array_agg(DISTINCT d.refobjsubid) FROM pg_depend d"
            "                  WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid"
            "                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid"
            "                    AND d.refobjsubid > 0), '{}')"
            "  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            "  JOIN pg_namespace n ON n.oid = c.relnamespace"
            "  LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid").fetchall():
        table = graph.by_oid.get(int(table_oid))
        if table is None:
            continue
        qualified = _qualified(schema, name)
        node_id = rel_id("index", qualified)
        wanted = [a for a in attnums if a > 0] + [a for a in expr_cols if a not in attnums]
        cols = _names(graph, table, wanted)
        graph.add(Node(node_id, "index", qualified, {"table": graph.nodes[table].label, "unique": unique,
                                                      "primary": primary, "bytes": int(size), "scans": int(scans),
                                                      "columns": cols}))
        graph.by_oid[int(idx_oid)] = node_id
        graph.edges.append(Edge(node_id, table, "index_of", cols))


def _has_asymm(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _caches(conn: psycopg.Connection[Any], graph: Graph) -> None:
    if not _has_asymm(conn, "asymm.sync_tables"):
        return
    for rel, keys, sensitive, backfill in conn.execute(
            "SELECT rel::oid, key_columns, sensitive, backfill_state FROM asymm.sync_tables").fetchall():
        table = graph.by_oid.get(int(rel))
        if table is None:
            continue
        label = graph.nodes[table].label
        node_id = f"cache:{label}"
        graph.add(Node(node_id, "cache", "asymm:{" + label + "}", {"table": label, "key": list(keys),
                                                                  "sensitive": list(sensitive),
                                                                  "backfill": backfill}))
        graph.edges.append(Edge(table, node_id, "synced_to", list(keys)))


def _queries(conn: psycopg.Connection[Any], graph: Graph, limit: int) -> None:
    statements: dict[int, tuple[str, int]] = {}
    if _has_asymm(conn, "asymm.queries"):
        for queryid, query in conn.execute(
                "SELECT q.queryid, q.query FROM asymm.queries q JOIN pg_database d ON d.oid = q.dbid"
                " WHERE d.datname = current_database() AND NOT q.own AND q.query IS NOT NULL").fetchall():
            statements[int(queryid)] = (query, 0)
    home = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                        " WHERE e.extname = 'pg_stat_statements'").fetchone()
    if home is not None:
        try:
            with conn.transaction():
                rows = conn.execute(
                    psycopg.sql.SQL(
                        "SELECT s.queryid, s.query, s.calls FROM {}.pg_stat_statements(true) s"
                        " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                        "   AND s.toplevel AND s.queryid IS NOT NULL").format(psycopg.sql.Identifier(home[0]))
                ).fetchall()
        except psycopg.Error:
            rows = []  # pg_stat_statements not preloaded: asymm.queries alone
        for queryid, query, calls in rows:
            previous = statements.get(int(queryid))
            statements[int(queryid)] = (query, int(calls) + (previous[1] if previous else 0))
    with session_search_path(conn):  # statements name tables the way their sessions would
        search_path = [r[0] for r in conn.execute(
            "SELECT pg_catalog.unnest(pg_catalog.current_schemas(false))").fetchall()]
    by_name: dict[tuple[str, str], str] = {}
    for node in graph.nodes.values():
        if node.kind in ("table", "view", "matview"):
            by_name[(node.data["schema"], node.data["name"])] = node.id

    def resolve(name: tuple[str | None, str]) -> str | None:
        schema, rel = name
        if schema is not None:
            return by_name.get((schema, rel))
        for s in search_path:
            if (s, rel) in by_name:
                return by_name[(s, rel)]
        return None

    ranked = sorted(statements.items(), key=lambda item: (-item[1][1], item[0]))
    kept = 0
    for queryid, (query, calls) in ranked:
        if kept >= limit:
            break
        use = statement_uses(query)
        if use is None:
            continue
        reads = {r for r in (resolve(n) for n in use.reads) if r}
        writes = {r for r in (resolve(n) for n in use.writes) if r}
        if not reads and not writes:
            continue  # statements about nothing in the graph (SET, catalog queries, asymm's own)
        kept += 1
        node_id = f"query:{queryid}"
        touched = reads | writes
        qualifiers = {alias: resolve(name) for alias, name in use.aliases.items()}
        used: dict[str, set[str]] = {t: set() for t in touched}
        for qualifier, column in use.column_refs:
            targets = [qualifiers.get(qualifier)] if qualifier else list(touched)
            for target in targets:
                if target not in used:
                    continue
                if column == "*":  # SELECT * / t.*: every column
                    used[target].update(graph.columns.get(target, {}).values())
                elif column in graph.columns.get(target, {}).values():
                    used[target].add(column)
        short = " ".join(query.split())
        graph.add(Node(node_id, "query", short[:60] + ("…" if len(short) > 60 else ""),
                       {"queryid": queryid, "query": short, "calls": calls}))
        for target in sorted(writes):
            graph.edges.append(Edge(node_id, target, "writes", sorted(used[target])))
        for target in sorted(reads - writes):
            graph.edges.append(Edge(node_id, target, "reads", sorted(used[target])))
        for target in sorted(reads & writes):
            graph.edges.append(Edge(node_id, target, "reads", sorted(used[target])))


# ---------------------------------------------------------------------------------------------
# Output


def to_dot(graph: Graph) -> str:
    """Graphviz text: one shape and colour per node kind, one style per edge kind."""
    shapes = {"table": ("box", "#4c9be8"), "view": ("box", "#a77ee8"), "matview": ("box3d", "#a77ee8"),
              "index": ("diamond", "#e8b84c"), "query": ("ellipse", "#5fd08a"), "cache": ("cylinder", "#e8624c")}
    styles = {"foreign_key": "solid", "view_depends": "dashed", "reads": "solid", "writes": "bold",
              "index_of": "dotted", "synced_to": "bold"}

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph asymm {", "  rankdir=LR;", '  node [fontname="Helvetica", style=filled, fontsize=10];']
    for node in sorted(graph.nodes.values(), key=lambda n: n.id):
        shape, colour = shapes.get(node.kind, ("box", "#cccccc"))
        lines.append(f"  {q(node.id)} [label={q(node.label)}, shape={shape}, fillcolor={q(colour)}];")
    for edge in sorted(graph.edges, key=lambda e: (e.source, e.target, e.kind)):
        label = edge.kind + (f" ({', '.join(edge.columns)})" if edge.columns else "")
        lines.append(f"  {q(edge.source)} -> {q(edge.target)} [label={q(label)}, "
                     f"style={styles.get(edge.kind, 'solid')}, fontsize=8];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Impact analysis


def _find_relation(graph: Graph, name: str) -> tuple[str, str | None]:
    """``table``, ``schema.table``, ``table.column`` or ``schema.table.column`` -> (node id, column)."""
    parts = name.split(".")
    candidates: list[tuple[str, str | None]] = []
    relations = [n for n in graph.nodes.values() if n.kind in ("table", "view", "matview")]
    if len(parts) == 1:
        candidates = [(n.id, None) for n in relations if n.data["name"] == parts[0]]
    elif len(parts) == 2:
        candidates = [(n.id, None) for n in relations if (n.data["schema"], n.data["name"]) == tuple(parts)]
        candidates += [(n.id, parts[1]) for n in relations if n.data["name"] == parts[0]]
    elif len(parts) == 3:
        candidates = [(n.id, parts[2]) for n in relations if (n.data["schema"], n.data["name"]) == tuple(parts[:2])]
    candidates = [(i, c) for i, c in candidates if c is None or c in graph.columns.get(i, {}).values()]
    if not candidates:
        raise AsymmError(f"no table, view or column named {name!r} (give table, schema.table or table.column)")
    if len(candidates) > 1:
        raise AsymmError(f"{name!r} is ambiguous: "
                         + ", ".join(graph.nodes[i].label + (f".{c}" if c else "") for i, c in candidates)
                         + " (qualify it with the schema)")
    return candidates[0]


def impact(conn: psycopg.Connection[Any], graph: Graph, name: str) -> dict[str, Any]:
    """What depends on a relation or one of its columns: views (transitively), statements,
    indexes, foreign keys, the Redis keyspace, and annotations on any of them."""
    start, column = _find_relation(graph, name)
    views: dict[str, list[str]] = {}
    queue: deque[tuple[str, str | None]] = deque([(start, column)])
    seen = {start}
    while queue:
        current, col = queue.popleft()
        for edge in graph.incoming(current, ("view_depends",)):
            if col is not None and current == start and col not in edge.columns:
                continue
            views.setdefault(edge.source, edge.columns)
            if edge.source not in seen:
                seen.add(edge.source)
                queue.append((edge.source, None))  # a view's every column may carry the dependency
    affected = {start, *views}
    queries = []
    for edge in graph.edges:
        if edge.kind in ("reads", "writes") and edge.target in affected:
            if column is not None and edge.target == start and column not in edge.columns:
                continue
            node = graph.nodes[edge.source]
            queries.append({"queryid": node.data["queryid"], "access": edge.kind, "via": graph.nodes[edge.target].label,
                            "columns": edge.columns, "calls": node.data.get("calls", 0), "query": node.data["query"]})
    indexes = [{"index": graph.nodes[e.source].label, "columns": e.columns}
               for e in graph.incoming(start, ("index_of",)) if column is None or column in e.columns]
    fks = []
    for e in graph.edges:
        if e.kind != "foreign_key" or start not in (e.source, e.target):
            continue
        pairs = [c.split("->") for c in e.columns]
        if column is not None and not any((e.source == start and a == column) or (e.target == start and b == column)
                                          for a, b in pairs):
            continue
        fks.append({"from": graph.nodes[e.source].label, "to": graph.nodes[e.target].label, "columns": e.columns})
    caches = []
    for e in graph.edges:
        if e.kind == "synced_to" and e.source in affected:
            cache = graph.nodes[e.target]
            if column is not None and e.source == start and column in cache.data["sensitive"]:
                continue  # a sensitive column never reaches Redis
            caches.append({"keyspace": cache.label, "table": cache.data["table"], "key": cache.data["key"]})
    annotations = _annotations(conn, graph, start, column, affected | {i for i in graph.nodes
                                                                      if i.startswith("index:")
                                                                      and any(x["index"] == graph.nodes[i].label
                                                                              for x in indexes)})
    return {
        "object": graph.nodes[start].label + (f".{column}" if column else ""),
        "kind": "column" if column else graph.nodes[start].kind,
        "views": [{"view": graph.nodes[v].label, "columns": cols} for v, cols in sorted(views.items())],
        "queries": sorted(queries, key=lambda q: (-int(q["calls"] or 0), q["queryid"])),
        "indexes": sorted(indexes, key=lambda i: i["index"]),
        "foreign_keys": fks,
        "cache": caches,
        "annotations": annotations,
    }


def _annotations(conn: psycopg.Connection[Any], graph: Graph, start: str, column: str | None,
                 affected: set[str]) -> list[dict[str, Any]]:
    if not _has_asymm(conn, "asymm.annotation_entries"):
        return []
    oids = {node_id: oid for oid, node_id in graph.by_oid.items() if node_id in affected}
    start_oid = next((oid for oid, node_id in graph.by_oid.items() if node_id == start), None)
    queryids = {str(graph.nodes[e.source].data["queryid"]) for e in graph.edges
                if e.kind in ("reads", "writes") and e.target in affected}
    out = []
    for target, target_type, symbol, scope, regime, cost, objid, objsubid, names in conn.execute(
            "SELECT a.target, a.target_type, a.symbol, a.scope, a.regime, a.cost, l.objid, l.objsubid,"
            "       a.target_names"
            "  FROM asymm.annotations a"
            "  LEFT JOIN LATERAL asymm._locate(a.id, a.target_type, a.target_names, a.target_args) l ON true"
            " ORDER BY a.target").fetchall():
        hit = False
        if objid is not None and int(objid) in oids.values():
            if column is None or int(objid) != start_oid or not objsubid:
                hit = True
            else:
                hit = graph.columns[start].get(int(objsubid)) == column
        elif target_type == "query" and names and str(names[0]) in queryids:
            hit = True
        if hit:
            out.append({"target": target, "type": target_type, "symbol": symbol, "scope": scope,
                        "regime": regime, "cost": cost})
    return out
