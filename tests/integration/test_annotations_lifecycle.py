"""Annotations against the real server: renames, drops, pg_dump/pg_restore (full and partial)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from asymm.dev.sandbox import Sandbox

Conn = psycopg.Connection[tuple[object, ...]]

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, gone int, name text, email text);
ALTER TABLE customers DROP COLUMN gone;          -- email is attnum 4 here, 3 after a restore
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, total numeric);
INSERT INTO customers SELECT g, 'n' || g, 'e' || g FROM generate_series(1, 50) g;
INSERT INTO orders SELECT g, 1 + g % 50, g FROM generate_series(1, 100) g;
CREATE INDEX orders_total_idx ON orders (total);  -- pg_dump recreates it after the data
CREATE FUNCTION order_total(int) RETURNS numeric LANGUAGE sql AS 'SELECT total FROM public.orders WHERE id = $1';
SELECT asymm.annotate('customers', 'dataEntity', 'global', 'Stabilization', 'O(log n)', '{create,query}');
SELECT asymm.annotate('customers'::regclass, 'email', 'contact', 'local', 'Balance', 'O(1)', '{query}');
SELECT asymm.annotate('orders_total_idx', 'byTotal', 'local', 'Balance', 'O(log n)', '{optimize}');
SELECT asymm.annotate('order_total(int)'::regprocedure, 'totalOf', 'schema', 'Optimization', 'O(log n)', '{query}');
SELECT asymm.annotate_query('SELECT * FROM orders WHERE id = 7', 'dataQuery', 'local', 'Balance', 'O(log n)',
                            '{query}');
SELECT asymm.propagate('customers');
"""

VIEW = "SELECT target, target_type, resolved, symbol, source FROM asymm.annotations ORDER BY target, source"


def _dump(sandbox: Sandbox, dsn: str, path: Path) -> None:
    subprocess.run(
        [sandbox.pg_bindir + "/pg_dump", "-Fc", "-f", str(path), dsn], check=True, capture_output=True, text=True
    )


def test_renames_moves_and_drops_are_followed(conn: Conn) -> None:
    conn.execute(SCHEMA)
    conn.execute("ALTER TABLE customers RENAME TO clients")
    conn.execute("ALTER TABLE clients RENAME COLUMN email TO mail")
    conn.execute("CREATE SCHEMA crm")
    conn.execute("ALTER TABLE clients SET SCHEMA crm")
    conn.execute("ALTER SCHEMA crm RENAME TO people")
    conn.execute("ALTER INDEX orders_total_idx RENAME TO orders_by_total")
    conn.execute("ALTER FUNCTION order_total(int) RENAME TO total_of")
    rows = {(r[0], r[2]) for r in conn.execute(VIEW).fetchall() if r[4] == "user"}
    assert rows >= {
        ("people.clients", True),
        ("people.clients.mail", True),
        ("public.orders_by_total", True),
        ("public.total_of(integer)", True),
    }
    stored = {tuple(r[0]) for r in conn.execute("SELECT target_names FROM asymm.annotation_entries")}
    assert ("people", "clients", "mail") in stored, "the stored (dumped) address must follow the rename"
    conn.execute("ALTER TABLE people.clients DROP COLUMN mail")
    conn.execute("DROP INDEX orders_by_total")
    conn.execute("DROP FUNCTION total_of(int)")
    conn.execute("DROP TABLE people.clients CASCADE")
    left = conn.execute(VIEW).fetchall()
    assert [r[1] for r in left] == ["query"], left
    assert conn.execute("SELECT count(*) FROM asymm.annotation_target_cache").fetchone() == (0,)


def test_ddl_by_an_ordinary_owner_is_never_blocked(db: str, conn: Conn) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(db)["dbname"]
    role = f"{dbname}_owner"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        with psycopg.connect(db + f" user={role}", autocommit=True) as owner:
            owner.execute("CREATE TABLE mine (id int PRIMARY KEY, v text)")
        conn.execute("SELECT asymm.annotate('mine', 'dataEntity', 'local', 'Balance', 'O(n)', '{}')")
        with psycopg.connect(db + f" user={role}", autocommit=True) as owner:
            owner.execute("ALTER TABLE mine RENAME TO ours")
            assert conn.execute("SELECT target FROM asymm.annotations").fetchone() == ("public.ours",)
            owner.execute("DROP TABLE ours")
        assert conn.execute("SELECT count(*) FROM asymm.annotations").fetchone() == (0,)
    finally:
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_dump_restore_keeps_annotations_by_address(
    sandbox: Sandbox, make_db: Callable[..., str], tmp_path: Path
) -> None:
    source = make_db()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(SCHEMA)
        before = conn.execute(VIEW).fetchall()
        email_attnum = conn.execute(
            "SELECT attnum FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'email'"
        ).fetchone()
    dump = tmp_path / "full.dump"
    _dump(sandbox, source, dump)
    target = make_db(extension=False)
    subprocess.run([sandbox.pg_bindir + "/pg_restore", "--exit-on-error", "-d", target, str(dump)], check=True)
    with psycopg.connect(target, autocommit=True) as conn:
        after = conn.execute(VIEW).fetchall()
        assert after == before
        assert all(row[2] for row in after), after
        assert (
            conn.execute(
                "SELECT attnum FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'email'"
            ).fetchone()
            != email_attnum
        ), "the column was renumbered"
        cached = conn.execute("""
            SELECT c.objsubid FROM asymm.annotation_entries e JOIN asymm.annotation_target_cache c ON c.entry_id = e.id
             WHERE e.target_names = '{public,customers,email}' AND e.source = 'user'""").fetchone()
        assert cached == (3,)
        # the restored annotations keep following renames and drops
        conn.execute("ALTER TABLE customers RENAME TO clients")
        renamed = conn.execute("SELECT count(*) FROM asymm.annotations WHERE target LIKE 'public.clients%'")
        assert renamed.fetchone() == (4,)
        assert conn.execute("SELECT count(*) FROM asymm.unresolved_annotations").fetchone() == (0,)


def test_partial_restore_lists_missing_targets_as_unresolved(
    sandbox: Sandbox, make_db: Callable[..., str], tmp_path: Path
) -> None:
    source = make_db()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(SCHEMA)
    dump = tmp_path / "full.dump"
    _dump(sandbox, source, dump)
    listing = subprocess.run(
        [sandbox.pg_bindir + "/pg_restore", "-l", str(dump)], check=True, capture_output=True, text=True
    ).stdout
    kept = [
        line for line in listing.splitlines() if " customers " not in line and "orders_customer_id_fkey" not in line
    ]
    (tmp_path / "list").write_text("\n".join(kept) + "\n")
    target = make_db(extension=False)
    subprocess.run(
        [sandbox.pg_bindir + "/pg_restore", "--exit-on-error", "-L", str(tmp_path / "list"), "-d", target, str(dump)],
        check=True,
    )
    with psycopg.connect(target, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('customers')").fetchone() == (None,)
        unresolved = {r[0] for r in conn.execute("SELECT target FROM asymm.unresolved_annotations")}
        assert unresolved == {
            "public.customers",
            "public.customers.email",
            "public.customers.id",
            "public.customers.name",
        }
        resolved = {r[0] for r in conn.execute("SELECT target FROM asymm.annotations WHERE resolved")}
        assert {"public.orders_total_idx", "public.order_total(integer)"} <= resolved
        # recreating the missing table resolves them
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text, email text)")
        assert conn.execute("SELECT count(*) FROM asymm.unresolved_annotations").fetchone() == (0,)
