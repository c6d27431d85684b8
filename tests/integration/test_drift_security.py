"""Drift plans never run an untrusted role's code with the rights of whoever applies them.

A plan re-creates objects from the baseline, whose definitions their owners wrote.  Most DDL only
stores such text; `CREATE MATERIALIZED VIEW ... AS query` runs the query, as the current user.  So a
role that had a materialized view over its own function in the baseline, then dropped it, would
have that function run as the superuser who checks the plan (`asymm drift --sql` applies it to a
scratch copy of the schema) or applies it.

Some ALTER TABLE forms evaluate expressions too, with the rights of whoever runs them, even on an
empty table: ADD COLUMN ... DEFAULT computes a non-volatile default once (the "missing value"), a
generated column and a CHECK being validated constant-fold their IMMUTABLE calls.  The plan adds
such a default afterwards with SET DEFAULT, flags what it cannot avoid ("runs code of role X"),
and the scratch check stubs the functions of non-superuser roles while it applies the plan.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import conninfo, sql

from asymm.cli import main
from tests.harness.roles import role_dsn

PLANTED = """
CREATE TABLE public.ran_as (who name, was_super boolean);
CREATE FUNCTION public.escalate() RETURNS integer LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    INSERT INTO public.ran_as SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('ALTER ROLE %I SUPERUSER', (SELECT tableowner FROM pg_tables
                                                     WHERE schemaname = 'public' AND tablename = 'ran_as'));
    END IF;
    RETURN 1;
END $f$;
CREATE MATERIALIZED VIEW public.mv AS SELECT public.escalate() AS x;
"""


@pytest.fixture
def mallory(db: str) -> Iterator[str]:
    """An untrusted login role that may create objects in public, as its DSN."""
    name, password = f"mallory_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(name)))
    yield role_dsn(db, name, password)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def is_superuser(db: str, dsn: str) -> bool:
    user = conninfo.conninfo_to_dict(dsn)["user"]
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
    return bool(row and row[0])


def test_a_dropped_materialized_view_is_recreated_without_running_its_query_as_the_planner(
    db: str, mallory: str
) -> None:
    with psycopg.connect(mallory, autocommit=True) as conn:
        conn.execute(PLANTED)
    result = CliRunner().invoke(main, ["baseline", "b", "--schema", "public", "--dsn", db])
    assert result.exit_code == 0, result.output
    with psycopg.connect(mallory, autocommit=True) as conn:
        conn.execute("DROP MATERIALIZED VIEW public.mv")
        conn.execute("DELETE FROM public.ran_as")

    result = CliRunner().invoke(main, ["drift", "b", "--sql", "--dsn", db])
    assert result.exit_code == 3, result.output
    assert "-- validated on a scratch copy of the schema: ok" in result.output
    assert not is_superuser(db, mallory)
    assert "WITH NO DATA;" in result.output and "REFRESH MATERIALIZED VIEW public.mv;" in result.output

    # Applied as a superuser, the plan fills the view as its owner, who stays what it was.
    with psycopg.connect(db, autocommit=True) as conn:
        for (statement,) in conn.execute("SELECT statement FROM asymm.drift_plan('b') ORDER BY step").fetchall():
            conn.execute(statement)
        assert conn.execute("SELECT x FROM public.mv").fetchall() == [(1,)]
        owner = conninfo.conninfo_to_dict(mallory)["user"]
        assert conn.execute("SELECT who::text, was_super FROM public.ran_as").fetchall() == [(owner, False)]
    assert not is_superuser(db, mallory)


# A role had `c int DEFAULT public.dflt()` (its IMMUTABLE function) in the baseline, then made
# dflt() call a VOLATILE function that makes it superuser when a superuser runs it, and dropped c.
ESCALATE_IF_SUPER = """
CREATE TABLE public.ran_as (who name, was_super boolean, db name);
GRANT INSERT ON public.ran_as TO PUBLIC;
CREATE FUNCTION public.helper() RETURNS integer LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    INSERT INTO public.ran_as SELECT current_user, rolsuper, current_database()
      FROM pg_roles WHERE rolname = current_user;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('ALTER ROLE %I SUPERUSER', (SELECT tableowner FROM pg_tables
                                                     WHERE schemaname = 'public' AND tablename = 'ran_as'));
    END IF;
    RETURN 1;
END $f$;
"""
DEFAULT_BASELINE = (
    ESCALATE_IF_SUPER
    + """
CREATE FUNCTION public.dflt() RETURNS integer LANGUAGE sql IMMUTABLE AS $f$ SELECT 1 $f$;
CREATE TABLE public.dt (id integer PRIMARY KEY, c integer DEFAULT public.dflt());
"""
)
DEFAULT_AFTER = """
CREATE OR REPLACE FUNCTION public.dflt() RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN PERFORM public.helper(); RETURN 1; END $f$;
ALTER TABLE public.dt DROP COLUMN c;
"""


def baseline_then(db: str, role_dsn: str, before: str, after: str) -> None:
    with psycopg.connect(role_dsn, autocommit=True) as conn:
        conn.execute(before)
    result = CliRunner().invoke(main, ["baseline", "b", "--schema", "public", "--dsn", db])
    assert result.exit_code == 0, result.output
    with psycopg.connect(role_dsn, autocommit=True) as conn:
        conn.execute(after)


def test_checking_a_plan_does_not_run_a_restored_columns_default_as_the_checker(db: str, mallory: str) -> None:
    baseline_then(db, mallory, DEFAULT_BASELINE, DEFAULT_AFTER)

    result = CliRunner().invoke(main, ["drift", "b", "--sql", "--dsn", db])
    assert result.exit_code == 3, result.output
    assert "-- validated on a scratch copy of the schema: ok" in result.output
    assert not is_superuser(db, mallory), "asymm drift --sql ran the table owner's code as superuser"
    # The column comes back without its default, which SET DEFAULT then stores without evaluating it;
    # dflt() gets its baseline body back first, once.
    assert "ADD COLUMN c integer;" in result.output
    assert result.output.count("CREATE OR REPLACE FUNCTION public.dflt()") == 1
    assert result.output.index("CREATE OR REPLACE FUNCTION public.dflt()") < result.output.index(
        "ALTER COLUMN c SET DEFAULT public.dflt();"
    )


def test_applying_a_plan_does_not_run_a_restored_columns_default_as_the_applier(db: str, mallory: str) -> None:
    baseline_then(db, mallory, DEFAULT_BASELINE, DEFAULT_AFTER)

    with psycopg.connect(db, autocommit=True) as conn:
        for (statement,) in conn.execute("SELECT statement FROM asymm.drift_plan('b') ORDER BY step").fetchall():
            conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM asymm.drift('b')").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM public.ran_as").fetchone() == (0,)
    assert not is_superuser(db, mallory), "applying the drift plan ran the table owner's code as superuser"


def test_a_not_null_default_that_must_be_evaluated_is_flagged_and_not_run_by_the_check(db: str, mallory: str) -> None:
    """Existing rows need a NOT NULL column's value: the plan keeps ADD COLUMN ... DEFAULT and says whose
    code it runs, so the DBA runs it as that role; the scratch check still runs none of it."""
    baseline_then(
        db, mallory, DEFAULT_BASELINE.replace("DEFAULT public.dflt()", "NOT NULL DEFAULT public.dflt()"), DEFAULT_AFTER
    )
    owner = conninfo.conninfo_to_dict(mallory)["user"]

    result = CliRunner().invoke(main, ["drift", "b", "--sql", "--dsn", db])
    assert result.exit_code == 3, result.output
    assert "-- validated on a scratch copy of the schema: ok" in result.output
    assert not is_superuser(db, mallory)
    with psycopg.connect(db, autocommit=True) as conn:
        steps = conn.execute("SELECT statement, hazards FROM asymm.drift_plan('b') ORDER BY step").fetchall()
    flagged = [s for s, hazards in steps if f"runs code of role {owner}: public.dflt()" in hazards]
    assert flagged == ["ALTER TABLE public.dt ADD COLUMN c integer DEFAULT public.dflt()"], steps
    assert [s for s, _h in steps].index(flagged[0]) > [s for s, _h in steps].index(
        next(s for s, _h in steps if s.startswith("CREATE OR REPLACE FUNCTION public.dflt()"))
    )


CHECK_AND_GENERATED_BASELINE = (
    ESCALATE_IF_SUPER
    + """
CREATE FUNCTION public.one() RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN PERFORM public.helper(); RETURN 1; END $f$;
CREATE DOMAIN public.small AS integer CHECK (VALUE < public.one() + 100);
CREATE TABLE public.ct (id integer CONSTRAINT id_positive CHECK (id > public.one() - 100),
                        g integer GENERATED ALWAYS AS (id + public.one()) STORED, s public.small);
CREATE TABLE public.pt (k integer) PARTITION BY RANGE ((k + coalesce(public.one(), 0)));
CREATE TABLE public.pt1 PARTITION OF public.pt FOR VALUES FROM (0) TO (10);
"""
)
CHECK_AND_GENERATED_AFTER = """
ALTER TABLE public.ct DROP CONSTRAINT id_positive, DROP COLUMN g, DROP COLUMN s;
ALTER TABLE public.pt DETACH PARTITION public.pt1;
"""


def validated_plan(db: str, mallory: str) -> dict[str, Any]:
    """``asymm drift b --sql`` validates on scratch without making the role a superuser: the plan's
    hazards by statement."""
    result = CliRunner().invoke(main, ["drift", "b", "--sql", "--dsn", db])
    assert result.exit_code == 3, result.output
    assert "-- validated on a scratch copy of the schema: ok" in result.output
    assert not is_superuser(db, mallory)
    with psycopg.connect(db, autocommit=True) as conn:
        return dict(conn.execute("SELECT statement, hazards FROM asymm.drift_plan('b')").fetchall())


def test_checks_generated_columns_domains_and_partition_keys_run_as_nobody_in_the_check(db: str, mallory: str) -> None:
    """VALIDATE of a CHECK, ADD COLUMN of a generated column or of a domain with checks, and ATTACH
    PARTITION evaluate their expressions (constant-folded even on an empty table): flagged, and the
    scratch check, which builds and applies everything with stubbed functions, runs none of them.
    (A stub returns NULL: a partition key that only that NULL keeps from being constant would not
    restore into the scratch copy, hence the coalesce.)"""
    baseline_then(db, mallory, CHECK_AND_GENERATED_BASELINE, CHECK_AND_GENERATED_AFTER)
    owner = conninfo.conninfo_to_dict(mallory)["user"]

    steps = validated_plan(db, mallory)
    code = f"runs code of role {owner}: public.one()"
    assert code in steps["ALTER TABLE public.ct VALIDATE CONSTRAINT id_positive"]
    assert code in steps["ALTER TABLE public.ct ADD COLUMN g integer GENERATED ALWAYS AS ((id + public.one())) STORED"]
    assert (
        f"runs code of role {owner}: checks of domain public.small"
        in steps["ALTER TABLE public.ct ADD COLUMN s public.small"]
    )
    assert code in steps["ALTER TABLE public.pt ATTACH PARTITION public.pt1 FOR VALUES FROM (0) TO (10)"]

    # Applied as the DBA is told to (each flagged statement as the role whose code it runs), the plan
    # brings the schema back, and the role's code ran as nobody else.
    with psycopg.connect(db, autocommit=True) as conn:
        apply_as_flagged(conn, "b")
        assert conn.execute("SELECT count(*) FROM asymm.drift('b')").fetchone() == (0,)
        ran = conn.execute("SELECT DISTINCT who::text, was_super FROM public.ran_as").fetchall()
        assert ran in ([], [(owner, False)]), ran
    assert not is_superuser(db, mallory)


def apply_as_flagged(conn: psycopg.Connection[tuple[object, ...]], baseline: str) -> None:
    """Apply a plan, each statement that "runs code of role X" as X (SET ROLE: enough for a test whose
    planted code does not RESET ROLE; a DBA logs in as X), the others as the connection's role."""
    rows = conn.execute("SELECT statement, hazards FROM asymm.drift_plan(%s) ORDER BY step", (baseline,)).fetchall()
    for statement, hazards in rows:
        roles = {
            h.split(":", 1)[0].removeprefix("runs code of role ")
            for h in hazards  # type: ignore[attr-defined]
            if h.startswith("runs code of role ")
        }
        assert len(roles) <= 1, hazards
        for role in roles:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        try:
            conn.execute(str(statement))
        finally:
            conn.execute("RESET ROLE")


def test_asymms_own_telemetry_partitions_do_not_break_the_scratch_copy(db: str) -> None:
    """The daemon's query_stats partitions are not extension members: dumped, they clashed with the
    indexes CREATE EXTENSION gives them ("relation ..._sampled_at_idx already exists")."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT asymm.ensure_telemetry_partitions('2 hours')")
        conn.execute("CREATE TABLE public.t (id integer)")
    result = CliRunner().invoke(main, ["baseline", "b", "--schema", "public", "--dsn", db])
    assert result.exit_code == 0, result.output
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("ALTER TABLE public.t ADD COLUMN extra integer")
    result = CliRunner().invoke(main, ["drift", "b", "--sql", "--dsn", db])
    assert result.exit_code == 3, result.output
    assert "-- validated on a scratch copy of the schema: ok" in result.output


# ---- property: random baseline -> current DDL over one table -------------------------------------
# A table of the untrusted role with columns whose defaults, generated expressions, domain and CHECK
# call its planted IMMUTABLE function (which makes the role superuser when a superuser runs it);
# hypothesis picks which exist in the baseline and what happens to each before the plan is made.
PROPERTY_SETUP = (
    ESCALATE_IF_SUPER
    + """
CREATE FUNCTION public.one() RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN PERFORM public.helper(); RETURN 1; END $f$;
CREATE DOMAIN public.small AS integer CHECK (VALUE < public.one() + 100);
CREATE TABLE public.pt (id integer PRIMARY KEY);
"""
)
FEATURES: dict[str, tuple[str, dict[str, str]]] = {
    # feature: (baseline DDL, {change: DDL after the baseline})
    "d": (
        "ALTER TABLE public.pt ADD COLUMN d integer DEFAULT public.one()",
        {
            "drop": "ALTER TABLE public.pt DROP COLUMN d",
            "set default": "ALTER TABLE public.pt ALTER COLUMN d SET DEFAULT 7",
            "drop default": "ALTER TABLE public.pt ALTER COLUMN d DROP DEFAULT",
        },
    ),
    "n": (
        "ALTER TABLE public.pt ADD COLUMN n integer NOT NULL DEFAULT public.one()",
        {
            "drop": "ALTER TABLE public.pt DROP COLUMN n",
            "drop not null": "ALTER TABLE public.pt ALTER COLUMN n DROP NOT NULL",
            "drop default": "ALTER TABLE public.pt ALTER COLUMN n DROP DEFAULT",
        },
    ),
    "g": (
        "ALTER TABLE public.pt ADD COLUMN g integer GENERATED ALWAYS AS (id + public.one()) STORED",
        {
            "drop": "ALTER TABLE public.pt DROP COLUMN g",
            "drop expression": "ALTER TABLE public.pt ALTER COLUMN g DROP EXPRESSION",
        },
    ),
    "s": (
        "ALTER TABLE public.pt ADD COLUMN s public.small",
        {"drop": "ALTER TABLE public.pt DROP COLUMN s", "retype": "ALTER TABLE public.pt ALTER COLUMN s TYPE integer"},
    ),
    "v": (
        "ALTER TABLE public.pt ADD COLUMN v integer DEFAULT 0",
        {
            "drop": "ALTER TABLE public.pt DROP COLUMN v",
            "retype": "ALTER TABLE public.pt ALTER COLUMN v TYPE bigint",
            "planted default": "ALTER TABLE public.pt ALTER COLUMN v SET DEFAULT public.one()",
        },
    ),
    "ck": (
        "ALTER TABLE public.pt ADD CONSTRAINT ck CHECK (id > public.one() - 100)",
        {
            "drop": "ALTER TABLE public.pt DROP CONSTRAINT ck",
            "not valid": "ALTER TABLE public.pt DROP CONSTRAINT ck;"
            " ALTER TABLE public.pt ADD CONSTRAINT ck CHECK (id > public.one() - 100) NOT VALID",
        },
    ),
}
EXTRAS = {
    "added column": "ALTER TABLE public.pt ADD COLUMN extra integer DEFAULT public.one()",
    "new body": "CREATE OR REPLACE FUNCTION public.one() RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $f$"
    " BEGIN PERFORM public.helper(); PERFORM public.helper(); RETURN 1; END $f$",
    "added table": "CREATE TABLE public.other (x integer DEFAULT public.one() CHECK (x < public.one() + 9))",
}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[bool, list[str], list[str]]:
    present = draw(st.lists(st.sampled_from(sorted(FEATURES)), min_size=1, unique=True))
    rows = draw(st.booleans())
    baseline = [FEATURES[f][0] for f in present]
    after = [
        FEATURES[f][1][change]
        for f in present
        if (change := draw(st.sampled_from(["keep", *sorted(FEATURES[f][1])]))) != "keep"
    ]
    extras = [EXTRAS[e] for e in draw(st.lists(st.sampled_from(sorted(EXTRAS)), unique=True))]
    if draw(st.integers(0, 4)) == 0:  # the whole table dropped: the plan re-creates it
        return rows, baseline, ["DROP TABLE public.pt"] + [e for e in extras if "public.pt" not in e]
    return rows, baseline, draw(st.permutations(after + extras))


def test_no_plan_runs_planted_code_as_the_checker_or_the_applier(db: str, mallory: str) -> None:
    """Property: whatever the baseline and the changes, `asymm drift --sql` (its scratch check) and
    the plan applied by a superuser (each flagged statement as the role it names) never run the
    planted function as a superuser, and the plan brings the schema back to the baseline."""
    owner = conninfo.conninfo_to_dict(mallory)["user"]

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(scenario=scenarios())
    def check(scenario: tuple[bool, list[str], list[str]]) -> None:
        rows, baseline, after = scenario
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(str(owner))))  # replays
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(str(owner))))
            conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(str(owner))))
        with psycopg.connect(mallory, autocommit=True) as conn:
            conn.execute(PROPERTY_SETUP)
            for statement in baseline:
                conn.execute(statement)
            if rows:
                conn.execute("INSERT INTO public.pt (id) VALUES (1), (2)")
        baseline_then(db, mallory, "SELECT 1", ";\n".join(after) or "SELECT 1")

        result = CliRunner().invoke(main, ["drift", "b", "--sql", "--dsn", db])
        assert result.exit_code == (3 if after else 0), result.output
        if after:
            assert "-- validated on a scratch copy of the schema: ok" in result.output, result.output
        assert not is_superuser(db, mallory), "the scratch check ran the planted code as superuser"

        with psycopg.connect(db, autocommit=True) as conn:
            plan = conn.execute("SELECT statement, hazards FROM asymm.drift_plan('b') ORDER BY step").fetchall()
            apply_as_flagged(conn, "b")
            assert not is_superuser(db, mallory), f"applying the plan ran the planted code as superuser: {plan}"
            assert conn.execute("SELECT count(*) FROM public.ran_as WHERE was_super").fetchone() == (0,)
            left = conn.execute("SELECT kind, identity, property FROM asymm.drift('b')").fetchall()
            assert left == [], left

    check()


DOMAIN_BASELINE = (
    CHECK_AND_GENERATED_BASELINE
    + """
INSERT INTO public.ct (id, s) VALUES (1, 5);
"""
)


def test_a_domain_check_put_back_says_whose_code_it_runs_and_the_check_runs_none(db: str, mallory: str) -> None:
    """ALTER DOMAIN ... ADD CONSTRAINT checks every column of the domain with the check's functions:
    flagged; the scratch check (stubbed functions) runs none of them as the superuser."""
    baseline_then(
        db,
        mallory,
        DOMAIN_BASELINE,
        "ALTER DOMAIN public.small DROP CONSTRAINT small_check",
    )
    owner = conninfo.conninfo_to_dict(mallory)["user"]
    steps = validated_plan(db, mallory)
    with psycopg.connect(db, autocommit=True) as conn:
        assert (
            f"runs code of role {owner}: public.one()"
            in steps["ALTER DOMAIN public.small ADD CONSTRAINT small_check CHECK ((VALUE < (public.one() + 100)))"]
        ), steps
        apply_as_flagged(conn, "b")
        assert conn.execute("SELECT count(*) FROM asymm.drift('b')").fetchone() == (0,)
    assert not is_superuser(db, mallory)
