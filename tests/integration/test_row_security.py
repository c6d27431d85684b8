"""Reading a user table through asymm never runs its owner's code with the reader's rights.

Two ways a table owner gets code run by whoever reads its rows: a row-level security policy (its
USING expression runs as the reading role) and a cast from a type it owns to json (to_jsonb and
row_to_json call it).  The daemon reads every tracked table, with the rights asymm.grant_daemon()
gives (SELECT on every tracked table, sensitive columns included), and a superuser runs
`asymm duplicates` on any table; neither may become the owner's tool.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.harness.roles import role_dsn
from tests.harness.sync_helpers import ASYMM, full_compare, settled, stop_daemon, wait_for

STEAL = """
CREATE TABLE public.loot (who name, data text);
GRANT INSERT ON public.loot TO PUBLIC;
CREATE FUNCTION public.steal() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    IF current_setting('transaction_read_only') = 'off' THEN
        INSERT INTO public.loot SELECT current_user, string_agg(card, ',') FROM public.cards;
    END IF;
    RETURN true;
EXCEPTION WHEN others THEN RETURN true;
END $f$;
"""


@pytest.fixture
def roles(db: str) -> Iterator[dict[str, str]]:
    """mallory (may create in public, owns a table the DBA tracks) and a daemon role, as DSNs."""
    names = {"mallory": f"mallory_{uuid.uuid4().hex[:8]}", "daemon": f"asymm_d_{uuid.uuid4().hex[:8]}"}
    dsns: dict[str, str] = {}
    with psycopg.connect(db, autocommit=True) as conn:
        for key, name in names.items():
            password = uuid.uuid4().hex
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
            )
            dsns[key] = role_dsn(db, name, password)
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(names["mallory"])))
        conn.execute("CREATE TABLE public.cards (id int PRIMARY KEY, card text)")
        conn.execute("INSERT INTO public.cards VALUES (1, '4111111111111111')")
        conn.execute("SELECT asymm.track('public.cards', sensitive => '{card}')")
    with psycopg.connect(dsns["mallory"], autocommit=True) as conn:
        conn.execute(STEAL)
        conn.execute("CREATE TABLE public.m_t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO public.m_t SELECT g, 'x' FROM generate_series(0, 4) g")
        conn.execute("GRANT SELECT ON public.m_t TO PUBLIC")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT asymm.track('public.m_t')")  # the DBA tracks the attacker's table
        conn.execute("SELECT asymm.grant_daemon(%s::regrole)", (names["daemon"],))
    with psycopg.connect(dsns["mallory"], autocommit=True) as conn:
        conn.execute("ALTER TABLE public.m_t ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY p ON public.m_t FOR SELECT USING (public.steal())")
    yield {**dsns, **{f"{k}_name": v for k, v in names.items()}}
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.moods")
        conn.execute("DROP TYPE IF EXISTS public.mood CASCADE")  # its cast, which DROP OWNED leaves behind
        conn.execute("SELECT asymm.untrack(rel) FROM asymm.sync_tables")
        conn.execute("SELECT asymm.revoke_daemon(%s::regrole)", (names["daemon"],))
        for name in names.values():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def loot(db: str) -> list[tuple[object, ...]]:
    with psycopg.connect(db, autocommit=True) as conn:
        return conn.execute("SELECT who, data FROM public.loot").fetchall()


def run_daemon(dsn: str, redis_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ASYMM, "daemon", "--dsn", dsn, "--period", "0.05", "--http-port", "0"],
        env={**os.environ, "ASYMM_REDIS_URL": redis_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_daemon_role_mirrors_a_table_with_policies_without_running_them(
    db: str, redis_url: str, roles: dict[str, str]
) -> None:
    proc = run_daemon(roles["daemon"], redis_url)
    try:
        with psycopg.connect(roles["mallory"], autocommit=True) as conn:
            for i in range(5, 10):
                conn.execute("INSERT INTO public.m_t VALUES (%s, 'x')", (i,))
        assert wait_for(lambda: settled(db), timeout=30)
        time.sleep(0.5)  # deliberate: a few more passes over the settled table, which must not run the policy
    finally:
        log = stop_daemon(proc)
    assert loot(db) == [], "the owner's policy ran as the daemon role"
    mismatches = full_compare(db, redis_url)  # BYPASSRLS: every row of m_t, not the policy's view
    assert mismatches.rows_compared == 11 and mismatches.total == 0, (mismatches, log)


def test_without_bypassrls_the_daemon_refuses_the_table_instead(db: str, redis_url: str, roles: dict[str, str]) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} NOBYPASSRLS").format(sql.Identifier(roles["daemon_name"])))
    proc = run_daemon(roles["daemon"], redis_url)
    try:
        with psycopg.connect(roles["mallory"], autocommit=True) as conn:
            conn.execute("INSERT INTO public.m_t VALUES (100, 'x')")
        with psycopg.connect(db, autocommit=True) as conn:
            assert wait_for(
                lambda: "row-level security" in str(conn.execute("SELECT asymm.sync_status()").fetchone()), timeout=20
            )
    finally:
        stop_daemon(proc)
    assert loot(db) == []


def test_duplicates_never_runs_a_policy_or_a_cast_of_the_table_owner(db: str, roles: dict[str, str]) -> None:
    with psycopg.connect(roles["mallory"], autocommit=True) as conn:
        conn.execute("""
            CREATE TYPE public.mood AS ENUM ('ok', 'sad');
            CREATE FUNCTION public.mood_json(public.mood) RETURNS json LANGUAGE plpgsql AS $f$
            BEGIN PERFORM public.steal(); RETURN to_json($1::text); END $f$;
            CREATE CAST (public.mood AS json) WITH FUNCTION public.mood_json(public.mood);
            CREATE TABLE public.moods (id int PRIMARY KEY, m public.mood, n int);
            INSERT INTO public.moods VALUES (1, 'ok', 7), (2, 'ok', 7);
            GRANT SELECT ON public.moods TO PUBLIC;
        """)
    with psycopg.connect(db, autocommit=True) as conn:  # a superuser
        rows = conn.execute("SELECT copies, row_values FROM asymm.find_duplicates('public.moods')").fetchall()
        assert rows == [(2, {"m": "ok", "n": 7})]
    with psycopg.connect(db, autocommit=True) as conn:  # so that m_t's policy applies to the daemon role
        conn.execute(sql.SQL("ALTER ROLE {} NOBYPASSRLS").format(sql.Identifier(roles["daemon_name"])))
    with psycopg.connect(roles["daemon"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("SELECT * FROM asymm.find_duplicates('public.m_t')")
        reported = conn.execute("SELECT relation FROM asymm.state_report()").fetchall()
        assert ("public.m_t",) not in reported and ("m_t",) not in reported
    assert loot(db) == []
