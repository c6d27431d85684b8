"""What a statement asks of its tables, read from the pglast parse tree.

The advisor never guesses from text: every predicate, join key, ``ORDER BY`` and ``GROUP BY`` is
resolved through the ``FROM`` clause to a real table and column, following scopes (unlike the
flat walk of :mod:`asymm.sqlparse`, whose node helpers it shares); the same walk types each ``$n``
for :mod:`asymm.advisor.rewrite`.

Details: docs/advisor.md, "Reading a statement".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pglast import ast as _ast
from pglast import enums as _enums
from pglast.stream import RawStream

from asymm.advisor.catalog import Catalog, Table, quote_ident
from asymm.sqlparse import children as _children
from asymm.sqlparse import column_fields, descendants, param_number, param_numbers
from asymm.sqlparse import flatten as _flatten

# The parse tree is walked generically (any node, any slot): its precise stub types add nothing here.
ast: Any = _ast
enums: Any = _enums

# Operators an expression key may be built with, besides function calls, casts and COALESCE: jsonb
# access and arithmetic.  Comparisons are predicates, never keys.
EXPRESSION_OPS = frozenset({"->>", "->", "#>>", "#>", "+", "-", "*", "/", "%", "||"})
RANGE_OPS = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
GIN_OPS = frozenset({"@>", "<@", "&&", "?", "?|", "?&"})


@dataclass
class Pred:
    """One indexable condition on one table."""

    table: Table = field(repr=False)
    expr: str  # index key text: a quoted column name or an expression such as lower(email)
    kind: str  # eq | range | join | like | gin
    op: str


@dataclass
class Expression:
    """An expression key: computed from one column of one table and constants only."""

    column: str  # the column it is computed from (its stand-in in the proxy statement, see whatif)
    locations: set[tuple[str, int]] = field(default_factory=set)  # (node type, location) in the parse tree


@dataclass
class ParamContext:
    """The column a ``$n`` is compared with (for its type and a representative value)."""

    table: Table | None = field(repr=False)
    column: str | None
    op: str  # =, <, >, <=, >=, like, limit, text
    type: str | None = None


@dataclass
class SortSpec:
    table: Table = field(repr=False)
    keys: list[tuple[str, bool]]  # (expr, descending)
    limit: bool


@dataclass
class Analysis:
    kind: str  # select | update | delete | insert | other
    tables: list[Table] = field(default_factory=list)
    write_table: Table | None = None
    set_columns: list[str] = field(default_factory=list)  # UPDATE ... SET targets (unquoted column names)
    preds: list[Pred] = field(default_factory=list)
    sorts: list[SortSpec] = field(default_factory=list)
    groups: list[tuple[Table, list[str]]] = field(default_factory=list)
    params: dict[int, ParamContext] = field(default_factory=dict)
    arith_params: set[int] = field(default_factory=set)
    # per arithmetic parameter, the type its other operand asks for (date + $n: integer), when known
    arith_types: dict[int, str] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)  # relations not found (CTE names excluded)
    # expression keys by (table oid, key text): what the proxy pricing replaces by their column
    expressions: dict[tuple[int, str], Expression] = field(default_factory=dict)
    # the columns the statement reads per table oid (for INCLUDE); whole_row: tables read with *
    columns: dict[int, set[str]] = field(default_factory=dict)
    whole_row: set[int] = field(default_factory=set)

    def add_table(self, table: Table) -> None:
        if all(t.oid != table.oid for t in self.tables):
            self.tables.append(table)


class Scope:
    """The relations visible in one query level, by the name they are referred to."""

    def __init__(self, parent: Scope | None) -> None:
        self.parent = parent
        self.by_alias: dict[str, Table] = {}
        self.opaque: set[str] = set()  # subqueries, CTEs, functions: visible names we cannot index
        self.ctes: set[str] = set(parent.ctes) if parent else set()

    def resolve(self, fields: list[str]) -> tuple[Table, str] | None:
        scope: Scope | None = self
        while scope is not None:
            if len(fields) == 1:
                matches = [t for t in scope.by_alias.values() if fields[0] in t.columns]
                if len({m.oid for m in matches}) == 1:
                    return matches[0], fields[0]
                if matches:
                    return None  # ambiguous: leave it to the server
            elif len(fields) >= 2:
                table = scope.by_alias.get(fields[-2])
                if table is not None:
                    return (table, fields[-1]) if fields[-1] in table.columns else None
                if fields[-2] in scope.opaque:
                    return None
            scope = scope.parent
        return None


def analyze(stmt: Any, catalog: Catalog) -> Analysis:
    """Walk one parsed statement (a pglast ``RawStmt.stmt``)."""
    walker = _Walker(catalog)
    if isinstance(stmt, ast.SelectStmt):
        walker.result.kind = "select"
        walker.select(stmt, None)
    elif isinstance(stmt, ast.UpdateStmt | ast.DeleteStmt):
        walker.result.kind = "update" if isinstance(stmt, ast.UpdateStmt) else "delete"
        scope = Scope(None)
        walker.with_clause(stmt.withClause, scope)
        table = walker.range_var(stmt.relation, scope)
        walker.result.write_table = table
        for item in (stmt.fromClause if isinstance(stmt, ast.UpdateStmt) else stmt.usingClause) or ():
            walker.from_item(item, scope)
        walker.conditions(stmt.whereClause, scope)
        if isinstance(stmt, ast.UpdateStmt):
            walker.generic(stmt.targetList, scope)
            # the SET targets decide whether the update can be HOT (see selection.WriteModel)
            for target in stmt.targetList or ():
                if isinstance(target, ast.ResTarget) and target.name and target.name not in walker.result.set_columns:
                    walker.result.set_columns.append(target.name)
    elif isinstance(stmt, ast.InsertStmt):
        walker.result.kind = "insert"
        scope = Scope(None)
        walker.result.write_table = walker.range_var(stmt.relation, scope)
        if stmt.selectStmt is not None and not getattr(stmt.selectStmt, "valuesLists", None):
            walker.select(stmt.selectStmt, None)
    else:
        walker.result.kind = "other"
    _arithmetic(stmt, walker.result)
    return walker.result


class _Walker:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.result = Analysis(kind="other")

    # -- query levels ---------------------------------------------------------------------------

    def with_clause(self, with_clause: Any, scope: Scope) -> None:
        if with_clause is None:
            return
        for cte in with_clause.ctes or ():
            scope.ctes.add(cte.ctename)
            if isinstance(cte.ctequery, ast.SelectStmt):
                self.select(cte.ctequery, scope)

    def select(self, stmt: ast.SelectStmt, parent: Scope | None) -> None:
        if stmt.op is not None and stmt.op != enums.SetOperation.SETOP_NONE:
            if stmt.larg is not None:
                self.select(stmt.larg, parent)
            if stmt.rarg is not None:
                self.select(stmt.rarg, parent)
            return
        scope = Scope(parent)
        self.with_clause(stmt.withClause, scope)
        for item in stmt.fromClause or ():
            self.from_item(item, scope)
        self.conditions(stmt.whereClause, scope)
        self.conditions(stmt.havingClause, scope)
        self.generic(stmt.targetList, scope)
        if stmt.valuesLists:
            self.generic(stmt.valuesLists, scope)
        for node in (stmt.limitCount, stmt.limitOffset):
            if isinstance(node, ast.ParamRef):
                self.result.params[node.number] = ParamContext(None, None, "limit", "bigint")
        if stmt.sortClause:
            keys: list[tuple[Table, str, bool]] = []
            for sort_by in stmt.sortClause:
                resolved = self.key(sort_by.node, scope)
                if resolved is None:
                    keys = []
                    break
                keys.append((resolved[0], resolved[1], sort_by.sortby_dir == enums.SortByDir.SORTBY_DESC))
            if keys and len({k[0].oid for k in keys}) == 1:
                self.result.sorts.append(
                    SortSpec(keys[0][0], [(k[1], k[2]) for k in keys], limit=stmt.limitCount is not None)
                )
        if stmt.groupClause:
            groups: list[tuple[Table, str]] = []
            for node in stmt.groupClause:
                resolved = self.key(node, scope)
                if resolved is not None:
                    groups.append((resolved[0], resolved[1]))
            for oid in {g[0].oid for g in groups}:
                on_table = [g for g in groups if g[0].oid == oid]
                self.result.groups.append((on_table[0][0], [g[1] for g in on_table]))

    def from_item(self, item: Any, scope: Scope) -> None:
        if isinstance(item, ast.RangeVar):
            self.range_var(item, scope)
        elif isinstance(item, ast.JoinExpr):
            self.from_item(item.larg, scope)
            self.from_item(item.rarg, scope)
            self.conditions(item.quals, scope)
            if item.alias is not None:
                scope.opaque.add(item.alias.aliasname)
        elif isinstance(item, ast.RangeSubselect):
            if isinstance(item.subquery, ast.SelectStmt):
                self.select(item.subquery, scope if item.lateral else scope.parent)
            if item.alias is not None:
                scope.opaque.add(item.alias.aliasname)
        elif isinstance(item, ast.RangeFunction):
            if item.alias is not None:
                scope.opaque.add(item.alias.aliasname)
            self.generic(item.functions, scope)

    def range_var(self, node: ast.RangeVar, scope: Scope) -> Table | None:
        visible = node.alias.aliasname if node.alias is not None else node.relname
        if node.schemaname is None and node.relname in scope.ctes:
            scope.opaque.add(visible)
            return None
        table = self.catalog.table(node.schemaname, node.relname)
        if table is None:
            scope.opaque.add(visible)
            self.result.unresolved.append(node.relname)
            return None
        scope.by_alias[visible] = table
        self.result.add_table(table)
        return table

    # -- expressions ----------------------------------------------------------------------------

    def key(self, node: Any, scope: Scope) -> tuple[Table, str, str | None] | None:
        """(table, index key text, plain column or None) for a column or an indexable expression."""
        if isinstance(node, ast.ColumnRef):
            fields = column_fields(node)
            if fields is None:
                return None
            resolved = scope.resolve(list(fields))
            if resolved is None:
                return None
            self.result.columns.setdefault(resolved[0].oid, set()).add(resolved[1])
            return resolved[0], quote_ident(resolved[1]), resolved[1]
        if not isinstance(node, ast.FuncCall | ast.A_Expr | ast.TypeCast | ast.CoalesceExpr):
            return None
        rendered = self.render(node, scope, top=True)
        if rendered is None or len(rendered[1]) != 1:
            return None
        (((_, column), table),) = rendered[1].items()
        text = f"({rendered[0]})"
        error = self.catalog.index_expression_error(table, text)
        if error is not None:  # STABLE for this type (date_trunc on timestamptz), an aggregate, ...
            return None
        expression = self.result.expressions.setdefault((table.oid, text), Expression(column))
        expression.locations.add((type(node).__name__, int(node.location)))
        return table, text, None

    def render(self, node: Any, scope: Scope, top: bool = False) -> tuple[str, dict[tuple[int, str], Table]] | None:
        """Index key text for an expression of columns and constants, and the columns it reads.

        None for anything else: a parameter (a normalized text has lost the constant an index
        needs: ``date_trunc($1, at)``), a function, type or operator outside pg_catalog, a column
        of a type outside pg_catalog (a domain or user type: coercing a constant to it would run
        its input function or CHECK, as the advisor's role), an aggregate or window call.  Every
        function, type and operator is written pg_catalog-qualified (``OPERATOR(pg_catalog.->>)``):
        the index must mean the same whatever search_path the DBA applies it with, and an overload
        planted in a schema on that path must never run there.
        """
        if isinstance(node, ast.ColumnRef):
            fields = column_fields(node)
            resolved = scope.resolve(list(fields)) if fields is not None else None
            if resolved is None or not resolved[0].columns[resolved[1]].builtin:
                return None  # a user type: its input function or a domain's CHECK would run our code
            return quote_ident(resolved[1]), {(resolved[0].oid, resolved[1]): resolved[0]}
        if isinstance(node, ast.A_Const):
            return RawStream()(node), {}
        parts: list[tuple[str, dict[tuple[int, str], Table]] | None]
        if isinstance(node, ast.FuncCall):
            name = [f.sval for f in node.funcname if isinstance(f, ast.String)]
            plain_call = not (
                node.agg_star
                or node.agg_distinct
                or node.agg_order
                or node.agg_filter is not None
                or node.over is not None
                or node.func_variadic
                or node.agg_within_group
            )
            if not plain_call or not node.args or not name or (len(name) == 2 and name[0] != "pg_catalog"):
                return None
            if len(name) > 2 or len(name) != len(node.funcname):
                return None
            parts = [self.render(arg, scope) for arg in node.args]
            text = f"pg_catalog.{quote_ident(name[-1])}({{}})"
        elif isinstance(node, ast.CoalesceExpr):
            parts = [self.render(arg, scope) for arg in node.args or ()]
            text = "COALESCE({})"
        elif isinstance(node, ast.TypeCast):
            names = [f.sval for f in node.typeName.names if isinstance(f, ast.String)]
            if not names or len(names) > 2 or (len(names) == 2 and names[0] != "pg_catalog") or node.typeName.setof:
                return None
            type_name = copy.deepcopy(node.typeName)
            type_name.names = (ast.String(sval="pg_catalog"), ast.String(sval=names[-1]))
            inner = self.render(node.arg, scope)
            if inner is None:
                return None
            arg = inner[0] if isinstance(node.arg, ast.ColumnRef | ast.A_Const) else f"({inner[0]})"
            return f"{arg}::{RawStream()(type_name)}", inner[1]
        elif isinstance(node, ast.A_Expr) and node.kind == enums.A_Expr_Kind.AEXPR_OP:
            name = [f.sval for f in node.name if isinstance(f, ast.String)]
            if not name or name[-1] not in EXPRESSION_OPS or (len(name) == 2 and name[0] != "pg_catalog"):
                return None
            if len(name) > 2:
                return None
            parts = [self.render(side, scope) for side in (node.lexpr, node.rexpr) if side is not None]
            operator = f"OPERATOR(pg_catalog.{name[-1]})"
            text = f"{{}} {operator} {{}}" if node.lexpr is not None else f"{operator} {{}}"
            if not top:
                text = f"({text})"
            if any(part is None for part in parts):
                return None
            return text.format(*(str(part[0]) for part in parts if part)), _union(parts)
        else:
            return None
        if any(part is None for part in parts):
            return None
        return text.format(", ".join(str(part[0]) for part in parts if part)), _union(parts)

    def conditions(self, node: Any, scope: Scope) -> None:
        if node is None:
            return
        if isinstance(node, ast.BoolExpr):
            for arg in node.args or ():
                self.conditions(arg, scope)
            return
        if isinstance(node, ast.A_Expr):
            self.a_expr(node, scope)
        elif isinstance(node, ast.NullTest) and node.nulltesttype == enums.NullTestType.IS_NULL:
            resolved = self.key(node.arg, scope)
            if resolved is not None:
                self.result.preds.append(Pred(resolved[0], resolved[1], "eq", "IS NULL"))
        self.generic(node, scope)

    def a_expr(self, node: ast.A_Expr, scope: Scope) -> None:
        op = node.name[-1].sval if node.name else ""
        kind = node.kind
        if kind == enums.A_Expr_Kind.AEXPR_OP:
            left, right = self.key(node.lexpr, scope), self.key(node.rexpr, scope)
            if (
                left is not None
                and right is not None
                and op == "="
                and (left[0].oid != right[0].oid or _refers_apart(node.lexpr, node.rexpr))
            ):
                # a join, including a self-join (e.manager_id = m.id, o1.customer_id = o2.customer_id)
                self.result.preds.append(Pred(left[0], left[1], "join", op))
                self.result.preds.append(Pred(right[0], right[1], "join", op))
                return
            if left is None and right is not None and _is_value(node.lexpr):
                left, value, op = right, node.lexpr, RANGE_OPS.get(op, op)
            elif left is not None and _is_value(node.rexpr):
                value = node.rexpr
            else:
                return
            table, expr, column = left
            column_type = table.columns[column].type if column else None
            if op == "=":
                self.result.preds.append(Pred(table, expr, "eq", op))
            elif op in RANGE_OPS:
                self.result.preds.append(Pred(table, expr, "range", op))
            elif op in ("~~", "~~*"):
                self.result.preds.append(Pred(table, expr, "like", op))
            elif op in GIN_OPS and column and (column_type == "jsonb" or table.columns[column].category == "A"):
                self.result.preds.append(Pred(table, expr, "gin", op))
            param = param_number(value)
            if param is None:
                # a computed bound (now() - interval $2): no representative value exists for its
                # parameters, so the statement is planned generically (see whatif); a computed
                # equality value (lower($1)) needs none: any non-NULL value plans the same
                for number in param_numbers(value) if op in RANGE_OPS or op in ("~~", "~~*") else ():
                    self.result.params.setdefault(number, ParamContext(table, column, "expr", None))
            elif op not in GIN_OPS:
                ctx_op = "like" if op in ("~~", "~~*") else op
                self.result.params.setdefault(param, ParamContext(table, column, ctx_op, column_type))
            else:
                self.result.params.setdefault(param, ParamContext(table, None, op, column_type))
        elif kind == enums.A_Expr_Kind.AEXPR_IN and op == "=":
            left = self.key(node.lexpr, scope)
            if left is None or not isinstance(node.rexpr, list | tuple):
                return
            table, expr, column = left
            self.result.preds.append(Pred(table, expr, "eq", "IN"))
            for item in node.rexpr:
                param = param_number(item)
                if param is not None:
                    self.result.params.setdefault(
                        param, ParamContext(table, column, "=", table.columns[column].type if column else None)
                    )
        elif kind in (enums.A_Expr_Kind.AEXPR_BETWEEN, enums.A_Expr_Kind.AEXPR_BETWEEN_SYM):
            left = self.key(node.lexpr, scope)
            if left is None or not isinstance(node.rexpr, list | tuple) or len(node.rexpr) != 2:
                return
            table, expr, column = left
            self.result.preds.append(Pred(table, expr, "range", "BETWEEN"))
            column_type = table.columns[column].type if column else None
            for item, bound_op in zip(node.rexpr, (">=", "<="), strict=True):
                param = param_number(item)
                if param is not None:
                    self.result.params.setdefault(param, ParamContext(table, column, bound_op, column_type))
        elif kind in (enums.A_Expr_Kind.AEXPR_LIKE, enums.A_Expr_Kind.AEXPR_ILIKE) and op in ("~~", "~~*"):
            left = self.key(node.lexpr, scope)
            if left is not None:
                self.result.preds.append(Pred(left[0], left[1], "like", op))
                param = param_number(node.rexpr)
                if param is not None:
                    self.result.params.setdefault(param, ParamContext(left[0], left[2], "like", "text"))

    def column_ref(self, node: Any, scope: Scope) -> None:
        """Note which table column ``node`` reads (or that it reads whole rows: ``*``, ``t.*``, ``t``)."""
        fields = column_fields(node)
        names = [f.sval for f in node.fields if isinstance(f, ast.String)]
        if fields is None:  # ends in *
            if names:
                table = scope.by_alias.get(names[-1])
                if table is not None:
                    self.result.whole_row.add(table.oid)
            else:
                self.result.whole_row.update(t.oid for t in scope.by_alias.values())
            return
        resolved = scope.resolve(list(fields))
        if resolved is not None:
            self.result.columns.setdefault(resolved[0].oid, set()).add(resolved[1])
        elif len(fields) == 1 and fields[0] in scope.by_alias:
            self.result.whole_row.add(scope.by_alias[fields[0]].oid)

    def generic(self, node: Any, scope: Scope) -> None:
        """Find sub-queries and the columns read anywhere below ``node``."""
        for child in _children(node):
            if isinstance(child, ast.ColumnRef):
                self.column_ref(child, scope)
                continue
            if isinstance(child, ast.SubLink):
                if isinstance(child.subselect, ast.SelectStmt):
                    self.select(child.subselect, scope)
                if child.testexpr is not None:
                    self.generic(child.testexpr, scope)
                continue
            if isinstance(child, ast.SelectStmt):
                self.select(child, scope)
                continue
            self.generic(child, scope)


ARITH_OPS = frozenset({"+", "-", "*", "/"})
# What a parameter added to or subtracted from a value of these types must be for PostgreSQL to
# find the operator (date + integer, timestamp - interval); other types (numeric) take integer.
DATE_OFFSET = "integer"
TIME_OFFSET = "interval"
TIME_TYPES = frozenset(
    {"timestamp without time zone", "timestamp with time zone", "time without time zone", "time with time zone"}
)
TIME_CASTS = frozenset({"timestamp", "timestamptz", "time", "timetz", "interval"})
TIME_FUNCTIONS = frozenset({"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp", "date_trunc"})


def _arithmetic(stmt: Any, result: Analysis) -> None:
    """Every ``$n`` that is an operand of ``+ - * /`` anywhere in the statement, and its type when known.

    Why the whole tree and not the scoped walk: a normalized constant in arithmetic has no type
    the server can infer (``current_date + $7`` is ``date + unknown``), wherever it stands: a
    VALUES list, SET, ON CONFLICT DO UPDATE, RETURNING, a data-modifying CTE.  Missing one makes
    the statement unplannable (see rewrite.fallback_types), so no clause may be left out.
    """
    tables = [*result.tables, *([result.write_table] if result.write_table else [])]
    for node in descendants(stmt):
        if not (
            isinstance(node, ast.A_Expr)
            and node.kind == enums.A_Expr_Kind.AEXPR_OP
            and node.name
            and node.name[-1].sval in ARITH_OPS
        ):
            continue
        op = node.name[-1].sval
        for side, other, offset in ((node.lexpr, node.rexpr, op == "+"), (node.rexpr, node.lexpr, op in ("+", "-"))):
            if isinstance(side, ast.ParamRef):
                result.arith_params.add(int(side.number))
                # an offset: either side of +, the right of -; the left of - is the other side's
                # type ($n - current_date is date - date), which the server infers from unknown
                wanted = _offset_type(other, tables)
                if wanted is not None and not offset:
                    wanted = "unknown" if op == "-" else None
                if wanted is not None:
                    result.arith_types.setdefault(int(side.number), wanted)


def _offset_type(node: Any, tables: list[Table]) -> str | None:
    """The type a parameter added to ``node`` needs: integer beside a date, interval beside a time."""
    if isinstance(node, ast.SQLValueFunction):
        return DATE_OFFSET if node.op == enums.SQLValueFunctionOp.SVFOP_CURRENT_DATE else TIME_OFFSET
    if isinstance(node, ast.FuncCall):
        name = [f.sval for f in node.funcname if isinstance(f, ast.String)]
        return TIME_OFFSET if name and name[-1] in TIME_FUNCTIONS else None
    if isinstance(node, ast.TypeCast):
        names = [f.sval for f in node.typeName.names if isinstance(f, ast.String)]
        if names and names[-1] == "date":
            return DATE_OFFSET
        return TIME_OFFSET if names and names[-1] in TIME_CASTS else None
    if isinstance(node, ast.ColumnRef):
        fields = column_fields(node)
        if not fields:
            return None
        types = {t.columns[fields[-1]].type for t in tables if fields[-1] in t.columns}
        if types == {"date"}:
            return DATE_OFFSET
        if types and types <= TIME_TYPES | {"interval"}:
            return TIME_OFFSET
    return None


def _union(parts: list[tuple[str, dict[tuple[int, str], Table]] | None]) -> dict[tuple[int, str], Table]:
    out: dict[tuple[int, str], Table] = {}
    for part in parts:
        if part is not None:
            out.update(part[1])
    return out


def _refers_apart(left: Any, right: Any) -> bool:
    """Whether two column references go through different aliases (of the same table).

    ``e.manager_id = m.id`` over ``employees e JOIN employees m`` is a self-join whose both sides
    are join keys; ``l_commitdate < l_receiptdate`` compares two columns of one row and is not.
    """

    def text(node: Any) -> tuple[str, ...] | None:
        if isinstance(node, ast.ColumnRef):
            return tuple(f.sval for f in node.fields if isinstance(f, ast.String))
        return None

    a, b = text(left), text(right)
    return a is not None and b is not None and len(a) >= 2 and len(b) >= 2 and a[:-1] != b[:-1]


def _is_value(node: Any) -> bool:
    """True when ``node`` references no column (a constant, a parameter, now() - $1, ...)."""
    if isinstance(node, ast.ColumnRef | ast.SubLink):
        return False
    return all(_is_value(child) for child in _flatten(node))
