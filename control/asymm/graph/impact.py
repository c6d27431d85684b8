"""Impact analysis: what depends on a relation or a column (``asymm impact``).

Walks a built graph (views transitively, statements, indexes, foreign keys, the Redis keyspace)
and adds the annotations on any of them, which only the database can locate.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import psycopg

from asymm.errors import AsymmError
from asymm.graph.catalog import has_asymm
from asymm.graph.model import Graph


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
        raise AsymmError(
            f"{name!r} is ambiguous: "
            + ", ".join(graph.nodes[i].label + (f".{c}" if c else "") for i, c in candidates)
            + " (qualify it with the schema)"
        )
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
            queries.append(
                {
                    "queryid": node.data["queryid"],
                    "access": edge.kind,
                    "via": graph.nodes[edge.target].label,
                    "columns": edge.columns,
                    "calls": node.data.get("calls", 0),
                    "query": node.data["query"],
                }
            )
    indexes = [
        {"index": graph.nodes[e.source].label, "columns": e.columns}
        for e in graph.incoming(start, ("index_of",))
        if column is None or column in e.columns
    ]
    fks = []
    for e in graph.edges:
        if e.kind != "foreign_key" or start not in (e.source, e.target):
            continue
        pairs = [c.split("->") for c in e.columns]
        if column is not None and not any(
            (e.source == start and a == column) or (e.target == start and b == column) for a, b in pairs
        ):
            continue
        fks.append({"from": graph.nodes[e.source].label, "to": graph.nodes[e.target].label, "columns": e.columns})
    caches = []
    for e in graph.edges:
        if e.kind == "synced_to" and e.source in affected:
            cache = graph.nodes[e.target]
            if column is not None and e.source == start and column in cache.data["sensitive"]:
                continue  # a sensitive column never reaches Redis
            caches.append({"keyspace": cache.label, "table": cache.data["table"], "key": cache.data["key"]})
    annotations = _annotations(
        conn,
        graph,
        start,
        column,
        affected
        | {
            i
            for i in graph.nodes
            if i.startswith("index:") and any(x["index"] == graph.nodes[i].label for x in indexes)
        },
    )
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


def _annotations(
    conn: psycopg.Connection[Any], graph: Graph, start: str, column: str | None, affected: set[str]
) -> list[dict[str, Any]]:
    if not has_asymm(conn, "asymm.annotation_entries"):
        return []
    oids = {node_id: oid for oid, node_id in graph.by_oid.items() if node_id in affected}
    start_oid = next((oid for oid, node_id in graph.by_oid.items() if node_id == start), None)
    queryids = {
        str(graph.nodes[e.source].data["queryid"])
        for e in graph.edges
        if e.kind in ("reads", "writes") and e.target in affected
    }
    out = []
    for target, target_type, symbol, scope, regime, cost, objid, objsubid, names in conn.execute(
        "SELECT a.target, a.target_type, a.symbol, a.scope, a.regime, a.cost, l.objid, l.objsubid,"
        "       a.target_names"
        "  FROM asymm.annotations a"
        "  LEFT JOIN LATERAL asymm._locate(a.id, a.target_type, a.target_names, a.target_args) l ON true"
        " ORDER BY a.target"
    ).fetchall():
        hit = False
        if objid is not None and int(objid) in oids.values():
            if column is None or int(objid) != start_oid or not objsubid:
                hit = True
            else:
                hit = graph.columns[start].get(int(objsubid)) == column
        elif target_type == "query" and names and str(names[0]) in queryids:
            hit = True
        if hit:
            out.append(
                {
                    "target": target,
                    "type": target_type,
                    "symbol": symbol,
                    "scope": scope,
                    "regime": regime,
                    "cost": cost,
                }
            )
    return out
