"""Building the graph from the catalog: relations, foreign keys, view dependencies, indexes,
Redis keyspaces and the heaviest statements.

Built on demand rather than stored: the catalog is the truth and changes with every DDL; building
the graph for a few hundred objects takes milliseconds, a stored copy would need invalidation.
"""

from __future__ import annotations

from typing import Any

import psycopg

from asymm.db import session_search_path
from asymm.graph.model import Edge, Graph, Node, rel_id
from asymm.graph.statements import statement_uses

EXCLUDED_SCHEMAS = ("pg_catalog", "information_schema", "asymm", "pg_toast")
MAX_QUERIES = 300  # the heaviest statements; a graph of thousands of statements helps nobody


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
        (list(EXCLUDED_SCHEMAS),),
    ).fetchall()
    for oid, schema, name, relkind, tuples, atts in rows:
        kind = relkinds[relkind]
        qualified = _qualified(schema, name)
        node_id = rel_id(kind, qualified)
        cols = {int(a.split(":", 1)[0]): a.split(":", 1)[1] for a in atts}
        graph.add(
            Node(
                node_id,
                kind,
                qualified,
                {"schema": schema, "name": name, "rows": max(int(tuples), 0), "columns": list(cols.values())},
            )
        )
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
        "SELECT conname, conrelid, confrelid, conkey::int[], confkey::int[]  FROM pg_constraint WHERE contype = 'f'"
    ).fetchall():
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
        "   AND d.refobjid <> r.ev_class"
    ).fetchall():
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
        "  LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid"
    ).fetchall():
        table = graph.by_oid.get(int(table_oid))
        if table is None:
            continue
        qualified = _qualified(schema, name)
        node_id = rel_id("index", qualified)
        wanted = [a for a in attnums if a > 0] + [a for a in expr_cols if a not in attnums]
        cols = _names(graph, table, wanted)
        graph.add(
            Node(
                node_id,
                "index",
                qualified,
                {
                    "table": graph.nodes[table].label,
                    "unique": unique,
                    "primary": primary,
                    "bytes": int(size),
                    "scans": int(scans),
                    "columns": cols,
                },
            )
        )
        graph.by_oid[int(idx_oid)] = node_id
        graph.edges.append(Edge(node_id, table, "index_of", cols))


def has_asymm(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _caches(conn: psycopg.Connection[Any], graph: Graph) -> None:
    if not has_asymm(conn, "asymm.sync_tables"):
        return
    for rel, keys, sensitive, backfill in conn.execute(
        "SELECT rel::oid, key_columns, sensitive, backfill_state FROM asymm.sync_tables"
    ).fetchall():
        table = graph.by_oid.get(int(rel))
        if table is None:
            continue
        label = graph.nodes[table].label
        node_id = f"cache:{label}"
        graph.add(
            Node(
                node_id,
                "cache",
                "asymm:{" + label + "}",
                {"table": label, "key": list(keys), "sensitive": list(sensitive), "backfill": backfill},
            )
        )
        graph.edges.append(Edge(table, node_id, "synced_to", list(keys)))


def _queries(conn: psycopg.Connection[Any], graph: Graph, limit: int) -> None:
    statements: dict[int, tuple[str, int]] = {}
    if has_asymm(conn, "asymm.queries"):
        for queryid, query in conn.execute(
            "SELECT q.queryid, q.query FROM asymm.queries q JOIN pg_database d ON d.oid = q.dbid"
            " WHERE d.datname = current_database() AND NOT q.own AND q.query IS NOT NULL"
        ).fetchall():
            statements[int(queryid)] = (query, 0)
    home = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pg_stat_statements'"
    ).fetchone()
    if home is not None:
        try:
            with conn.transaction():
                rows = conn.execute(
                    psycopg.sql.SQL(
                        "SELECT s.queryid, s.query, s.calls FROM {}.pg_stat_statements(true) s"
                        " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                        "   AND s.toplevel AND s.queryid IS NOT NULL"
                    ).format(psycopg.sql.Identifier(home[0]))
                ).fetchall()
        except psycopg.Error:
            rows = []  # pg_stat_statements not preloaded: asymm.queries alone
        for queryid, query, calls in rows:
            previous = statements.get(int(queryid))
            statements[int(queryid)] = (query, int(calls) + (previous[1] if previous else 0))
    with session_search_path(conn):  # statements name tables the way their sessions would
        search_path = [
            r[0] for r in conn.execute("SELECT pg_catalog.unnest(pg_catalog.current_schemas(false))").fetchall()
        ]
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
        graph.add(
            Node(
                node_id,
                "query",
                short[:60] + ("…" if len(short) > 60 else ""),
                {"queryid": queryid, "query": short, "calls": calls},
            )
        )
        for target in sorted(writes):
            graph.edges.append(Edge(node_id, target, "writes", sorted(used[target])))
        for target in sorted(reads - writes):
            graph.edges.append(Edge(node_id, target, "reads", sorted(used[target])))
        for target in sorted(reads & writes):
            graph.edges.append(Edge(node_id, target, "reads", sorted(used[target])))
