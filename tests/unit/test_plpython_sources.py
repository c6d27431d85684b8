"""The PL/Python modules spliced into the extension behave as the bodies of the released 0.2.0.

Each module is run three ways without a server: imported, as the body ``build.py`` splices (wrapped
as PL/Python wraps it) and as the body frozen in ``extension/asymm--0.2.0.sql``; all must agree.
"""

from __future__ import annotations

import json
import re
from copy import deepcopy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asymm.annotations.normalize import normalize_query
from asymm.annotations.plan_cost import plan_cost_class
from asymm.annotations.problem import annotation_problem
from asymm.drift.compare import compare
from tests.unit.plpython import build_module, plpython_bodies, released_body, run_body

BUILT = plpython_bodies(build_module().plan()[f"asymm--{build_module().current_version()}.sql"])


def three_ways(name: str, args: dict[str, Any], plpy: Any = None) -> list[Any]:
    return [run_body(BUILT[name], args, plpy), run_body(released_body(name), args, plpy)]


QUERIES = [
    "SELECT * FROM t WHERE id = 42",
    "select *  from T where id=$1;",
    "SELECT 'a''b', E'x\\'y', B'01', X'ff'",
    'SELECT "Mixed", "plain", "with""quote" FROM "S"."T"',
    "SELECT $tag$ body $tag$, $$x$$ /* a /* nested */ c */ -- x",
    "SELECT a FROM t WHERE b IN (1, 2, 3) AND c = ANY(ARRAY[1, 2])",
    "SELECT 1.5e3, .5, 3.",
    "SELECT a::int, b->>'k' FROM t",
    "SELECT ä FROM ü",
    "",
    ";;",
    "SELECT $unclosed$ never",
    "/* unclosed",
]


@pytest.mark.parametrize("query", QUERIES)
def test_normalize_query_is_the_released_tokenizer(query: str) -> None:
    assert three_ways("asymm.normalize_query", {"query": query}) == [normalize_query(query)] * 2


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ_ 1.$'\"-/*()[],;:=?\\eEbx\n")), max_size=40))
def test_normalize_query_agrees_on_generated_text(query: str) -> None:
    assert run_body(BUILT["asymm.normalize_query"], {"query": query}) == normalize_query(query)
    assert run_body(released_body("asymm.normalize_query"), {"query": query}) == normalize_query(query)


VALID = {
    "symbol": "dataEntity",
    "scope": "local",
    "regime": "Balance",
    "cost": "O(n)",
    "source": "user",
    "lineage": ["create", "query"],
    "confidence": 0.5,
    "evidence": 1,
    "target_type": "table",
    "target_names": ["public", "t"],
    "derived_from": None,
}
ENTRIES: list[Any] = [
    VALID,
    [1],
    "text",
    {**VALID, "symbol": ""},
    {**VALID, "symbol": "9x" * 40},
    {**VALID, "scope": "galaxy"},
    {**VALID, "regime": None},
    {**VALID, "cost": "O(n^3)"},
    {**VALID, "source": "guess"},
    {**VALID, "lineage": None},
    {**VALID, "lineage": [["a"]]},
    {**VALID, "lineage": ["Create"]},
    {**VALID, "lineage": ["a", "a"]},
    {**VALID, "lineage": [None]},
    {**VALID, "confidence": 2},
    {**VALID, "confidence": None},
    {**VALID, "evidence": True},
    {**VALID, "evidence": 0},
    {**VALID, "target_type": "cluster"},
    {**VALID, "target_names": []},
    {**VALID, "target_names": [""]},
    {**VALID, "source": "propagated"},
    {**VALID, "derived_from": "7c9e6679-7425-40de-944b-e07fc1f90ae7"},
]


@pytest.mark.parametrize("entry", [None, "[" * 5000 + "]" * 5000, *(json.dumps(e) for e in ENTRIES)])
def test_annotation_problem_is_the_released_validation(entry: str | None) -> None:
    assert three_ways("asymm._annotation_problem", {"entry": entry}) == [annotation_problem(entry)] * 2


def scan(kind: str, **extra: Any) -> dict[str, Any]:
    return {"Node Type": kind, **extra}


PLANS: list[Any] = [
    scan("Result"),
    scan("Seq Scan", **{"Relation Name": "t", "Schema": "public"}),
    scan("Index Scan", **{"Relation Name": "t", "Index Cond": "(id = 1)"}),
    scan("Index Only Scan", **{"Relation Name": "Odd.Name", "Schema": "S"}),
    scan("Bitmap Heap Scan", Plans=[scan("Bitmap Index Scan", **{"Index Name": "t_i"})]),
    scan("Sort", Plans=[scan("Seq Scan", **{"Relation Name": "t"})]),
    scan("Sort", Plans=[scan("Result")]),
    scan("Nested Loop", Plans=[scan("Seq Scan", **{"Relation Name": "a"}), scan("Seq Scan", **{"Relation Name": "b"})]),
    scan(
        "Nested Loop",
        Plans=[scan("Seq Scan", Alias="x"), scan("Index Scan", **{"Relation Name": "b", "Index Cond": "y"})],
    ),
    scan("Function Scan"),
    scan("CTE Scan", Plans=[scan("Result")]),
    [1],
    {"Node Type": 3},
    {"Plans": {}},
    scan("Append", Plans=[1]),
]


@pytest.mark.parametrize("plan", [*(json.dumps(p) for p in PLANS), "[" * 5000 + "]" * 5000])
def test_plan_cost_class_is_the_released_cost_class(plan: str) -> None:
    assert three_ways("asymm._plan_cost_class", {"plan": plan}) == [plan_cost_class(plan)] * 2


class FakePlpy:
    """The part of PL/Python's ``plpy`` that asymm._drift_compare uses, answering from fixed rows."""

    class SPIError(Exception):
        pass

    @staticmethod
    def quote_ident(name: str) -> str:
        return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'

    @staticmethod
    def quote_literal(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    def prepare(self, query: str, types: list[str]) -> str:
        return query

    def execute(self, query: str, args: list[Any] | None = None) -> list[dict[str, Any]]:
        if "current_user" in query:
            return [{"u": "alice"}]
        if "acldefault" in query:
            return [{"a": json.dumps(["alice:r", "alice:w"])}]
        if "relispartition" in query:  # no partition indexes
            return []
        if "pg_cast" in query:  # asymm's types here are neither the same nor binary-coercible
            return [{"same": False, "binary": False}]
        if "provolatile" in query:
            return [{"v": False}]
        if "to_regtype" in query:
            return [{"o": "mallory"}] if args == ["app.checked"] else []
        return [{"o": "mallory"}]


def obj(kind: str, key: str, parent: str | None, name: str, address: str, /, **props: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "key": key,
        "oid": int(key.split(":")[1]),
        "parent": parent,
        "name": name,
        "schema": "app",
        "identity": address,
        "props": props,
        "qname": address.split(" on ")[0] if kind not in ("column", "constraint") else name,
    }


BASE = [
    obj("schema", "nsp:1", None, "app", "app", owner="alice", acl=["alice:U"]),
    obj(
        "table",
        "rel:2",
        "nsp:1",
        "t",
        "app.t",
        relkind="r",
        owner="alice",
        acl=["alice:r", "bob:r"],
        persistence="p",
        partition_key=None,
        partition_of=None,
        partition_bound=None,
    ),
    obj(
        "column",
        "att:2:1",
        "rel:2",
        "id",
        "app.t.id",
        type="integer",
        notnull=True,
        default=None,
        generated=None,
        identity="a",
        collation=None,
        _attnum=1,
        _inherited=False,
    ),
    obj(
        "column",
        "att:2:2",
        "rel:2",
        "v",
        "app.t.v",
        type="app.checked",
        notnull=False,
        default="app.f(1)",
        generated=None,
        identity=None,
        collation=None,
        _attnum=2,
        _inherited=False,
    ),
    obj(
        "constraint",
        "con:3",
        "rel:2",
        "t_v_check",
        "t_v_check on app.t",
        type="c",
        def_="CHECK (v > 0)",
        validated=True,
        _index_def=None,
        _table="app.t",
        _partitioned=False,
    ),
]
for item in BASE:
    if "def_" in item["props"]:
        item["props"]["def"] = item["props"].pop("def_")


def variant(change: str) -> list[dict[str, Any]]:
    cur = deepcopy(BASE)
    if change == "dropped column":
        cur = [o for o in cur if o["key"] != "att:2:2"]
    elif change == "dropped table":
        cur = [o for o in cur if o["key"] == "nsp:1"]
    elif change == "renamed table":
        cur[1].update(name="u", identity="app.u", qname="app.u")
    elif change == "retyped column":
        cur[2]["props"]["type"] = "bigint"
    elif change == "grant":
        cur[1]["props"]["acl"] = ["alice:r"]
    elif change == "added column":
        cur.append(
            obj(
                "column",
                "att:2:3",
                "rel:2",
                "w",
                "app.t.w",
                type="text",
                notnull=False,
                default=None,
                generated=None,
                identity=None,
                collation=None,
                _attnum=3,
                _inherited=False,
            )
        )
    elif change == "changed check":
        cur[4]["props"]["def"] = "CHECK (v > 1)"
    return cur


@pytest.mark.parametrize(
    "change",
    [
        "none",
        "dropped column",
        "dropped table",
        "renamed table",
        "retyped column",
        "grant",
        "added column",
        "changed check",
    ],
)
@pytest.mark.parametrize("same_db", [True, False])
def test_drift_compare_is_the_released_comparison(change: str, same_db: bool) -> None:
    base, cur = json.dumps(BASE), json.dumps(variant(change))
    args = {"base": base, "cur": cur, "same_db": same_db, "lock_timeout": "2s"}
    expected = compare(base, cur, same_db, "2s", FakePlpy())
    built, released = three_ways("asymm._drift_compare", args, FakePlpy())
    assert built == expected
    # The same items as 0.2.0's, but for the "seq" issue 19 gives a rename (its place in its phase)
    # and the names by which an item finds the DDL that caused it
    without_seq = [
        dict(
            {k: v for k, v in i.items() if k != "match_names"},
            plan=[{k: v for k, v in st.items() if k != "seq"} for st in i["plan"]],
        )
        for i in json.loads(expected or "[]")
    ]
    if change == "changed check":
        # issue 19: the baseline's CHECK is added and validated under a temporary name before the
        # current one is dropped (0.2.0 dropped it first)
        (item,) = without_seq
        sql = [st["sql"] for st in item["plan"]]
        assert "t_v_check_asymm_new" in sql[0] and "DROP CONSTRAINT t_v_check" in sql[-2], sql
        return
    assert json.loads(released or "[]") == without_seq
    items = json.loads(expected or "null")
    assert (items == []) == (change == "none")


def test_drift_compare_of_a_missing_snapshot_is_null() -> None:
    assert compare(None, "[]", True, "2s", FakePlpy()) is None
    assert three_ways("asymm._drift_compare", {"base": "[]", "cur": None, "same_db": True, "lock_timeout": "2s"}) == [
        None,
        None,
    ]


@pytest.mark.parametrize("recorded", [False, True])
def test_kinds_a_baseline_did_not_record_are_no_drift(recorded: bool) -> None:
    """A baseline taken before types, extensions and default privileges were tracked: the enum found
    now is no "added" item (whose plan would drop it), unless the baseline recorded the kind."""
    base = json.loads(json.dumps(BASE))
    if recorded:
        base[0]["props"]["_tracks"] = ["type", "extension", "default_acl"]
    enum = obj("type", "typ:9", "nsp:1", "mood", "app.mood", typtype="e", labels=["a"], owner="alice", acl=[])
    items = json.loads(compare(json.dumps(base), json.dumps([*BASE, enum]), True, "2s", FakePlpy()) or "[]")
    assert [(i["kind"], i["object_type"]) for i in items] == ([("added", "type")] if recorded else [])
