"""A role given ``asymm.grant_reader()`` sees everything read-only and changes nothing (issue 15, defect 5).

The matrix: every read-only CLI command and SQL function succeeds as the reader; every writing
one fails with a permission error (SQL: insufficient_privilege; CLI: one line, exit 1, no
traceback); secrets stay unreadable; and no row of any asymm table differs afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

ASYMM = str(Path(sys.executable).with_name("asymm"))

READ_COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["top"],
    ["top", "--slow-ms", "0", "--json"],
    ["health"],
    ["duplicates", "orders"],
    ["duplicates", "public.orders", "--columns", "customer_id,status", "--json"],
    ["advise"],
    ["advise", "--json"],
    ["verify"],
    ["annotations"],
    ["annotations", "--json"],
    ["coherence"],
    ["coherence", "--json"],
    ["graph"],
    ["graph", "--format", "dot"],
    ["impact", "orders.status"],
    ["impact", "orders", "--json"],
    ["drift", "b1"],
    ["drift", "b1", "--json"],
    ["drift", "b1", "--sql", "--no-validate"],
    ["sync", "status"],
    ["sync", "status", "--json"],
]  # (drift --sql validates its plan in a scratch database: that needs CREATEDB, which a reader lacks)
WRITE_COMMANDS = [
    ["annotate", "orders", "--symbol", "x", "--scope", "local", "--regime", "Balance", "--cost", "O(n)"],
    [
        "annotate",
        "orders",
        "--column",
        "status",
        "--symbol",
        "x",
        "--scope",
        "local",
        "--regime",
        "Balance",
        "--cost",
        "O(n)",
    ],
    ["annotate", "--query", "SELECT 1", "--symbol", "x", "--scope", "local", "--regime", "Balance", "--cost", "O(1)"],
    ["baseline", "b1", "--schema", "public"],
    ["baseline", "b9"],
    ["drift", "b1", "--accept"],
    ["advise", "--apply"],
    ["verify", "--rollback"],
    ["sync", "backfill", "customers", "--no-wait"],
]
READ_SQL = [
    "SELECT asymm.setting('daemon.pulse_period')",
    "SELECT asymm.version()",
    "SELECT asymm.plpython_version()",
    "SELECT asymm.status()",
    "SELECT asymm.annotation_vocabulary()",
    "SELECT asymm.normalize_query('SELECT 1')",
    "SELECT asymm.query_fingerprint('SELECT 1')",
    "SELECT asymm.resolve('public.orders'::regclass)",
    "SELECT asymm.resolve('public.orders'::regclass, 'status')",
    "SELECT asymm.resolve('public.orders')",
    "SELECT asymm.resolve('asymm.version()'::regprocedure)",
    "SELECT asymm.amplify(NULL, NULL)",
    "SELECT asymm.coherence()",
    "SELECT * FROM asymm.coherence_verdicts()",
    "SELECT asymm.plan_cost_class('{}'::jsonb)",
    "SELECT * FROM asymm.query_history()",
    "SELECT * FROM asymm.query_report()",
    "SELECT * FROM asymm.slow_queries(0)",
    "SELECT asymm.smoothness()",
    "SELECT * FROM asymm.find_duplicates('public.orders')",
    "SELECT * FROM asymm.state_report(ARRAY['public.orders'::regclass])",
    "SELECT * FROM asymm.index_health()",
    "SELECT asymm.sync_status()",
    "SELECT * FROM asymm.drift('b1')",
    "SELECT * FROM asymm.drift()",
    "SELECT * FROM asymm.drift_plan('b1')",
    "SELECT asymm.drift_sql('b1')",
    "SELECT * FROM asymm.settings",
    "SELECT * FROM asymm.annotations",
    "SELECT * FROM asymm.unresolved_annotations",
    "SELECT * FROM asymm.index_suggestions_latest",
    "SELECT * FROM asymm.index_suggestions",
    "SELECT * FROM asymm.queries",
    "SELECT * FROM asymm.query_stats",
    "SELECT * FROM asymm.daemons",
    "SELECT * FROM asymm.drift_baselines",
    "SELECT * FROM asymm.drift_findings",
    "SELECT * FROM asymm.sync_state",
    "SELECT * FROM asymm.sync_tables",
    "SELECT * FROM asymm.annotation_conflicts",
]
WRITE_SQL = [
    "SELECT asymm.set_setting('daemon.stale_after', '1 s')",
    "SELECT asymm.reset_setting('daemon.stale_after')",
    "SELECT asymm.grant_reader(current_user::regrole)",
    "SELECT asymm.annotate('public.orders'::regclass, 'x', 'local', 'Balance', 'O(n)', '{}')",
    "SELECT asymm.annotate('public.orders'::regclass, 'status', 'x', 'local', 'Balance', 'O(n)', '{}')",
    "SELECT asymm.annotate('public.orders', 'x', 'local', 'Balance', 'O(n)', '{}')",
    "SELECT asymm.annotate('asymm.version()'::regprocedure, 'x', 'local', 'Balance', 'O(n)', '{}')",
    "SELECT asymm.annotate(1::bigint, 'x', 'local', 'Balance', 'O(n)', '{}')",
    "SELECT asymm.annotate_query('SELECT 1', 'x', 'local', 'Balance', 'O(1)', '{}')",
    "SELECT asymm.harmonize('public.orders'::regclass)",
    "SELECT asymm.harmonize('public.orders')",
    "SELECT asymm.propagate('public.orders'::regclass)",
    "SELECT asymm.propagate('public.orders')",
    "SELECT * FROM asymm.infer()",
    "SELECT asymm.snapshot()",
    "SELECT asymm.telemetry_retention()",
    "SELECT asymm.ensure_telemetry_partitions()",
    "SELECT asymm.record_state()",
    "SELECT asymm.track('public.orders')",
    "SELECT asymm.untrack('public.customers')",
    "SELECT asymm.sync_backfill('public.customers')",
    "SELECT asymm.sync_heartbeat()",
    "SELECT asymm.sync_notify()",
    "SELECT asymm.baseline('b1')",
    "SELECT asymm.drift_accept('b1')",
    "SELECT asymm.drift_reconcile()",
    "DELETE FROM asymm.annotation_entries",
    "UPDATE asymm.index_suggestions SET status = 'applied'",
    "INSERT INTO asymm.daemons (daemon_id, host, pid, version) VALUES (gen_random_uuid(), 'h', 1, 'v')",
    # secrets and other roles' data: the DDL log holds whole statements (user mapping passwords)
    "SELECT * FROM asymm.ddl_log",
    "SELECT * FROM asymm.sync_outbox",
    "SELECT * FROM asymm.query_counters",
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ASYMM, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def shop(make_db: Callable[..., str], admin_dsn: str) -> Iterator[dict[str, str]]:
    dsn = make_db(extension=False)
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    reader = f"{dbname}_reader"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION asymm CASCADE")
        conn.execute("CREATE EXTENSION hypopg")
        conn.execute("""
            CREATE TABLE customers (id integer PRIMARY KEY, email text NOT NULL);
            CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer REFERENCES customers,
                                 status text NOT NULL, total integer NOT NULL);
            INSERT INTO customers SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 2000) g;
            INSERT INTO orders SELECT g, 1 + g % 2000, (ARRAY['new', 'paid'])[1 + g % 2], g % 300
              FROM generate_series(1, 5000) g;
            INSERT INTO orders SELECT 5000 + g, 1, 'new', 7 FROM generate_series(1, 3) g;
            ANALYZE customers, orders;
        """)
        for i in range(30):
            conn.execute("SELECT * FROM orders WHERE total = %s", (i,))
        conn.execute("SELECT asymm.snapshot()")
        conn.execute("SELECT asymm.snapshot()")
        conn.execute("SELECT asymm.annotate('orders', 'order', 'local', 'Balance', 'O(log n)', '{create,query}')")
        conn.execute(
            "SELECT asymm.annotate_query('SELECT * FROM orders WHERE id = $1', 'byId', 'local',"
            " 'Stabilization', 'O(log n)', '{query}')"
        )
        conn.execute("SELECT asymm.track('customers')")
        conn.execute("SELECT asymm.baseline('b1', ARRAY['public'])")
        conn.execute("ALTER TABLE orders ADD COLUMN note text")  # some drift to report
        conn.execute("SELECT asymm.drift_reconcile()")
        assert run("advise", "--dsn", dsn).returncode == 0  # stored suggestions for verify to report on
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(reader)))
        conn.execute("SELECT asymm.grant_reader(%s::regrole)", (reader,))
        # duplicates reads the table itself, with the reader's own rights: asymm bypasses nothing
        conn.execute(sql.SQL("GRANT SELECT ON orders TO {}").format(sql.Identifier(reader)))
    try:
        yield {"dsn": dsn, "reader_dsn": f"{dsn} user={reader}"}
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(dbname))))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(reader)))


def contents(dsn: str) -> dict[str, Any]:
    """Every row of every asymm table (as text), to prove the reader changed nothing."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT format('%I.%I', n.nspname, c.relname)"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'asymm' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"
            )
        ]
        return {
            t: conn.execute(
                sql.SQL("SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM {} x").format(
                    sql.SQL(t)
                )
            ).fetchone()
            for t in tables
        }


def test_a_reader_reads_everything_and_changes_nothing(shop: dict[str, str]) -> None:
    before = contents(shop["dsn"])
    failed = []
    for command in READ_COMMANDS:
        out = run(*command, "--dsn", shop["reader_dsn"])
        if out.returncode not in (0, 3) or "Traceback" in out.stderr or not out.stdout.strip():
            failed.append((command, out.returncode, out.stderr.strip()[-400:]))
    assert failed == []
    advice = run("advise", "--dsn", shop["reader_dsn"])
    assert "not stored" in advice.stderr
    with psycopg.connect(shop["reader_dsn"], autocommit=True) as conn:
        refused = []
        for statement in READ_SQL:
            try:
                conn.execute(statement).fetchall()
            except psycopg.Error as exc:
                refused.append((statement, type(exc).__name__, exc.diag.message_primary))
        assert refused == []
        verdicts = conn.execute("SELECT verdict, reason FROM asymm.coherence_verdicts()").fetchall()
        assert verdicts, "the reader sees the verdicts"
    assert contents(shop["dsn"]) == before


def test_a_reader_is_refused_every_write(shop: dict[str, str]) -> None:
    before = contents(shop["dsn"])
    with psycopg.connect(shop["reader_dsn"], autocommit=True) as conn:
        allowed = []
        for statement in WRITE_SQL:
            try:
                conn.execute(statement)
                allowed.append(statement)
            except psycopg.errors.InsufficientPrivilege:
                pass
        assert allowed == []
        writers = conn.execute("""
            SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.pronamespace = 'asymm'::regnamespace
               AND p.proname IN ('set_setting', 'reset_setting', 'grant_reader', 'annotate', 'annotate_query',
                                 'harmonize', 'propagate', 'infer', 'snapshot', 'telemetry_retention',
                                 'ensure_telemetry_partitions', 'record_state', 'track', 'untrack', 'sync_backfill',
                                 'sync_heartbeat', 'sync_notify', 'baseline', 'drift_accept', 'drift_reconcile',
                                 '_annotate_object', '_annotate_text', '_propagate_text',
                                 '_harmonize_address', '_annotations_refresh', '_pgss_changes',
                                 '_sync_forget_old_names')
               AND has_function_privilege(p.oid, 'EXECUTE')""").fetchall()
        assert writers == []
    failed = []
    for command in WRITE_COMMANDS:
        out = run(*command, "--dsn", shop["reader_dsn"])
        lines = out.stderr.strip().splitlines()
        if out.returncode != 1 or len(lines) != 1 or "permission denied" not in lines[0] or "Traceback" in out.stderr:
            failed.append((command, out.returncode, out.stderr.strip()[-400:]))
    assert failed == []
    assert contents(shop["dsn"]) == before
