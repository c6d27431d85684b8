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

The package: :mod:`~asymm.graph.model` (nodes, edges), :mod:`~asymm.graph.statements` (what a
statement touches, over :mod:`asymm.sqlparse`), :mod:`~asymm.graph.catalog` (:func:`build`),
:mod:`~asymm.graph.dot` (:func:`to_dot`) and :mod:`~asymm.graph.impact` (:func:`impact`); the
public names are re-exported here, the import path callers use.
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
