"""Drift through the command line and the daemon, and the event triggers' promise never to break DDL."""

from __future__ import annotations

import json
import time

import psycopg
from click.testing import CliRunner

from asymm.app import make_daemon
from asymm.cli import main
from asymm.daemon.service import DaemonConfig
from asymm.drift.feature import DriftFeature

SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE app.orders (id int PRIMARY KEY, customer int NOT NULL, total numeric);
CREATE INDEX orders_customer ON app.orders (customer);
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_cli_baseline_drift_sql_accept(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SCHEMA)
    code, out = run("baseline", "prod", "--schema", "app", "--dsn", db, "--json")
    assert code == 0 and json.loads(out)["objects"] >= 5
    code, out = run("drift", "prod", "--dsn", db)
    assert (code, out.strip()) == (0, "no drift")

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP INDEX app.orders_customer")
        conn.execute("ALTER TABLE app.orders ALTER COLUMN customer DROP NOT NULL")
    code, out = run("drift", "--dsn", db, "--json")
    assert code == 3
    items = json.loads(out)
    assert {(i["kind"], i["object_type"], i["property"]) for i in items} == {
        ("removed", "index", None),
        ("changed", "column", "notnull"),
    }
    assert all(i["detection"] == "event" and i["who"] == "postgres" for i in items)

    code, out = run("drift", "prod", "--sql", "--dsn", db)
    assert code == 3
    assert "-- validated on a scratch copy of the schema: ok" in out
    assert out.count("SET lock_timeout = '2s';") == 5  # one per statement
    assert "CREATE INDEX CONCURRENTLY orders_customer ON app.orders USING btree (customer);" in out
    assert "ALTER TABLE app.orders VALIDATE CONSTRAINT asymm_nn_customer;" in out
    assert out.index("VALIDATE CONSTRAINT") < out.index("SET NOT NULL")

    code, out = run("drift", "prod", "--sql", "--json", "--dsn", db)
    assert code == 3 and json.loads(out)[0]["validated"] is True

    # the plan, applied statement by statement, brings the schema back
    with psycopg.connect(db, autocommit=True) as conn:
        for (statement,) in conn.execute("SELECT statement FROM asymm.drift_plan('prod')").fetchall():
            conn.execute("SET lock_timeout = '2s'")
            conn.execute(statement.encode())  # type: ignore[attr-defined]
    assert run("drift", "prod", "--dsn", db)[0] == 0

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("ALTER TABLE app.orders ADD COLUMN note text")
    assert run("drift", "prod", "--dsn", db)[0] == 3
    code, out = run("drift", "prod", "--accept", "--dsn", db)
    assert code == 0 and "moved" in out
    assert run("drift", "prod", "--dsn", db)[0] == 0

    code, out = run("drift", "nope", "--dsn", db)
    assert code == 1 and 'no baseline named "nope"' in out
    code, out = run("baseline", "bad name!", "--dsn", db)
    assert code == 1 and "invalid baseline name" in out


def test_handler_warns_instead_of_failing_user_ddl(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(str(d.message_primary)))
        # sabotage the log: every insert now fails
        conn.execute("ALTER TABLE asymm.ddl_log ADD CONSTRAINT sabotage CHECK (false) NOT VALID")
        conn.execute("CREATE TABLE survives (x int)")
        assert conn.execute("SELECT to_regclass('survives') IS NOT NULL").fetchone() == (True,)
        assert any("could not record CREATE TABLE" in n for n in notices), notices
        conn.execute("ALTER TABLE asymm.ddl_log DROP CONSTRAINT sabotage")


def test_extension_ddl_is_not_logged_and_drop_extension_works(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM asymm.ddl_log").fetchone() == (0,)
        conn.execute("CREATE TABLE keep (x int)")
        conn.execute("DROP EXTENSION asymm")
        assert conn.execute("SELECT count(*) FROM pg_event_trigger").fetchone() == (0,)
        conn.execute("DROP TABLE keep")  # DDL still works with the triggers gone
        conn.execute("CREATE EXTENSION asymm")
        assert conn.execute("SELECT count(*) FROM asymm.ddl_log").fetchone() == (0,)


def test_daemon_reconciles_and_restores_a_dropped_index(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("SELECT asymm.baseline('prod', ARRAY['app'])")
        conn.execute("SELECT asymm.set_setting('drift.reconcile_every', '0.05 s')")
        conn.execute("SELECT asymm.set_setting('drift.restore_indexes', 'true')")
        # made while the event triggers cannot see it
        conn.execute("SET session_replication_role = replica")
        conn.execute("DROP INDEX app.orders_customer")
        conn.execute("RESET session_replication_role")
        assert conn.execute("SELECT count(*) FROM asymm.ddl_log WHERE command_tag = 'DROP INDEX'").fetchone() == (0,)
    daemon = make_daemon(DaemonConfig(dsn=db, period=0.05, max_ticks=10))
    daemon.run()
    feature = daemon.feature("drift")
    assert isinstance(feature, DriftFeature) and feature.watcher is not None
    watcher = feature.watcher
    if watcher.restoring is not None:
        watcher.restoring.join(timeout=30)
    with psycopg.connect(db, autocommit=True) as conn:
        findings = conn.execute(
            "SELECT detection, item ->> 'kind', item ->> 'identity' FROM asymm.drift_findings"
        ).fetchall()
        assert ("reconciliation", "removed", "app.orders_customer") in findings
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and conn.execute(
            "SELECT to_regclass('app.orders_customer') IS NULL"
        ).fetchone() == (True,):
            time.sleep(0.1)
        assert conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'app.orders_customer'::regclass"
        ).fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM asymm.drift('prod')").fetchone() == (0,)
        conn.execute("SELECT asymm.drift_reconcile()")
        assert conn.execute("SELECT count(*) FROM asymm.drift_findings WHERE resolved_at IS NULL").fetchone() == (0,)
