"""The advisor's repair of normalized statements, without a server."""

from __future__ import annotations

from asymm.advisor.analysis import Analysis, Pred, SortSpec
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
    a column the statement uses only through f(col) (see WhatIf._cost_by_proxy)."""
    people = Table(1, "public", "people", "public.people")
    other = Table(2, "public", "other", "public.other")
    analysis = Analysis(
        "select",
        preds=[Pred(people, "lower(email)", "eq", "="), Pred(people, "country", "eq", "=")],
        sorts=[SortSpec(people, [("md5(name)", True)], True)],
        groups=[(other, ["upper(code)"])],
    )
    columns = expression_columns(analysis)
    assert columns == {(1, "email"), (1, "name"), (2, "code")}
    plain = Candidate(1, "public.people", ("email",))
    expression = Candidate(1, "public.people", ("lower(email)",))
    assert plain != expression and len({plain, expression}) == 2
    assert merge([[plain], [expression], [plain]]) == [plain, expression]
    assert on_columns(plain, columns)
    assert on_columns(Candidate(1, "public.people", ("country", "name DESC")), columns)
    assert not on_columns(expression, columns)
    assert not on_columns(Candidate(1, "public.people", ("country",)), columns)
    assert not on_columns(Candidate(2, "public.other", ("email",)), columns)  # same name, other table
    assert on_columns(Candidate(2, "public.other", ("code",)), columns)
    assert expression_columns(Analysis("select", preds=[Pred(people, "email", "eq", "=")])) == frozenset()


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


def test_the_readable_advice_shows_how_each_index_was_priced() -> None:
    from asymm.cli.advisor_cmd import render_advice

    sampled = "real index on a sample copy (100000 of 2000000 rows), planner cost scaled"
    index: dict[str, object] = {
        "table": "public.docs",
        "definition": "CREATE INDEX i ON public.docs USING gin (payload)",
    }
    index |= {"estimated_benefit": 10.0, "size_bytes": 1024, "queryids": [1], "estimate": sampled, "size_note": "x"}
    result = {
        "indexes": [index],
        "workload_cost_before": 0.0,
        "workload_cost_after": 0.0,
        "size_note": "note",
        "planned": 1,
        "statements": 1,
        "whatif_calls": 0,
        "runtime_s": 0.0,
        "skipped": [],
    }
    text = render_advice(result)
    assert "estimate" in text.splitlines()[0] and sampled in text
    assert "scaled to the table's rows" in text


class _Catalog:
    """Catalog.table for retarget: public.docs (oid 7) and public.other (oid 8)."""

    def table(self, schema: str | None, name: str) -> Table | None:
        oids = {"docs": 7, "other": 8}
        return (
            Table(oids[name], "public", name, f"public.{name}") if name in oids and schema in (None, "public") else None
        )


def test_retarget_replaces_only_the_tables_references_on_the_parse_tree() -> None:
    import pglast

    from asymm.advisor.sample import retarget

    docs = Table(7, "public", "docs", "public.docs")

    def tree(text: str) -> object:
        return pglast.parse_sql(text)[0].stmt

    out = retarget(
        tree("select docs.id from docs join other o on o.id = docs.id where payload @> $1"), _Catalog(), docs
    )
    assert out == (
        "SELECT docs.id FROM pg_temp.asymm_sample_copy AS docs INNER JOIN other AS o ON o.id = docs.id"
        " WHERE payload @> $1"
    )
    out = retarget(tree("select d.id from public.docs d where d.tags && $1"), _Catalog(), docs)
    assert out == "SELECT d.id FROM pg_temp.asymm_sample_copy AS d WHERE d.tags && $1"
    # a WITH query named like the table shadows it; a statement not on the table is left alone
    assert retarget(tree("with docs as (select 1 as id) select id from docs"), _Catalog(), docs) is None
    # a string that spells the table's name is data, not a reference
    out = retarget(tree("update docs set note = 'from docs' where tags @> $1"), _Catalog(), docs)
    assert out == "UPDATE pg_temp.asymm_sample_copy AS docs SET note = 'from docs' WHERE tags @> $1"
