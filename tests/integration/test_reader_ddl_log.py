"""A reader role must never read asymm.ddl_log ("DDL text can hold passwords", README, Roles).
asymm.drift() is SECURITY DEFINER, granted to readers, and returns ddl_log.statement, which is
current_query(): the whole query string the DDL came in, every statement of it.

Safe behaviour: what a reader gets from asymm.drift() holds no text of ddl_log.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql

from tests.harness.roles import role_dsn


def test_reader_does_not_get_ddl_text_through_drift(db: str) -> None:
    name, password = f"reader_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    secret = f"s3cret-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        conn.execute(sql.SQL("SELECT asymm.grant_reader({})").format(sql.Literal(name)))
        conn.execute("CREATE TABLE public.t1 (id int)")
        conn.execute("SELECT asymm.baseline('b', ARRAY['public'])")
        # one migration string (simple query protocol): a table and a role's password
        conn.execute(f"CREATE TABLE public.t2 (id int); ALTER ROLE {name} PASSWORD '{secret}'")  # type: ignore[arg-type]
    reader = role_dsn(db, name, secret)
    with psycopg.connect(reader) as conn:
        rows = conn.execute("SELECT identity, statement FROM asymm.drift('b')").fetchall()
    assert rows, "drift should report public.t2"
    leaked = [r for r in rows if r[1] and secret in r[1]]
    assert not leaked, f"a reader read ddl_log text (a password) through asymm.drift(): {leaked}"
