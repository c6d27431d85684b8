"""Graphviz rendering of a graph (``asymm graph --format dot``): pure text, no Graphviz needed here."""

from __future__ import annotations

from asymm.graph.model import Graph


def to_dot(graph: Graph) -> str:
    """Graphviz text: one shape and colour per node kind, one style per edge kind."""
    shapes = {
        "table": ("box", "#4c9be8"),
        "view": ("box", "#a77ee8"),
        "matview": ("box3d", "#a77ee8"),
        "index": ("diamond", "#e8b84c"),
        "query": ("ellipse", "#5fd08a"),
        "cache": ("cylinder", "#e8624c"),
    }
    styles = {
        "foreign_key": "solid",
        "view_depends": "dashed",
        "reads": "solid",
        "writes": "bold",
        "index_of": "dotted",
        "synced_to": "bold",
    }

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph asymm {", "  rankdir=LR;", '  node [fontname="Helvetica", style=filled, fontsize=10];']
    for node in sorted(graph.nodes.values(), key=lambda n: n.id):
        shape, colour = shapes.get(node.kind, ("box", "#cccccc"))
        lines.append(f"  {q(node.id)} [label={q(node.label)}, shape={shape}, fillcolor={q(colour)}];")
    for edge in sorted(graph.edges, key=lambda e: (e.source, e.target, e.kind)):
        label = edge.kind + (f" ({', '.join(edge.columns)})" if edge.columns else "")
        lines.append(
            f"  {q(edge.source)} -> {q(edge.target)} [label={q(label)}, "
            f"style={styles.get(edge.kind, 'solid')}, fontsize=8];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
