"""asymm.sqlparse, the one pglast walk: what a statement reads, writes and references (no servers).

The statements built here from generated names are only parsed, never run (hence the S608 waivers).
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st
from pglast import ast

from asymm import sqlparse

# "t_..." and "s_..." are never SQL keywords, so any generated name parses unquoted.
idents = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
relations = st.tuples(st.one_of(st.none(), idents.map(lambda s: f"s_{s}")), idents.map(lambda s: f"t_{s}"))


def spelled(name: tuple[str | None, str]) -> str:
    return name[1] if name[0] is None else f"{name[0]}.{name[1]}"


def info(statement: str) -> sqlparse.StatementInfo:
    found = sqlparse.statement_info(statement)
    assert found is not None, statement
    return found


@given(st.lists(relations, min_size=1, max_size=6), st.booleans())
def test_every_relation_of_a_join_is_read(names: list[tuple[str | None, str]], aliased: bool) -> None:
    items = [spelled(n) + (f" AS x{i}" if aliased else "") for i, n in enumerate(names)]
    statement = "SELECT 1 FROM " + items[0] + "".join(f" JOIN {item} ON true" for item in items[1:])  # noqa: S608
    found = info(statement)
    assert found.reads == set(names)
    assert found.writes == set()
    assert not found.modifies
    if aliased:
        assert all(found.aliases[f"x{i}"] == n for i, n in enumerate(names))
    assert all(n[1] in found.aliases for n in names)


@given(relations, relations, st.sampled_from(["insert", "update", "delete", "merge"]))
def test_the_target_of_a_write_is_written(
    target: tuple[str | None, str], source: tuple[str | None, str], kind: str
) -> None:
    t, s = spelled(target), spelled(source)
    statement = {
        "insert": f"INSERT INTO {t} (c) SELECT c FROM {s}",  # noqa: S608
        "update": f"UPDATE {t} SET c = 1 FROM {s} WHERE {t}.k = {s}.k",  # noqa: S608
        "delete": f"DELETE FROM {t} USING {s} WHERE {t}.k = {s}.k",  # noqa: S608
        "merge": f"MERGE INTO {t} USING {s} ON {t}.k = {s}.k WHEN MATCHED THEN DELETE",
    }[kind]
    found = info(statement)
    assert found.writes == {target}
    assert source in found.reads
    assert found.modifies
    assert (target in found.reads) == (target == source)


@given(idents.map(lambda s: f"t_{s}"), idents.map(lambda s: f"t_{s}"))
def test_a_cte_is_no_relation(cte: str, table: str) -> None:
    assume(cte != table)
    found = info(f"WITH {cte} AS (SELECT * FROM {table}) SELECT * FROM {cte}, s.{cte}")  # noqa: S608
    assert found.ctes == {cte}
    assert found.reads == {(None, table), ("s", cte)}  # a qualified name is never a CTE
    assert found.cte_named == {(None, cte)}


def test_column_references_with_their_qualifiers() -> None:
    found = info("SELECT o.total, name, c.* FROM orders o JOIN customers c USING (customer_id) WHERE o.id = $1")
    assert found.column_refs == {("o", "total"), (None, "name"), ("c", "*"), (None, "customer_id"), ("o", "id")}
    assert found.aliases == {
        "o": (None, "orders"),
        "orders": (None, "orders"),
        "c": (None, "customers"),
        "customers": (None, "customers"),
    }


def test_insert_and_update_columns_count_for_their_target() -> None:
    assert info("INSERT INTO a (x, y) VALUES (1, 2)").column_refs == {("a", "x"), ("a", "y")}
    assert ("b", "z") in info("UPDATE s.b SET z = z + 1").column_refs


def test_schemas_only_and_locks() -> None:
    found = info("SELECT * FROM ONLY s.p, q FOR UPDATE")
    assert found.reads == {("s", "p"), (None, "q")}
    assert found.inherited == {(None, "q")}
    assert found.modifies
    assert info("WITH d AS (DELETE FROM a RETURNING *) SELECT * FROM d").writes == {(None, "a")}


def test_functions_operators_and_fields() -> None:
    found = info(
        "SELECT pg_catalog.upper(k.f), (k).g, k.h FROM t k, generate_series(1, 2)"
        " WHERE d < current_date AND x BETWEEN 1 AND 2 AND y #~# 0 ORDER BY z USING <"
    )
    assert {"upper", "generate_series"} <= found.calls
    assert found.value_functions
    assert {"<", ">=", "<=", "#~#"} <= found.operators
    assert not any("BETWEEN" in op for op in found.operators)
    assert {"f", "g", "h"} <= found.fields
    assert found.functions_in_from


def test_aliases_targets_and_values() -> None:
    found = info("WITH w (a, b) AS (SELECT 1, 2) SELECT v.x FROM t AS u (c, d), LATERAL (VALUES (u.c)) v (x)")
    assert found.renamed_columns == {"a", "b", "c", "d", "x"}
    assert found.alias_names == {"u", "v"}
    assert len(found.targets) == 3  # 1, 2 and v.x
    assert [sqlparse.column_fields(v) for v in found.values] == [("u", "c")]


def test_node_helpers() -> None:
    tree = sqlparse.parse("SELECT t.a, t.* FROM t")
    refs = sqlparse.column_nodes(tree)
    assert [sqlparse.column_fields(r) for r in refs] == [("t", "a"), None]
    call = sqlparse.parse("SELECT pg_catalog.lower(x)")[0].stmt.targetList[0].val
    assert sqlparse.last_name(call.funcname) == {"lower"}
    assert sqlparse.last_name(None) == set()
    assert any(isinstance(n, ast.ColumnRef) for n in sqlparse.flatten(call))


def test_not_sql() -> None:
    assert sqlparse.statement_info("not sql at all") is None
