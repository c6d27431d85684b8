"""What a SQL statement reads and writes, from its pglast parse tree: asymm's one walk of SQL text.

The graph (statement -> relation edges), the cache (which tracked tables a cached result depends
on, and whether it may be cached at all) and the advisor (the columns a statement filters on) ask
the same questions of a statement.  Answering them here, in one visitor, keeps them agreeing on
what a CTE name, an alias, a write target or a column reference is.  Only facts of the text live
here (no catalog, no policy): each consumer applies its own rules on top.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pglast
from pglast import ast as _ast
from pglast.visitors import Visitor

# The parse tree is walked generically (any node, any slot): pglast's precise stub types add nothing here.
ast: Any = _ast

Name = tuple[str | None, str]  # (schema or None, relation) as the statement spells it


@dataclass(frozen=True)
class RangeRef:
    """One relation the statement names (a ``RangeVar``: FROM item, write target, CTE reference)."""

    name: Name
    alias: str | None
    inherited: bool  # named without ONLY: its inheritance children are read too
    written: bool  # the target of an INSERT, UPDATE, DELETE or MERGE


@dataclass
class StatementInfo:
    """Everything one walk of a statement (sub-selects and CTEs included) finds."""

    ranges: list[RangeRef] = field(default_factory=list)  # in tree order
    ctes: set[str] = field(default_factory=set)  # names of the WITH queries
    # qualifier -> relation: every alias, and every relation's own name (the first relation of a name wins)
    aliases: dict[str, Name] = field(default_factory=dict)
    # (qualifier or None, column or "*"): column references, INSERT column lists, UPDATE SET targets, USING
    column_refs: set[tuple[str | None, str]] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)  # unqualified names of the functions called
    value_functions: bool = False  # CURRENT_DATE, LOCALTIME, CURRENT_USER, ... (no FuncCall node)
    operators: set[str] = field(default_factory=set)  # unqualified operator names (x BETWEEN: >= and <=)
    fields: set[str] = field(default_factory=set)  # f of x.f and (x).f: a field, or the call f(x) on a row
    functions_in_from: bool = False  # a function in FROM: rows from anywhere
    modifies: bool = False  # INSERT/UPDATE/DELETE/MERGE anywhere, FOR UPDATE/SHARE, SELECT INTO
    alias_names: set[str] = field(default_factory=set)  # every alias of a relation, sub-select, join, function
    renamed_columns: set[str] = field(default_factory=set)  # names an alias or a CTE column list gives
    targets: list[Any] = field(default_factory=list)  # every ResTarget's value (target lists, SET, ...)
    values: list[Any] = field(default_factory=list)  # every VALUES item

    @property
    def names(self) -> set[Name]:
        """Every relation name, CTE references and write targets included."""
        return {r.name for r in self.ranges}

    @property
    def writes(self) -> set[Name]:
        """Relations written (INSERT/UPDATE/DELETE/MERGE targets)."""
        return {r.name for r in self.ranges if r.written}

    @property
    def reads(self) -> set[Name]:
        """Relations read: every relation named other than as a write target, CTE references left out."""
        return {r.name for r in self.ranges if not r.written and not self.is_cte(r.name)}

    @property
    def cte_named(self) -> set[Name]:
        """Unqualified names some CTE of the statement bears: a CTE, or (in another scope) maybe a relation."""
        return {n for n in self.names if self.is_cte(n)}

    @property
    def inherited(self) -> set[Name]:
        """Relations named without ONLY."""
        return {r.name for r in self.ranges if r.inherited}

    def is_cte(self, name: Name) -> bool:
        return name[0] is None and name[1] in self.ctes


def parse(statement: str) -> Any:
    """The pglast parse tree (a tuple of ``RawStmt``); ``pglast.parser.ParseError`` if not SQL."""
    return pglast.parse_sql(statement)


def describe(tree: Any) -> StatementInfo:
    """Walk a parse tree (statements, one statement, or any node) once."""
    walk = _Walk()
    walk(tree)
    return walk.info()


def statement_info(statement: str) -> StatementInfo | None:
    """:func:`describe` of SQL text (``$1`` placeholders are fine); None if it does not parse."""
    try:
        tree = parse(statement)
    except Exception:  # pglast raises ParseError and, for odd inputs, others
        return None
    return describe(tree)


def last_name(names: Any) -> set[str]:
    """The unqualified name of a qualified name list (``pg_catalog.upper`` -> upper), if any."""
    last = names[-1] if names else None
    return {str(last.sval)} if isinstance(last, ast.String) else set()


def column_fields(ref: Any) -> tuple[str, ...] | None:
    """The names of a ``ColumnRef`` (``t.c`` -> ("t", "c")); None when it ends in ``*`` or has other parts."""
    fields = tuple(str(f.sval) for f in ref.fields if isinstance(f, ast.String))
    return fields if len(fields) == len(ref.fields) else None


def children(node: Any) -> Iterator[Any]:
    """The direct children of a node (its node and list slots), or the items of a list."""
    if isinstance(node, list | tuple):
        yield from node
    elif isinstance(node, ast.Node):
        for slot in node.__slots__:
            value = getattr(node, slot, None)
            if isinstance(value, ast.Node | list | tuple):
                yield value


def flatten(node: Any) -> Iterator[Any]:
    """The child nodes of ``node``, lists flattened."""
    for child in children(node):
        if isinstance(child, list | tuple):
            yield from flatten(child)
        else:
            yield child


def descendants(node: Any) -> Iterator[Any]:
    """Every node below ``node``, in tree order (sub-selects included)."""
    for child in flatten(node):
        yield child
        yield from descendants(child)


def param_number(node: Any) -> int | None:
    """The number of a parameter (``$3``, or ``$3::type``), None for anything else."""
    if isinstance(node, ast.ParamRef):
        return int(node.number)
    if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.ParamRef):
        return int(node.arg.number)
    return None


def param_numbers(node: Any) -> list[int]:
    """The numbers of every parameter at or below ``node``, in tree order."""
    if isinstance(node, ast.ParamRef):
        return [int(node.number)]
    return [n for child in flatten(node) for n in param_numbers(child)]


def column_nodes(node: Any) -> list[Any]:
    """Every ``ColumnRef`` node at or below ``node`` (sub-selects included), in tree order."""
    found: list[Any] = []

    class _Columns(Visitor):
        def visit_ColumnRef(self, _ancestors: Any, ref: Any) -> None:
            found.append(ref)

    _Columns()(node)
    return found


class _Walk(Visitor):
    """One pass over the tree; :meth:`info` then derives what needs the whole of it (CTE names, targets)."""

    def __init__(self) -> None:
        super().__init__()
        self.result = StatementInfo()
        self.range_nodes: list[Any] = []
        self.target_nodes: list[Any] = []  # write targets, in the order of their statements
        self.target_ids: set[int] = set()

    def info(self) -> StatementInfo:
        out = self.result
        # Write targets name their aliases first, then every relation in tree order.
        for node in [*self.target_nodes, *self.range_nodes]:
            name = _name(node)
            if node.alias is not None:
                out.aliases[str(node.alias.aliasname)] = name
            out.aliases.setdefault(str(node.relname), name)
        out.ranges = [
            RangeRef(
                _name(n), None if n.alias is None else str(n.alias.aliasname), bool(n.inh), id(n) in self.target_ids
            )
            for n in self.range_nodes
        ]
        return out

    # -- relations ------------------------------------------------------------------------------

    def visit_RangeVar(self, _ancestors: Any, node: Any) -> None:
        self.range_nodes.append(node)

    def visit_CommonTableExpr(self, _ancestors: Any, node: Any) -> None:
        self.result.ctes.add(str(node.ctename))
        self.result.renamed_columns.update(str(c.sval) for c in node.aliascolnames or () if isinstance(c, ast.String))

    def visit_Alias(self, _ancestors: Any, node: Any) -> None:
        self.result.alias_names.add(str(node.aliasname))
        self.result.renamed_columns.update(str(c.sval) for c in node.colnames or () if isinstance(c, ast.String))

    def visit_RangeFunction(self, _ancestors: Any, _node: Any) -> None:
        self.result.functions_in_from = True

    def _target(self, relation: Any) -> None:
        self.result.modifies = True
        if relation is not None:
            self.target_nodes.append(relation)
            self.target_ids.add(id(relation))

    def visit_SelectStmt(self, _ancestors: Any, node: Any) -> None:
        if node.lockingClause or node.intoClause is not None:
            self.result.modifies = True
        self.result.values.extend(item for row in node.valuesLists or () for item in row)

    def visit_InsertStmt(self, _ancestors: Any, node: Any) -> None:
        self._target(node.relation)
        for col in node.cols or ():
            if isinstance(col, ast.ResTarget) and col.name:
                self.result.column_refs.add((node.relation.relname if node.relation else None, col.name))

    def visit_UpdateStmt(self, _ancestors: Any, node: Any) -> None:
        self._target(node.relation)
        for col in node.targetList or ():
            if isinstance(col, ast.ResTarget) and col.name:
                self.result.column_refs.add((node.relation.relname if node.relation else None, col.name))

    def visit_DeleteStmt(self, _ancestors: Any, node: Any) -> None:
        self._target(node.relation)

    def visit_MergeStmt(self, _ancestors: Any, node: Any) -> None:
        self._target(getattr(node, "relation", None))

    # -- columns --------------------------------------------------------------------------------

    def visit_JoinExpr(self, _ancestors: Any, node: Any) -> None:
        for name in node.usingClause or ():
            if isinstance(name, ast.String):
                self.result.column_refs.add((None, str(name.sval)))

    def visit_ColumnRef(self, _ancestors: Any, node: Any) -> None:
        if node.fields and len(node.fields) > 1:
            self.result.fields.update(last_name(node.fields))
        parts = [
            str(f.sval) if isinstance(f, ast.String) else "*"
            for f in node.fields
            if isinstance(f, ast.String | ast.A_Star)
        ]
        if parts:
            self.result.column_refs.add((parts[-2] if len(parts) >= 2 else None, parts[-1]))

    def visit_A_Indirection(self, _ancestors: Any, node: Any) -> None:
        self.result.fields.update(str(i.sval) for i in node.indirection or () if isinstance(i, ast.String))

    def visit_ResTarget(self, _ancestors: Any, node: Any) -> None:
        self.result.targets.append(node.val)

    # -- functions and operators ----------------------------------------------------------------

    def visit_FuncCall(self, _ancestors: Any, node: Any) -> None:
        self.result.calls.update(last_name(node.funcname))

    def visit_SQLValueFunction(self, _ancestors: Any, _node: Any) -> None:
        self.result.value_functions = True

    def visit_A_Expr(self, _ancestors: Any, node: Any) -> None:
        names = last_name(node.name)
        if any("BETWEEN" in n for n in names):  # (no operator: x BETWEEN a AND b is x >= a AND x <= b)
            names = {">=", "<="}
        self.result.operators.update(names)

    def visit_SubLink(self, _ancestors: Any, node: Any) -> None:
        self.result.operators.update(last_name(node.operName))

    def visit_SortBy(self, _ancestors: Any, node: Any) -> None:
        self.result.operators.update(last_name(node.useOp))


def _name(node: Any) -> Name:
    return (None if node.schemaname is None else str(node.schemaname), str(node.relname))
