"""The graph's data model: nodes, edges and the lookups the builders and impact analysis share.

Kept apart from the catalog queries so that the renderers (DOT, JSON) and impact analysis depend
on the shape of a graph only, not on how it is read from a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
