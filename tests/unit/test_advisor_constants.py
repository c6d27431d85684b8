"""Grammar constants (asymm.advisor.constants) without a server: which ``$n`` are grammar, the
parallel walk of raw and normalized trees, and the substitution (issue 18)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from asymm.advisor.constants import match, substitute

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@given(
    key=TEXT,
    unit=st.sampled_from(["day", "month"]),
    values=st.lists(TEXT, min_size=3, max_size=3),
    number=st.integers(-(10**9), 10**9),
    limit=st.integers(0, 10**6),
)
def test_only_grammar_positions_come_back(key: str, unit: str, values: list[str], number: int, limit: int) -> None:
    v = [lit("v:" + x) for x in values]
    raw = (
        f"SELECT id FROM events WHERE payload->>{lit('k:' + key)} = {v[0]} AND id > {number}"  # noqa: S608 - a text to parse, never run
        f" AND kind IN ({v[1]}, {v[2]}) ORDER BY date_trunc({lit(unit)}, at) LIMIT {limit}"
    )
    normalized = (
        "SELECT id FROM events WHERE payload->>$1 = $2 AND id > $3 AND kind IN ($4, $5)"
        " ORDER BY date_trunc($6, at) LIMIT $7"
    )
    assert match(raw, normalized) == {1: lit("k:" + key), 6: lit(unit)}


def test_a_bound_parameter_stays_one() -> None:
    # the application bound the compared value itself ($1); pg_stat_statements numbered the key after it
    assert match("SELECT 1 FROM t WHERE doc->>'a' = $1", "SELECT $2 FROM t WHERE doc->>$3 = $1") == {3: "'a'"}


def test_nothing_from_another_shape_or_a_broken_text() -> None:
    normalized = "SELECT id FROM t WHERE doc->>$1 = $2"
    assert match("SELECT id FROM t WHERE doc->'a' = 'x'", normalized) == {}
    assert match("SELECT id FROM t WHERE doc->>'a' = 'x' AND", normalized) == {}  # truncated
    assert match("SELECT 1; SELECT id FROM t WHERE doc->>'a' = 'x'", normalized) == {}
    assert match("SELECT id FROM t WHERE doc->>'a' = 'x'", "SELECT id FROM t WHERE doc->>$1 = $1") == {}


def test_compared_expressions_and_plain_comparisons_give_nothing() -> None:
    # lower($1) is the compared value's side (no column): not a key, so its constant is not grammar
    assert (
        match("SELECT 1 FROM t WHERE lower(email) = lower('A@B')", "SELECT $1 FROM t WHERE lower(email) = lower($2)")
        == {}
    )
    assert match("SELECT 1 FROM t WHERE a + 5 > 7", "SELECT $1 FROM t WHERE a + $2 > $3") == {}


def test_substitution_renumbers_and_refuses_non_literals() -> None:
    query = "SELECT id FROM t WHERE doc->>$1 = $2 AND n > $3"
    assert substitute(query, {1: "'a b'"}) == "SELECT id FROM t WHERE doc ->> 'a b' = $1 AND n > $2"
    assert substitute(query, {1: "current_user"}) == query
    assert substitute(query, {1: "'a'::regclass"}) == query
    assert substitute(query, {3: "5"}) == query  # a compared value's position: never replaced
