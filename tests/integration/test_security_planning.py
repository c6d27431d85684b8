"""Planning runs the workload's code as the role that wrote it, never with the caller's rights (issue 15, defect 1).

The planner constant-folds IMMUTABLE functions.  Role ``mallory`` (LOGIN, CREATE on public, nothing
else) defines ``public.f_*()`` IMMUTABLE, each calling a VOLATILE body that first tries one way out
of its role (nothing, RESET ROLE, SET ROLE, SET SESSION AUTHORIZATION, set_config('role'), and a
PREPARE that could hijack a client's prepared statement), records in a table of its own who it ran
as, and makes mallory a superuser when it runs as one.  Mallory runs ``SELECT ... WHERE v =
public.f_*()`` a few times, so the statements are in pg_stat_statements under mallory's userid.
Then a superuser runs everything in asymm that plans such texts: mallory must still not be a
superuser, and every recorded run must show asymm_planner, the role without rights that asymm
plans as, as current_user (never the caller, and not even the author: the code a statement reaches
belongs to its owners, not to whoever ran the statement; see also
test_a_superusers_statement_over_a_roles_view_runs_none_of_its_code_as_the_superuser).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from asymm.advisor.advise import Settings, advise
from asymm.advisor.feature import ScheduledAdvisor
from asymm.advisor.workload import read_workload
from asymm.cli import main
from tests.harness.roles import role_dsn

# The ways out the planned code tries before checking whether it is a superuser.
ESCAPES = {
    "plain": "NULL",
    "reset_role": "RESET ROLE",
    "set_role": "SET ROLE {super}",
    "session_authorization": "SET SESSION AUTHORIZATION {super}",
    "set_config": "PERFORM pg_catalog.set_config('role', {super_literal}, false)",
    "prepare": "PREPARE _pg3_0 AS SELECT 1",
}
ROUNDS = 4


@dataclass
class Attack:
    dsn: str  # superuser, the attacked database
    role: str
    role_dsn: str


def make_role(admin: psycopg.Connection[Any], prefix: str, *, login: bool = True) -> tuple[str, str]:
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    password = secrets.token_hex(12)
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
    return name, password


def drop_role(admin_dsn: str, dbs: list[str], role: str) -> None:
    for dsn in dbs:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        except psycopg.Error:
            pass  # the database is gone already
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def attack(make_db: Callable[..., str], admin_dsn: str) -> Iterator[Attack]:
    dsn = make_db()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        superuser = str(admin.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]
        role, password = make_role(admin, "mallory")
        admin.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    mdsn = role_dsn(dsn, role, password)
    try:
        with psycopg.connect(mdsn, autocommit=True) as mallory:
            mallory.execute("CREATE TABLE public.mt (id int PRIMARY KEY, v int NOT NULL)")
            mallory.execute("INSERT INTO public.mt SELECT g, g % 100 FROM generate_series(1, 5000) g")
            mallory.execute("ANALYZE public.mt")
            mallory.execute("CREATE TABLE public.ran_as (escape text, who text, session_who text)")
            mallory.execute("GRANT INSERT ON public.ran_as TO PUBLIC")  # so the planner role's runs are recorded
            for escape, statement in ESCAPES.items():
                step = statement.format(
                    super=sql.Identifier(superuser).as_string(mallory),
                    super_literal=sql.Literal(superuser).as_string(mallory),
                )
                # the texts are built from this module's constants (ESCAPES), not from input
                mallory.execute(f"""
                    CREATE FUNCTION public.evil_{escape}() RETURNS int LANGUAGE plpgsql VOLATILE AS $body$
                    BEGIN
                        BEGIN {step}; EXCEPTION WHEN others THEN NULL; END;
                        INSERT INTO public.ran_as VALUES ('{escape}', current_user, session_user);
                        IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                            EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', '{role}');
                        END IF;
                        RETURN 1;
                    END $body$""")  # noqa: S608
                mallory.execute(
                    f"CREATE FUNCTION public.f_{escape}() RETURNS int LANGUAGE sql IMMUTABLE"
                    f" AS 'SELECT public.evil_{escape}()'"
                )
                statement = f"SELECT id FROM public.mt WHERE v = public.f_{escape}() AND id > %s"  # noqa: S608
                for i in range(ROUNDS):
                    mallory.execute(statement, (i,))
            assert not is_superuser(dsn, role), "mallory's own runs must not make it a superuser"
            mallory.execute("TRUNCATE public.ran_as")
        yield Attack(dsn, role, mdsn)
    finally:
        drop_role(admin_dsn, [dsn], role)


def is_superuser(dsn: str, role: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        return bool(row and row[0])


PLANNER = "asymm_planner"


def recorded_runs(attack: Attack) -> list[tuple[str, str, str]]:
    with psycopg.connect(attack.dsn, autocommit=True) as conn:
        return [(str(e), str(w), str(s)) for e, w, s in conn.execute("SELECT * FROM public.ran_as")]


def assert_ran_only_as_mallory(attack: Attack, *, expect_runs: bool = True) -> None:
    assert not is_superuser(attack.dsn, attack.role), "planning mallory's statement made mallory a superuser"
    runs = recorded_runs(attack)
    if expect_runs:
        assert {e for e, _, _ in runs} == set(ESCAPES), runs  # every statement was planned ...
    assert {w for _, w, _ in runs} <= {PLANNER}, runs  # ... and only ever as the role without rights


def mallory_statements(doc: dict[str, Any], attack: Attack) -> list[dict[str, Any]]:
    return [s for s in doc["skipped"] if "public.f_" in s["query"]]


# -- the advisor ------------------------------------------------------------------------------------


def test_the_workload_carries_the_role_that_ran_each_statement(attack: Attack) -> None:
    with psycopg.connect(attack.dsn, autocommit=True) as conn:
        mallory = conn.execute("SELECT %s::regrole::oid", (attack.role,)).fetchone()[0]  # type: ignore[index]
        users = {s.userid for s in read_workload(conn) if "public.f_" in s.query}
    assert users == {int(mallory)}


def test_advise_json_plans_as_the_author(attack: Attack) -> None:
    out = CliRunner().invoke(main, ["advise", "--dsn", attack.dsn, "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["planned"] >= len(ESCAPES), doc["skipped"]
    assert_ran_only_as_mallory(attack)


def test_advise_apply_and_verify_plan_as_the_author(attack: Attack) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["advise", "--dsn", attack.dsn, "--json", "--apply"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["verify", "--dsn", attack.dsn, "--json"])
    assert out.exit_code == 0, out.output
    assert_ran_only_as_mallory(attack)


def test_the_daemons_scheduled_advisor_plans_as_the_author(attack: Attack) -> None:
    runner = ScheduledAdvisor(SimpleNamespace(dsn=attack.dsn))  # type: ignore[arg-type]
    runner.run(auto_apply=True)
    assert runner.last_error is None and runner.runs == 1
    assert_ran_only_as_mallory(attack)


def test_a_dropped_author_is_skipped_with_the_reason(attack: Attack, admin_dsn: str) -> None:
    with psycopg.connect(attack.dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE public.shared (id int PRIMARY KEY, v int)")
        admin.execute("INSERT INTO public.shared SELECT g, g FROM generate_series(1, 1000) g")
        ghost, password = make_role(admin, "ghost")
        admin.execute(sql.SQL("GRANT SELECT ON public.shared TO {}").format(sql.Identifier(ghost)))
    with psycopg.connect(role_dsn(attack.dsn, ghost, password), autocommit=True) as conn:
        for i in range(ROUNDS):
            conn.execute("SELECT * FROM public.shared WHERE v = %s", (i,))
    drop_role(admin_dsn, [attack.dsn], ghost)
    with psycopg.connect(attack.dsn, autocommit=True) as conn:
        doc = advise(conn, Settings())
    reasons = [s["reason"] for s in doc["skipped"] if s["query"].startswith("SELECT * FROM public.shared")]
    assert len(reasons) == 1 and "no longer exists" in reasons[0] and reasons[0].startswith("role "), doc["skipped"]


def test_a_caller_that_cannot_assume_the_author_skips_its_statements(attack: Attack, admin_dsn: str) -> None:
    with psycopg.connect(attack.dsn, autocommit=True) as admin:
        runner_role, password = make_role(admin, "advisor")
        ident = sql.Identifier(runner_role)
        admin.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(ident))
        admin.execute(sql.SQL("GRANT USAGE ON SCHEMA asymm TO {}").format(ident))
        for fn in (
            "_explain_as(oid, text, text[], text[], boolean, text)",
            "_param_types_as(oid, text, text[], text)",
            "_plan_as_refusal(oid)",
        ):
            admin.execute(sql.SQL("GRANT EXECUTE ON FUNCTION asymm.{} TO {}").format(sql.SQL(fn), ident))
        admin.execute(sql.SQL("GRANT SELECT ON public.mt TO {}").format(ident))
    try:
        with psycopg.connect(role_dsn(attack.dsn, runner_role, password), autocommit=True) as conn:
            for i in range(ROUNDS):
                conn.execute("SELECT * FROM public.mt WHERE id = %s", (i,))
            doc = advise(conn, Settings())
        skipped = mallory_statements(doc, attack)
        assert len(skipped) == len(ESCAPES), doc["skipped"]
        assert all(s["reason"] == f"cannot assume role {attack.role}" for s in skipped), skipped
        assert doc["planned"] >= 1  # its own statement is planned
        assert_ran_only_as_mallory(attack, expect_runs=False)
        assert recorded_runs(attack) == []
    finally:
        drop_role(admin_dsn, [attack.dsn], runner_role)


# -- annotations: asymm.infer() and asymm.coherence() ----------------------------------------------


def test_infer_plans_as_the_author(attack: Attack) -> None:
    with psycopg.connect(attack.dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT target, cost, skipped FROM asymm.infer() WHERE target_type = 'query'").fetchall()
        authors = {
            r[0]
            for r in conn.execute("SELECT e.author FROM asymm.annotation_entries e WHERE e.query_text ~ 'public\\.f_'")
        }
    assert len([r for r in rows if r[2] is None]) >= len(ESCAPES), rows
    assert authors == {attack.role}
    assert_ran_only_as_mallory(attack)


def test_coherence_of_an_annotation_on_the_statement_plans_as_the_author(attack: Attack) -> None:
    with psycopg.connect(attack.dsn, autocommit=True) as conn:
        ids = [
            int(r[0])
            for r in conn.execute(
                "SELECT queryid FROM pg_stat_statements WHERE query LIKE 'SELECT id FROM public.mt%%'"
                "   AND userid = %s::regrole"
                "   AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (attack.role,),
            )
        ]
    assert len(ids) == len(ESCAPES)
    for queryid in ids:
        out = CliRunner().invoke(
            main,
            [
                "annotate",
                "--queryid",
                str(queryid),
                "--symbol",
                "evil",
                "--scope",
                "local",
                "--regime",
                "Balance",
                "--cost",
                "O(log n)",
                "--dsn",
                attack.dsn,
                "--json",
            ],
        )
        assert out.exit_code == 0, out.output
    with psycopg.connect(attack.dsn, autocommit=True) as conn:
        verdicts = conn.execute(
            "SELECT v.verdict, v.reason FROM asymm.coherence_verdicts() v WHERE v.target_type = 'query'"
        ).fetchall()
        conn.execute("SELECT asymm.coherence()")
        authors = {
            r[0] for r in conn.execute("SELECT author FROM asymm.annotation_entries WHERE target_type = 'query'")
        }
    assert authors == {attack.role}
    assert len(verdicts) == len(ESCAPES) and all("generic plan is" in r for _, r in verdicts), verdicts
    assert_ran_only_as_mallory(attack)


def test_coherence_and_infer_skip_a_dropped_author(attack: Attack, admin_dsn: str) -> None:
    with psycopg.connect(attack.dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE public.shared (id int PRIMARY KEY, v int)")
        ghost, password = make_role(admin, "ghost")
        admin.execute(sql.SQL("GRANT SELECT ON public.shared TO {}").format(sql.Identifier(ghost)))
    with psycopg.connect(role_dsn(attack.dsn, ghost, password), autocommit=True) as conn:
        for i in range(ROUNDS):
            conn.execute("SELECT * FROM public.shared WHERE v = %s", (i,))
    with psycopg.connect(attack.dsn, autocommit=True) as conn:
        queryid = conn.execute(
            "SELECT queryid FROM pg_stat_statements WHERE query ~ 'public\\.shared' AND userid = %s::regrole", (ghost,)
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("SELECT asymm.annotate(%s::bigint, 'q', 'local', 'Balance', 'O(n)', '{query}')", (queryid,))
    drop_role(admin_dsn, [attack.dsn], ghost)
    with psycopg.connect(attack.dsn, autocommit=True) as conn:
        verdict = conn.execute(
            "SELECT verdict, reason FROM asymm.coherence_verdicts() WHERE target_type = 'query'"
            "   AND annotation_id IN (SELECT id FROM asymm.annotation_entries"
            "                          WHERE query_text ~ 'public\\.shared')"
        ).fetchone()
        conn.execute("DELETE FROM asymm.annotation_entries WHERE query_text ~ 'public\\.shared'")
        skipped = [r[0] for r in conn.execute("SELECT skipped FROM asymm.infer() WHERE skipped IS NOT NULL")]
    assert verdict == ("not evaluable", f"skipped: role {ghost} no longer exists")
    assert len(skipped) == 1 and "no longer exists" in skipped[0], skipped


# -- the planning function itself -------------------------------------------------------------------


def test_planning_restores_the_callers_role_and_settings_and_never_executes(attack: Attack) -> None:
    with psycopg.connect(attack.dsn, autocommit=True) as conn:
        mallory = conn.execute("SELECT %s::regrole::oid", (attack.role,)).fetchone()[0]  # type: ignore[index]
        before = conn.execute(
            "SELECT current_user, session_user, current_setting('search_path'), current_setting('work_mem')"
        ).fetchone()
        conn.execute(
            "SELECT asymm._explain_as(%s, 'INSERT INTO public.ran_as VALUES (''x'', public.f_plain()::text)')",
            (mallory,),
        )
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT asymm._explain_as(%s, 'SELECT * FROM no_such_table')", (mallory,))
        for text, message in [
            ("SELECT 1; SELECT 2", "more than one statement"),
            ("SELECT 1 INTO public.made", "SELECT ... INTO"),
            ("VACUUM public.mt", "must be one SELECT"),
            ("", "empty"),
        ]:
            with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
                conn.execute("SELECT asymm._explain_as(%s, %s)", (mallory, text))
        after = conn.execute(
            "SELECT current_user, session_user, current_setting('search_path'), current_setting('work_mem')"
        ).fetchone()
        assert after == before
        # planning the INSERT ran f_plain (as asymm_planner) but never the INSERT itself
        assert [r[0] for r in conn.execute("SELECT escape FROM public.ran_as")] == ["plain"]
        assert conn.execute("SELECT to_regclass('public.made')").fetchone() == (None,)
        assert conn.execute("SELECT asymm._plan_as_refusal(%s)", (mallory,)).fetchone() == (None,)
        assert conn.execute("SELECT asymm._plan_as_refusal(4000000000)").fetchone() == (
            "role with OID 4000000000 no longer exists",
        )
    assert_ran_only_as_mallory(attack, expect_runs=False)


def test_the_authors_configured_search_path_resolves_its_names(attack: Attack) -> None:
    with psycopg.connect(attack.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} SET search_path = hidden, public").format(sql.Identifier(attack.role)))
        admin.execute(sql.SQL("CREATE SCHEMA hidden AUTHORIZATION {}").format(sql.Identifier(attack.role)))
    with psycopg.connect(attack.role_dsn, autocommit=True) as mallory:
        mallory.execute("CREATE TABLE hidden.only_here (id int)")
    with psycopg.connect(attack.dsn, autocommit=True) as conn:
        conn.execute("SET search_path = pg_catalog, pg_temp")
        plan = conn.execute(
            "SELECT asymm.generic_plan('SELECT * FROM only_here', %s::regrole)", (attack.role,)
        ).fetchone()[0]  # type: ignore[index]
        assert plan["Schema"] == "hidden"
        with pytest.raises(psycopg.errors.UndefinedTable):  # the caller's own text, with the caller's path
            conn.execute("SELECT asymm.generic_plan('SELECT * FROM only_here')")


def test_a_superusers_statement_over_a_roles_view_runs_none_of_its_code_as_the_superuser(db: str) -> None:
    """Red-team finding: the text is the superuser's own, the view (changed after annotating) is the role's.

    Planned as its author, the superuser, the view's folded IMMUTABLE function ran the role's code
    with the superuser's rights.  asymm plans as asymm_planner, which has no rights at all.
    """
    role = f"mal_{secrets.token_hex(4)}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute("CREATE TABLE public.report_src (one int)")
        conn.execute("CREATE VIEW public.report AS SELECT one FROM public.report_src")
        conn.execute("RESET ROLE")
        # the superuser annotates its own, harmless-looking statement
        conn.execute(
            "SELECT asymm.annotate_query('SELECT one FROM public.report', 'dataEntity', 'global',"
            " 'Stabilization', 'O(1)', '{query}')"
        )
        # later, the role swaps its view for one whose definition folds its function
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION public.escalate() RETURNS int LANGUAGE plpgsql VOLATILE AS $$ BEGIN"
                " IF current_user <> {r} THEN EXECUTE format('ALTER ROLE %I SUPERUSER', {r}); END IF;"
                " RETURN 1; END $$"
            ).format(r=sql.Literal(role))
        )
        conn.execute(
            "CREATE FUNCTION public.fold(int) RETURNS int LANGUAGE plpgsql IMMUTABLE"
            " AS $$ BEGIN RETURN public.escalate() + $1 - 1; END $$"
        )
        conn.execute(
            "CREATE OR REPLACE VIEW public.report AS SELECT one FROM public.report_src WHERE public.fold(1) = 1"
        )
        conn.execute("RESET ROLE")

        conn.execute("SELECT * FROM asymm.coherence_verdicts()").fetchall()

        escalated = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert escalated == (False,), "coherence() ran an untrusted role's view code as the superuser"
