"""The advisor's repair of normalized statements, without a server."""

from __future__ import annotations

from asymm.advisor.analysis import Analysis, Expression, Pred, SortSpec
from asymm.advisor.candidates import Candidate, across_statements, expression_columns, merge, on_columns
from asymm.advisor.catalog import Column, Table
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


def test_candidates_across_statements_are_bounded_per_table() -> None:
    """However many statements share a table, it gets at most 8 candidates built across them
    (MAX_LEADS families of PER_LEAD): their pricing stays a small part of a run."""
    names = [f"c{k}" for k in range(12)]
    table = Table(1, "public", "t", "public.t", columns={n: Column(n, "integer", "N") for n in names})
    statements = []
    for k in range(500):
        eq = [names[k % 5], names[(k * 7) % 12]]
        analysis = Analysis(
            "select",
            preds=[Pred(table, c, "eq", "=") for c in eq] + [Pred(table, names[(k * 3) % 12], "range", ">")],
            columns={1: {names[(k * 5) % 12], names[(k * 11) % 12]}},
        )
        statements.append((analysis, k, float(k % 97)))
    made = across_statements(statements)
    assert 0 < len(made) <= 8
    assert any(c.include for c in made)  # INCLUDE for index-only scans of the statements' columns
    assert all(len(c.include) <= 4 and len(c.keys) <= 4 for c in made)
    # the most shared equality column leads, and each candidate carries the statements it serves
    shared = {
        n: sum(1 for a, _, _ in statements if any(p.expr == n and p.kind == "eq" for p in a.preds)) for n in names
    }
    assert shared[made[0].keys[0]] == max(shared.values())
    assert len(made[0].queryids) == max(shared.values())


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
