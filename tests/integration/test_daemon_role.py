"""The daemon runs without superuser: asymm.grant_daemon() gives a plain role all it needs.

README ("Security") promises that a DBA can run the daemon as an ordinary login role.  This runs a
real daemon as such a role against a real workload and requires every area to work: telemetry
snapshots (whose partitions the role cannot create itself), the Redis sync of a table tracked
before and of one tracked after the grant, and drift detection; and that the role gained nothing
beyond what the function documents.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql

from tests.harness.roles import role_dsn
from tests.harness.sync_helpers import full_compare, settled, start_daemon, stop_daemon, wait_for


@pytest.fixture
def daemon_role(db: str) -> tuple[str, str]:
    """A fresh LOGIN role without any right, given the daemon's with asymm.grant_daemon()."""
    name, password = f"asymm_d_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        conn.execute("CREATE TABLE public.early (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO public.early SELECT g, 'e' || g FROM generate_series(1, 50) g")
        conn.execute("SELECT asymm.track('public.early')")
        conn.execute("SELECT asymm.baseline('b')")
        conn.execute("SELECT asymm.grant_daemon(%s)", (name,))
    return name, role_dsn(db, name, password)


def test_grant_daemon_gives_a_plain_role_everything_the_daemon_does(
    db: str, redis_url: str, daemon_role: tuple[str, str]
) -> None:
    role, dsn = daemon_role
    with psycopg.connect(db, autocommit=True) as conn:
        # Partitions a superuser's snapshot would have created: the role must create them itself.
        for (part,) in conn.execute(
            "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'asymm.query_stats'::regclass AND c.relname <> 'query_stats_default'"
        ).fetchall():
            conn.execute(f"DROP TABLE {part}")  # a name from the catalog, already quoted by regclass
        assert conn.execute(
            "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = %s", (role,)
        ).fetchone() == (False,)
    proc = start_daemon(dsn, redis_url)
    try:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.late (id int PRIMARY KEY, v text)")
            conn.execute("SELECT asymm.track('public.late')")  # tracked after the grant
            for i in range(20):
                conn.execute("INSERT INTO public.late VALUES (%s, %s)", (i, f"l{i}"))
                conn.execute("UPDATE public.early SET v = v || 'x' WHERE id = %s", (i + 1,))
            conn.execute("ALTER TABLE public.early ADD COLUMN extra int")
            assert wait_for(lambda: settled(db), timeout=30)
            assert wait_for(
                lambda: conn.execute("SELECT snapshots > 0 FROM asymm.telemetry_state").fetchone() == (True,),
                timeout=15,
            )
            assert wait_for(
                lambda: (conn.execute("SELECT count(*) FROM asymm.drift_findings").fetchone() or (0,))[0] > 0,
                timeout=30,
            )
        mismatches = full_compare(db, redis_url)
        assert mismatches.rows_compared == 70 and mismatches.total == 0, mismatches
    finally:
        log = stop_daemon(proc)
    assert "InsufficientPrivilege" not in log and "permission denied" not in log, log


def test_the_daemon_role_cannot_create_objects_or_grant_itself_more(db: str, daemon_role: tuple[str, str]) -> None:
    role, dsn = daemon_role
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in (
            "CREATE TABLE asymm.planted (x int)",
            "CREATE FUNCTION asymm.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            f"ALTER ROLE {role} SUPERUSER",
            "SELECT asymm.grant_daemon('pg_monitor')",
            "SELECT asymm.grant_reader('pg_monitor')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # asymm's history partitions are made by a SECURITY DEFINER function, a month ahead at most.
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="between 0 and 31 days"):
            conn.execute("SELECT asymm.ensure_telemetry_partitions('10 years')")


def test_revoke_daemon_takes_it_all_back(db: str, daemon_role: tuple[str, str]) -> None:
    role, _dsn = daemon_role
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT asymm.revoke_daemon(%s)", (role,))
        row = conn.execute(
            "SELECT has_schema_privilege(%(r)s, 'asymm', 'USAGE'),"
            "       has_table_privilege(%(r)s, 'asymm.sync_outbox', 'SELECT'),"
            "       has_table_privilege(%(r)s, 'public.early', 'SELECT'),"
            "       pg_has_role(%(r)s, 'pg_read_all_stats', 'MEMBER'),"
            "       EXISTS (SELECT 1 FROM asymm.daemon_roles WHERE role_name = %(r)s)",
            {"r": role},
        ).fetchone()
        assert row == (False, False, False, False, False)


@pytest.mark.parametrize("bad", [None, "postgres"])
def test_grant_daemon_refuses_no_role_and_a_superuser(
    conn: psycopg.Connection[tuple[object, ...]], bad: str | None
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        conn.execute("SELECT asymm.grant_daemon(%s::regrole)", (bad,))
    assert caught.value.diag.message_hint
