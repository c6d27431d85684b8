"""asymm.advisor.observed without a server: reading pg_qualstats' constants, mapping them to `$n`,
and the typical value planned with (the integration side: tests/integration/test_advisor_observed.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from asymm.advisor.constants import renumbering
from asymm.advisor.observed import literal_value, renumbered, typical, values_by_param


def test_a_single_literal_gives_its_value_in_input_syntax() -> None:
    assert literal_value("'brand 278'::text") == "brand 278"
    assert literal_value("'it''s'::text") == "it's"
    assert literal_value("743::integer") == "743"
    assert literal_value("-4.5::numeric") == "-4.5"
    assert literal_value("'2023-05-09'::date") == "2023-05-09"
    assert literal_value("true") == "true"


def test_anything_but_one_literal_gives_nothing() -> None:
    for text in ["ARRAY[1]", "(1, 2)", "1; DROP TABLE t", "now()", "1 + 1", "NULL", "", "'a' 'b' ::"]:
        assert literal_value(text) is None, text


@given(st.text(max_size=200))
def test_no_text_makes_literal_value_raise(text: str) -> None:
    """pg_qualstats' constvalue is data: any text is either one literal's value or nothing."""
    value = literal_value(text)
    assert value is None or isinstance(value, str)


def test_positions_must_point_at_a_parameter() -> None:
    text = "SELECT note FROM t WHERE price > $1 AND kind = $12"
    observed = [
        (text.index("$1 "), "5::int", 2),
        (text.index("$1 "), "7::int", 3),
        (text.index("$12"), "'x'::text", 1),
        (text.index("price"), "9::int", 1),  # a literal's position in a text sent with literals
        (len(text) + 5, "1::int", 1),
    ]
    assert values_by_param(text, observed) == {1: ["7", "5"], 12: ["x"]}


def test_values_follow_the_renumbering_of_grammar_constants() -> None:
    """`payload->>$2 = $1`: $2 becomes the constant 'session', so the observed $1 stays $1 and a
    later $3 becomes $2."""
    query = "SELECT id FROM events WHERE payload->>$2 = $1 AND account_id = $3"
    renumber = renumbering(query, {2: "'session'"})
    assert renumber == {1: 1, 3: 2}
    assert renumbered({1: ["abc"], 2: ["session"], 3: ["42"]}, renumber) == {1: ["abc"], 2: ["42"]}
    assert renumbered({1: ["abc"]}, None) == {1: ["abc"]}


def test_the_typical_value_is_the_median() -> None:
    assert typical(["10", "9", "100"]) == "10"  # numerically, not "10" < "100" < "9"
    assert typical(["2024-01-03", "2023-12-30", "2024-01-01"]) == "2024-01-01"
    assert typical(["b", "a", "c", "d"]) == "c"
