"""Drift plans never run an untrusted role's code with the rights of whoever applies them.

A plan re-creates objects from the baseline, whose definitions their owners wrote.  Most DDL only
stores such text; `CREATE MATERIALIZED VIEW ... AS query` runs the query, as the current user.  So a
role that had a materialized view over its own function in the baseline, then dropped it, would
have that function run as the superuser who checks the plan (`asymm drift --sql` applies it to a
scratch copy of the schema) or applies it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import conninfo, sql

from asymm.cli import main

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
    params = conninfo.conninfo_to_dict(db)
    params.update(user=name, password=password)
    yield conninfo.make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None})
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def is_superuser(db: str, dsn: str) -> bool:
    user = conninfo.conninfo_to_dict(dsn)["user"]
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
    return bool(row and row[0])


def test_a_dropped_materialized_view_is_recreated_without_running_its_query_as_the_planner(
        db: str, mallory: str) -> None:
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
