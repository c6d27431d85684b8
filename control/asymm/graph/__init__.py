"""The semantic data graph: what the database is made of and what uses what.

Nodes are tables, views, indexes, statements and Redis keyspaces; edges are foreign keys, view
dependencies, statement reads/writes (pglast), index-of and synced-to.  Why built from the
catalog on demand rather than stored: the catalog is the truth and changes with every DDL, and
building takes milliseconds.  The public names of the package's modules are re-exported here.

Details (every edge, the column approximation, the modules): docs/architecture.md, "The semantic data graph".
"""

from __future__ import annotations

from asymm.graph.catalog import EXCLUDED_SCHEMAS, MAX_QUERIES, build
from asymm.graph.dot import to_dot
from asymm.graph.impact import impact
from asymm.graph.model import Edge, Graph, Node, rel_id
from asymm.graph.statements import StatementUse, statement_uses

__all__ = [
    "EXCLUDED_SCHEMAS",
    "MAX_QUERIES",
    "Edge",
    "Graph",
    "Node",
    "StatementUse",
    "build",
    "impact",
    "rel_id",
    "statement_uses",
    "to_dot",
]
