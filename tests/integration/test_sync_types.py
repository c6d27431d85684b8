"""A tracked table's column types cannot carry a role's code into the sync daemon.

The owner of a type may give it a cast to json (row_to_json and to_jsonb call it for every row the
daemon syncs) or to text (the key), or a domain CHECK (run on every cast to it): code run with the
daemon's rights, a superuser's in most installations.  So asymm.track() refuses a table with a
column of a type owned by a non-superuser, and such a column cannot be added to a tracked table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.harness.roles import role_dsn

PLANTED = """
CREATE TABLE public.ran_as (who name);
GRANT INSERT ON public.ran_as TO PUBLIC;
CREATE TYPE public.mood AS ENUM ('ok', 'sad');
CREATE FUNCTION public.mood_json(public.mood) RETURNS json LANGUAGE plpgsql AS $f$
BEGIN INSERT INTO public.ran_as VALUES (current_user); RETURN to_json($1::text); END $f$;
CREATE CAST (public.mood AS json) WITH FUNCTION public.mood_json(public.mood);
CREATE DOMAIN public.small AS integer CHECK (VALUE < 100);
CREATE TABLE public.moods (id int PRIMARY KEY, m public.mood);
CREATE TABLE public.moods_array (id int PRIMARY KEY, m public.mood[]);
CREATE TABLE public.smalls (id public.small PRIMARY KEY);
CREATE TABLE public.plain (id int PRIMARY KEY, v text);
"""


@pytest.fixture
def mallory(db: str) -> Iterator[str]:
    name, password = f"mallory_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(name)))
    dsn = role_dsn(db, name, password)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(PLANTED)
    yield dsn
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT asymm.untrack(rel) FROM asymm.sync_tables")
        conn.execute("DROP TABLE public.moods, public.moods_array, public.smalls, public.plain")
        conn.execute("DROP TYPE public.mood CASCADE")  # and its cast, which DROP OWNED leaves behind
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.mark.parametrize("table", ["public.moods", "public.moods_array", "public.smalls"])
def test_track_refuses_a_column_of_a_type_a_non_superuser_owns(db: str, mallory: str, table: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute("SELECT asymm.track(%s)", (table,))
        assert "owned by mallory_" in str(caught.value) and caught.value.diag.message_hint
        assert conn.execute("SELECT count(*) FROM asymm.sync_tables").fetchone() == (0,)


def test_a_tracked_table_cannot_be_given_such_a_column(db: str, mallory: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT asymm.track('public.plain')")
    with psycopg.connect(mallory, autocommit=True) as conn:
        for statement in (
            "ALTER TABLE public.plain ADD COLUMN m public.mood",
            "ALTER TABLE public.plain ALTER COLUMN v TYPE public.mood USING 'ok'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="a type a non-superuser owns"):
                conn.execute(statement)
        conn.execute("ALTER TABLE public.plain ADD COLUMN n integer")  # built-in types stay free
        conn.execute("INSERT INTO public.plain VALUES (1, 'x', 2)")
    with psycopg.connect(db, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM public.ran_as").fetchone() == (0,)


def test_types_of_a_superuser_are_trusted(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("CREATE TYPE public.level AS ENUM ('low', 'high')")
    conn.execute("CREATE TABLE public.levels (id int PRIMARY KEY, l public.level, ls public.level[])")
    conn.execute("SELECT asymm.track('public.levels')")
    assert conn.execute("SELECT count(*) FROM asymm.sync_tables").fetchone() == (1,)
