"""Red-team finding. asymm.coherence_verdicts() turns the plan's scanned relations into names with
asymm._plan_cost_class(), which builds "schema.name" without quoting, then feeds them to
to_regclass() outside any exception block.  An untrusted role names its table "a.b" (or puts a
newline or a quote in the name): to_regclass('public.a.b') raises (cross-database reference),
and asymm.coherence() / coherence_verdicts() fail for every annotation, as long as one annotated
query's plan scans that table (here through the role's view; the role can CREATE OR REPLACE a
view at any time after the superuser annotated a query over it).

Safe behaviour: coherence_verdicts() returns a verdict for the annotation instead of raising
(names are quoted, or the lookup is by OID, or a lookup failure only affects that verdict).
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql


def test_a_roles_dotted_table_name_does_not_break_coherence(db: str) -> None:
    role = f"mal_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute('CREATE TABLE public."a.b" (one int)')
        conn.execute('CREATE VIEW public.rv AS SELECT one FROM public."a.b"')
        conn.execute("RESET ROLE")
        conn.execute(
            "SELECT asymm.annotate_query('SELECT one FROM public.rv', 'dataEntity', 'global',"
            " 'Stabilization', 'O(1)', '{query}')"
        )
        error = None
        try:
            rows = conn.execute("SELECT verdict FROM asymm.coherence_verdicts()").fetchall()
        except psycopg.Error as exc:
            error, rows = exc, []
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert error is None, f"a role's table name made asymm.coherence_verdicts() fail for everyone: {error}"
    assert rows
