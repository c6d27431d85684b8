"""The advisor's repair of normalized statements, without a server."""

from __future__ import annotations

from asymm.advisor.analysis import Analysis, Expression, Pred, SortSpec
from asymm.advisor.candidates import Candidate, expression_columns, merge, on_columns
from asymm.advisor.catalog import Table
from asymm.advisor.rewrite import repair_tokens


def test_repairs_what_normalization_breaks() -> None:
    text, forced, _ = repair_tokens("select * from t where d > date $1 and ts < now() - interval $2")
    assert text == "select * from t where d > ($1::date) and ts < now() - ($2::interval)"
    assert forced == {1: "date", 2: "interval"}
    text, forced, _ = repair_tokens("select extract($1 from d) from t where s = 'date $9'")
    assert text == "select extract(epoch from d) from t where s = 'date $9'"
    assert forced == {1: "text"}
    text, _, _ = repair_tokens("select * from t where ts > timestamp with time zone $1")
    assert text == "select * from t where ts > ($1::timestamptz)"


def test_an_index_on_a_column_never_serves_an_expression_of_it() -> None:
    """Candidates are told apart by their full keys; the proxy pricing leaves out plain indexes on
    a column the statement uses only through an expression of it (see WhatIf._cost_by_proxy)."""
    people = Table(1, "public", "people", "public.people")
    other = Table(2, "public", "other", "public.other")
    analysis = Analysis(
        "select",
        preds=[Pred(people, "(pg_catalog.lower(email))", "eq", "="), Pred(people, "country", "eq", "=")],
        sorts=[SortSpec(people, [("(pg_catalog.md5(name))", True)], True)],
        groups=[(other, ["(pg_catalog.upper(code))"])],
        expressions={
            (1, "(pg_catalog.lower(email))"): Expression("email"),
            (1, "(pg_catalog.md5(name))"): Expression("name"),
            (2, "(pg_catalog.upper(code))"): Expression("code"),
        },
    )
    columns = expression_columns(analysis)
    assert columns == {(1, "email"), (1, "name"), (2, "code")}
    plain = Candidate(1, "public.people", ("email",))
    expression = Candidate(1, "public.people", ("(pg_catalog.lower(email))",))
    assert expression.columns == ["lower(email)"]
    assert plain != expression and len({plain, expression}) == 2
    assert merge([[plain], [expression], [plain]]) == [plain, expression]
    assert on_columns(plain, columns)
    assert on_columns(Candidate(1, "public.people", ("country", "name DESC")), columns)
    assert not on_columns(expression, columns)
    assert not on_columns(Candidate(1, "public.people", ("country",)), columns)
    assert not on_columns(Candidate(2, "public.other", ("email",)), columns)  # same name, other table
    assert on_columns(Candidate(2, "public.other", ("code",)), columns)
    assert expression_columns(Analysis("select", preds=[Pred(people, "email", "eq", "=")])) == frozenset()


def test_a_candidate_with_include_columns_is_its_own_index() -> None:
    """INCLUDE columns are part of the definition, the name and the identity of a candidate."""
    narrow = Candidate(1, "public.t", ("user_id",))
    wide = Candidate(1, "public.t", ("user_id",), include=("created_at", '"Status"'))
    assert narrow != wide and narrow.name != wide.name
    assert wide.definition() == (
        f'CREATE INDEX {wide.name} ON public.t USING btree (user_id) INCLUDE (created_at, "Status")'
    )
    assert merge([[wide], [narrow, wide]]) == [wide, narrow]
    assert merge([[wide]])[0].include == wide.include


def test_advise_prints_one_line_when_the_cap_stopped_the_selection() -> None:
    from asymm.cli.advisor_cmd import render_advice

    result = {
        "indexes": [],
        "workload_cost_before": 0.0,
        "workload_cost_after": 0.0,
        "size_note": "note",
        "planned": 0,
        "statements": 0,
        "whatif_calls": 0,
        "runtime_s": 0.0,
        "skipped": [],
        "stopped_by": "max_indexes",
        "beneficial_candidates_left": 7,
    }
    capped = [line for line in render_advice(result).splitlines() if "index cap" in line]
    assert capped == [
        "stopped by the index cap (advisor.max_indexes / --max-indexes): 7 more candidates would still pay"
    ]
    result["stopped_by"] = "marginal_benefit"
    assert "index cap" not in render_advice(result)
