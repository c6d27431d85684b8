"""``asymm graph`` and ``asymm impact``: the semantic data graph and what depends on an object."""

from __future__ import annotations

import json
from typing import Any

import click

from asymm import graph as graph_mod
from asymm.cli.common import dsn_option, emit, json_option, table
from asymm.db import connect


@click.command("graph")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "dot"]),
    default="json",
    show_default=True,
    help="json: nodes and edges; dot: Graphviz text, for `dot -Tsvg` (package graphviz).",
)
@click.option(
    "--max-queries",
    type=click.IntRange(0, 100_000),
    default=graph_mod.MAX_QUERIES,
    show_default=True,
    help="Keep at most this many statements (the most called).",
)
@dsn_option
def graph_command(fmt: str, max_queries: int, dsn: str) -> None:
    """The semantic data graph: tables, views, indexes, statements, Redis keyspaces and their links."""
    with connect(dsn) as conn:
        graph = graph_mod.build(conn, max_queries=max_queries)
    if fmt == "dot":
        click.echo(graph_mod.to_dot(graph), nl=False)
    else:
        click.echo(json.dumps(graph.as_dict(), indent=2, sort_keys=True, default=str))


def _render_impact(data: dict[str, Any]) -> str:
    out = [f"impact of {data['kind']} {data['object']}"]
    sections: list[tuple[str, list[dict[str, Any]], list[str]]] = [
        ("views", [{**v, "columns": ", ".join(v["columns"])} for v in data["views"]], ["view", "columns"]),
        ("indexes", [{**i, "columns": ", ".join(i["columns"])} for i in data["indexes"]], ["index", "columns"]),
        (
            "foreign keys",
            [{**f, "columns": ", ".join(f["columns"])} for f in data["foreign_keys"]],
            ["from", "to", "columns"],
        ),
        (
            "statements",
            [{**q, "query": q["query"][:70], "columns": ", ".join(q["columns"])} for q in data["queries"]],
            ["queryid", "access", "via", "calls", "query"],
        ),
        ("cache", [{**c, "key": ", ".join(c["key"])} for c in data["cache"]], ["keyspace", "key"]),
        ("annotations", data["annotations"], ["target", "symbol", "scope", "regime", "cost"]),
    ]
    for title, rows, columns in sections:
        out.append(f"\n{title} ({len(rows)})")
        if rows:
            out.append(table(rows, columns))
    return "\n".join(out)


@click.command("impact")
@click.argument("target")
@dsn_option
@json_option
def impact_command(target: str, dsn: str, as_json: bool) -> None:
    """What depends on TARGET (table, schema.table, table.column or schema.table.column): views,
    statements, indexes, foreign keys, the Redis keyspace and annotations."""
    with connect(dsn) as conn:
        graph = graph_mod.build(conn)
        data = graph_mod.impact(conn, graph, target)
    emit(data, as_json, _render_impact)
