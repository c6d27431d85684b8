"""Red-team finding: an untrusted role must not remove annotations of objects it does not own (README, Security:
"None of them may gain a right it was not given, through asymm").

asymm._annotations_sql_drop() (SECURITY DEFINER, fires on every role's DROP) deletes column
annotations whose target_names[1:2] equal the dropped object's address_names whenever
cardinality(address_names) = 2, without checking that the dropped object is a relation.  A
function's address_names is {schema, name} too, so a role with CREATE on a schema creates and
drops a function named like another role's table and wipes that table's column annotations.

Safe behaviour: dropping the role's own function leaves the superuser's annotations alone.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql


def test_dropping_a_function_named_like_a_table_keeps_its_column_annotations(db: str) -> None:
    role = f"mal_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        conn.execute("CREATE TABLE public.payments (id int PRIMARY KEY, card text)")
        conn.execute(
            "SELECT asymm.annotate('public.payments'::regclass, 'card', 'contact', 'local',"
            " 'Balance', 'O(1)', '{query}')"
        )
        conn.execute(
            "SELECT asymm.annotate('public.payments', 'dataEntity', 'global', 'Stabilization', 'O(1)', '{query}')"
        )
        before = {r[0] for r in conn.execute("SELECT target FROM asymm.annotations").fetchall()}
        assert before == {"public.payments", "public.payments.card"}, before

        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute("CREATE FUNCTION public.payments() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("DROP FUNCTION public.payments()")
        conn.execute("RESET ROLE")

        after = {r[0] for r in conn.execute("SELECT target FROM asymm.annotations").fetchall()}
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert after == before, (
        f"an untrusted role's DROP FUNCTION deleted annotations of a table it does not own: lost {before - after}"
    )
