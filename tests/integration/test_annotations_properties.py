"""Property-based tests (hypothesis) of the annotation SQL API against the real server.

Every call with random input must either write exactly the row asked for, or fail with an error
that names the field (and nothing changes); and the server's fingerprint must equal the control
plane's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asymm.annotations.fingerprint import normalize_query, query_fingerprint

SCOPES = ["local", "schema", "global"]
REGIMES = ["Exploration", "Optimization", "Stabilization", "Balance"]
COSTS = ["O(1)", "O(log n)", "O(n)", "O(n log n)", "O(n^2)"]
WORDS = ["create", "query", "sync", "cache", "optimize", "update", "delete"]
FIELDS = ("symbol", "scope", "regime", "cost", "lineage")

text = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)
symbols = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True), text)
words = st.one_of(st.sampled_from(WORDS), st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), text)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def target(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    conn.execute("CREATE TABLE prop_target (id int PRIMARY KEY, v text)")
    yield conn


def _state(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT symbol, scope, regime, cost, lineage, source FROM asymm.annotation_entries ORDER BY id"
    ).fetchall()


@PROPERTY
@given(
    symbol=symbols,
    scope=st.one_of(st.sampled_from(SCOPES), text),
    regime=st.one_of(st.sampled_from(REGIMES), text),
    cost=st.one_of(st.sampled_from(COSTS), text),
    lineage=st.lists(words, max_size=5),
    column=st.sampled_from([None, "v", "id", "nope"]),
)
def test_annotate_succeeds_with_a_valid_row_or_fails_naming_the_field(
    target: psycopg.Connection[Any],
    symbol: str,
    scope: str,
    regime: str,
    cost: str,
    lineage: list[str],
    column: str | None,
) -> None:
    conn = target
    before = _state(conn)
    try:
        if column is None:
            conn.execute(
                "SELECT asymm.annotate('prop_target'::regclass, %s, %s, %s, %s, %s)",
                (symbol, scope, regime, cost, lineage),
            )
        else:
            conn.execute(
                "SELECT asymm.annotate('prop_target'::regclass, %s, %s, %s, %s, %s, %s)",
                (column, symbol, scope, regime, cost, lineage),
            )
    except psycopg.Error as exc:
        assert exc.sqlstate in ("22023", "42703"), exc
        message = exc.diag.message_primary or ""
        assert any(f"field {f}" in message for f in (*FIELDS, "column")), message
        assert exc.diag.message_hint, "the error must list the accepted values"
        assert _state(conn) == before, "a failed call must write nothing"
        return
    label = "public.prop_target" if column is None else f"public.prop_target.{column}"
    row = conn.execute(
        "SELECT symbol, scope, regime, cost, lineage, source, resolved FROM asymm.annotations WHERE target = %s",
        (label,),
    ).fetchone()
    assert row == (symbol, scope, regime, cost, lineage, "user", True)
    assert scope in SCOPES and regime in REGIMES and cost in COSTS and len(set(lineage)) == len(lineage)


tuples = st.tuples(
    st.from_regex(r"[a-z]{1,5}", fullmatch=True),
    st.sampled_from(SCOPES),
    st.sampled_from(REGIMES),
    st.sampled_from(COSTS),
    st.lists(st.sampled_from(WORDS), unique=True, max_size=4),
    st.sampled_from(["user", "propagated", "inferred"]),
    st.floats(0, 1),
    st.integers(1, 5),
)


@PROPERTY
@given(a=tuples, b=tuples)
def test_amplify_widens_worsens_unions_and_strengthens(
    conn: psycopg.Connection[Any], a: tuple[Any, ...], b: tuple[Any, ...]
) -> None:
    row = conn.execute(
        "SELECT to_jsonb(asymm.amplify(ROW(%s,%s,%s,%s,%s,%s,%s,%s)::asymm.annotation_tuple,"
        " ROW(%s,%s,%s,%s,%s,%s,%s,%s)::asymm.annotation_tuple)),"
        " to_jsonb(asymm.amplify(ROW(%s,%s,%s,%s,%s,%s,%s,%s)::asymm.annotation_tuple,"
        " ROW(%s,%s,%s,%s,%s,%s,%s,%s)::asymm.annotation_tuple))",
        (*a, *b, *b, *a),
    ).fetchone()
    assert row is not None
    ab, ba = row
    assert ab == ba, "amplify is commutative"
    assert SCOPES.index(ab["scope"]) == max(SCOPES.index(a[1]), SCOPES.index(b[1]))
    assert COSTS.index(ab["cost"]) == max(COSTS.index(a[3]), COSTS.index(b[3]))
    assert set(ab["lineage"]) == set(a[4]) | set(b[4]) and len(ab["lineage"]) == len(set(ab["lineage"]))
    assert ab["confidence"] == pytest.approx(1 - (1 - a[6]) * (1 - b[6]))
    assert ab["confidence"] >= max(a[6], b[6]) - 1e-12
    assert ab["evidence"] == a[7] + b[7]


SQL_PIECES = [
    "SELECT",
    "select",
    "*",
    "FROM",
    "orders",
    '"Orders"',
    '"orders"',
    "WHERE",
    "id",
    "=",
    "42",
    "$1",
    "'x'",
    "'it''s'",
    "E'a\\'b'",
    "$$q$$",
    "IN",
    "(",
    ")",
    ",",
    "1.5e3",
    "-- note\n",
    "/* c */",
    ";",
    "::",
    "int",
    "  ",
    "\n",
    "ORDER BY",
    "Ab",
    "[",
    "]",
    '"a""b"',
    "$tag$x$tag$",
    "x'1F'",
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(SQL_PIECES), max_size=14).map(" ".join) | text)
def test_server_and_control_plane_fingerprints_agree(conn: psycopg.Connection[Any], query: str) -> None:
    row = conn.execute("SELECT asymm.normalize_query(%s), asymm.query_fingerprint(%s)", (query, query)).fetchone()
    assert row == (normalize_query(query), query_fingerprint(query))
