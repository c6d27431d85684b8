"""Red-team finding. Every role's DDL is logged by the event triggers (README, Roles: "its DDL is still logged by
the event triggers"), and asymm.drift() borrows who/when from asymm.ddl_log.

asymm._drift_event() skips any DDL whose current_query() *starts* with CREATE/ALTER/DROP EXTENSION
asymm, meant for asymm's own install scripts.  current_query() is the whole query string, so an
untrusted role that prefixes its DDL with "CREATE EXTENSION IF NOT EXISTS asymm;" (a no-op with a
NOTICE, no privilege needed when asymm exists) leaves no row in asymm.ddl_log, and asymm.drift()
then attributes its change to whoever last touched the object (here: the superuser).

Safe behaviour: the role's DROP is logged under its name, and drift() names it, not the superuser.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql


def test_extension_prefix_does_not_hide_a_roles_ddl(db: str) -> None:
    role = f"mal_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute("CREATE TABLE public.acct (id int)")
        conn.execute("RESET ROLE")
        conn.execute("SELECT asymm.baseline('b', ARRAY['public'])")
        conn.execute("ALTER TABLE public.acct ADD COLUMN note text")  # the superuser touches it once

        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute("CREATE EXTENSION IF NOT EXISTS asymm; CREATE TABLE public.hidden (x int); DROP TABLE public.acct")
        conn.execute("RESET ROLE")

        logged = conn.execute(
            "SELECT command_tag, object_identity FROM asymm.ddl_log WHERE role_name = %s", (role,)
        ).fetchall()
        drift = conn.execute(
            "SELECT identity, kind, who FROM asymm.drift('b') WHERE identity IN ('public.acct', 'public.hidden')"
        ).fetchall()
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    identities = {(r[0], r[1]) for r in logged}
    assert {("CREATE TABLE", "public.hidden"), ("DROP TABLE", "public.acct")} <= identities, (
        f"the role's DDL left no row in asymm.ddl_log (logged: {identities})"
    )
    who = {(r[0], r[1]): r[2] for r in drift}
    assert who.get(("public.acct", "removed")) == role, f"drift() attributes the role's DROP to {who}"
