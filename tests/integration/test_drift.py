"""Schema drift as a DBA meets it: each scenario makes one change to a baselined schema and checks
the DDL log, the drift item, and the migration plan back (validated on a scratch copy).

One database for the module: every scenario works in its own schema(s) and its own baseline
limited to them, and drops them afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from asymm import drift
from asymm.db import with_dbname

ROLE = f"drift_dba_{os.getpid()}"

SETUP = """
CREATE TABLE {s}.t (id int PRIMARY KEY, a int NOT NULL, b text DEFAULT 'x', c int CHECK (c > 0));
CREATE INDEX t_b ON {s}.t (b);
CREATE TABLE {s}.child (id int PRIMARY KEY, t_id int CONSTRAINT child_t_fk REFERENCES {s}.t (id));
CREATE VIEW {s}.v AS SELECT id, a FROM {s}.t;
CREATE FUNCTION {s}.f(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 1';
CREATE FUNCTION {s}.trg() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
CREATE TRIGGER t_touch BEFORE UPDATE ON {s}.t FOR EACH ROW EXECUTE FUNCTION {s}.trg();
CREATE TABLE {s}.p (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE {s}.p1 PARTITION OF {s}.p FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE {s}.ident (id int GENERATED ALWAYS AS IDENTITY, n int, g int GENERATED ALWAYS AS (n * 2) STORED);
"""


@dataclass
class Scenario:
    id: str
    change: str
    kind: str | None  # expected drift item (None: no drift at all)
    object_type: str | None = None
    prop: str | None = None
    tag: str | None = None  # a DDL log row with this command tag; None: no log row at all
    plan: str | None = None  # substring of the plan
    detection: str = "event"
    who: str | None = None
    severity: str | None = None
    hazard: str | None = None
    second_schema: bool = False
    setup: str = ""  # extra setup for this scenario only


SCENARIOS = [
    # columns and types
    Scenario(
        "drop_column",
        "ALTER TABLE {s}.t DROP COLUMN b",
        "removed",
        "column",
        None,
        "ALTER TABLE",
        "ADD COLUMN b text DEFAULT 'x'::text",
        severity="destructive",
        hazard="data loss",
    ),
    Scenario(
        "add_column", "ALTER TABLE {s}.t ADD COLUMN d int", "added", "column", None, "ALTER TABLE", "DROP COLUMN d"
    ),
    Scenario(
        "rename_column",
        "ALTER TABLE {s}.t RENAME COLUMN a TO a2",
        "renamed",
        "column",
        "name",
        "ALTER TABLE",
        "RENAME COLUMN a2 TO a",
    ),
    Scenario(
        "change_type",
        "ALTER TABLE {s}.t ALTER COLUMN c TYPE bigint",
        "changed",
        "column",
        "type",
        "ALTER TABLE",
        "ALTER COLUMN c TYPE integer USING c::integer",
        hazard="table rewrite",
    ),
    Scenario(
        "change_default",
        "ALTER TABLE {s}.t ALTER COLUMN b SET DEFAULT 'y'",
        "changed",
        "column",
        "default",
        "ALTER TABLE",
        "ALTER COLUMN b SET DEFAULT 'x'::text",
    ),
    Scenario(
        "drop_not_null",
        "ALTER TABLE {s}.t ALTER COLUMN a DROP NOT NULL",
        "changed",
        "column",
        "notnull",
        "ALTER TABLE",
        "CHECK (a IS NOT NULL) NOT VALID",
    ),
    Scenario(
        "drop_identity",
        "ALTER TABLE {s}.ident ALTER COLUMN id DROP IDENTITY",
        "changed",
        "column",
        "identity",
        "ALTER TABLE",
        "ADD GENERATED ALWAYS AS IDENTITY",
    ),
    Scenario(
        "drop_generated",
        "ALTER TABLE {s}.ident ALTER COLUMN g DROP EXPRESSION",
        "changed",
        "column",
        "generated",
        "ALTER TABLE",
        "GENERATED ALWAYS AS ((n * 2)) STORED",
    ),
    # tables and schemas
    Scenario(
        "drop_table",
        "DROP TABLE {s}.child",
        "removed",
        "table",
        None,
        "DROP TABLE",
        "CREATE TABLE {s}.child",
        severity="destructive",
        hazard="data loss",
    ),
    Scenario(
        "rename_table",
        "ALTER TABLE {s}.child RENAME TO kid",
        "renamed",
        "table",
        "name",
        "ALTER TABLE",
        "ALTER TABLE {s}.kid RENAME TO child",
    ),
    Scenario(
        "move_table",
        "ALTER TABLE {s}.child SET SCHEMA {s}_b",
        "moved",
        "table",
        "schema",
        "ALTER TABLE",
        "SET SCHEMA {s}",
        second_schema=True,
    ),
    Scenario(
        "rename_schema",
        "ALTER SCHEMA {s} RENAME TO {s}_r",
        "renamed",
        "schema",
        "name",
        "ALTER SCHEMA",
        "ALTER SCHEMA {s}_r RENAME TO {s}",
    ),
    Scenario(
        "add_table", "CREATE TABLE {s}.extra (x int)", "added", "table", None, "CREATE TABLE", "DROP TABLE {s}.extra"
    ),
    # partitions
    Scenario(
        "detach_partition",
        "ALTER TABLE {s}.p DETACH PARTITION {s}.p1",
        "changed",
        "table",
        "partition_of",
        "ALTER TABLE",
        "ATTACH PARTITION {s}.p1 FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')",
    ),
    Scenario(
        "drop_partition",
        "DROP TABLE {s}.p1",
        "removed",
        "table",
        None,
        "DROP TABLE",
        "CREATE TABLE {s}.p1 PARTITION OF {s}.p",
    ),
    Scenario(
        "add_partition",
        "CREATE TABLE {s}.p2 PARTITION OF {s}.p FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')",
        "added",
        "table",
        None,
        "CREATE TABLE",
        "DROP TABLE {s}.p2",
    ),
    # indexes and constraints
    Scenario(
        "drop_index",
        "DROP INDEX {s}.t_b",
        "removed",
        "index",
        None,
        "DROP INDEX",
        "CREATE INDEX CONCURRENTLY t_b ON {s}.t USING btree (b)",
        hazard="index dropped",
    ),
    Scenario(
        "invalid_index",
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{s}.t_b'::regclass",
        "invalid",
        "index",
        "valid",
        None,
        "CREATE INDEX CONCURRENTLY t_b",
        detection="reconciliation",
    ),
    Scenario(
        "drop_check",
        "ALTER TABLE {s}.t DROP CONSTRAINT t_c_check",
        "removed",
        "constraint",
        None,
        "ALTER TABLE",
        "ADD CONSTRAINT t_c_check CHECK ((c > 0)) NOT VALID",
    ),
    Scenario(
        "drop_foreign_key",
        "ALTER TABLE {s}.child DROP CONSTRAINT child_t_fk",
        "removed",
        "constraint",
        None,
        "ALTER TABLE",
        "VALIDATE CONSTRAINT child_t_fk",
    ),
    Scenario(
        "drop_primary_key",
        "ALTER TABLE {s}.child DROP CONSTRAINT child_pkey",
        "removed",
        "constraint",
        None,
        "ALTER TABLE",
        "ADD CONSTRAINT child_pkey PRIMARY KEY USING INDEX child_pkey",
    ),
    Scenario(
        "unvalidated_check",
        "ALTER TABLE {s}.t DROP CONSTRAINT t_c_check;"
        " ALTER TABLE {s}.t ADD CONSTRAINT t_c_check CHECK (c > 0) NOT VALID",
        "invalid",
        "constraint",
        "validated",
        "ALTER TABLE",
        "VALIDATE CONSTRAINT t_c_check",
    ),
    # functions, views, triggers
    Scenario(
        "replace_function",
        "CREATE OR REPLACE FUNCTION {s}.f(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 2'",
        "changed",
        "function",
        "source",
        "CREATE FUNCTION",
        "SELECT x + 1",
    ),
    Scenario(
        "replace_view",
        "CREATE OR REPLACE VIEW {s}.v AS SELECT id, a, b FROM {s}.t",
        "changed",
        "view",
        "def",
        "CREATE VIEW",
        "DROP VIEW IF EXISTS {s}.v CASCADE",
    ),
    Scenario("drop_view", "DROP VIEW {s}.v", "removed", "view", None, "DROP VIEW", "CREATE VIEW {s}.v AS"),
    Scenario(
        "disable_trigger",
        "ALTER TABLE {s}.t DISABLE TRIGGER t_touch",
        "changed",
        "trigger",
        "enabled",
        "ALTER TABLE",
        "ENABLE TRIGGER t_touch",
    ),
    Scenario(
        "drop_trigger",
        "DROP TRIGGER t_touch ON {s}.t",
        "removed",
        "trigger",
        None,
        "DROP TRIGGER",
        "CREATE TRIGGER t_touch BEFORE UPDATE ON {s}.t",
    ),
    # privileges and ownership
    Scenario(
        "grant",
        f"GRANT SELECT ON {{s}}.t TO {ROLE}",
        "changed",
        "table",
        "acl",
        "GRANT",
        f"REVOKE SELECT ON TABLE {{s}}.t FROM {ROLE}",  # noqa: S608
        hazard="privilege change",
        detection="reconciliation",
    ),  # GRANT is logged, but event triggers give it no object identity
    Scenario(
        "drop_table_with_grants",
        "DROP TABLE {s}.child",
        "removed",
        "table",
        None,
        "DROP TABLE",
        f"GRANT SELECT ON TABLE {{s}}.child TO {ROLE}",
        setup=f"GRANT SELECT, UPDATE ON {{s}}.child TO {ROLE}; REVOKE ALL ON FUNCTION {{s}}.f(int) FROM PUBLIC;",
    ),
    Scenario(
        "drop_function_revoked",
        "DROP FUNCTION {s}.f(int)",
        "removed",
        "function",
        None,
        "DROP FUNCTION",
        "REVOKE EXECUTE ON FUNCTION {s}.f(x integer) FROM PUBLIC",
        setup="REVOKE ALL ON FUNCTION {s}.f(int) FROM PUBLIC;",
    ),
    Scenario(
        "owner",
        f"ALTER TABLE {{s}}.child OWNER TO {ROLE}",
        "changed",
        "table",
        "owner",
        "ALTER TABLE",
        "OWNER TO postgres",
    ),
    # event-trigger robustness
    Scenario(
        "non_superuser",
        f"SET ROLE {ROLE}; CREATE TABLE {{s}}.mine (x int); RESET ROLE",
        "added",
        "table",
        None,
        "CREATE TABLE",
        "DROP TABLE {s}.mine",
        who=ROLE,
    ),
    Scenario(
        "replica_role",
        "SET session_replication_role = replica; DROP INDEX {s}.t_b; RESET session_replication_role",
        "removed",
        "index",
        None,
        None,
        "CREATE INDEX CONCURRENTLY t_b",
        detection="reconciliation",
    ),
    Scenario(
        "disabled_event_trigger",
        "ALTER EVENT TRIGGER asymm_drift_ddl_command_end DISABLE;"
        " ALTER TABLE {s}.t ADD COLUMN quiet int;"
        " ALTER EVENT TRIGGER asymm_drift_ddl_command_end ENABLE",
        "added",
        "column",
        None,
        None,
        "DROP COLUMN quiet",
        detection="reconciliation",
    ),
    Scenario(
        "do_block",
        "DO $$ BEGIN EXECUTE 'ALTER TABLE {s}.t ADD COLUMN dyn int'; END $$",
        "added",
        "column",
        None,
        "ALTER TABLE",
        "DROP COLUMN dyn",
    ),
    Scenario(
        "many_in_one_transaction",
        "BEGIN; ALTER TABLE {s}.t ADD COLUMN m1 int; CREATE INDEX t_m1 ON {s}.t (m1);"
        " ALTER TABLE {s}.child RENAME TO kid; DROP VIEW {s}.v; COMMIT",
        "added",
        "index",
        None,
        "CREATE INDEX",
        "DROP INDEX CONCURRENTLY {s}.t_m1",
    ),
    Scenario("rolled_back", "BEGIN; DROP TABLE {s}.child; ALTER TABLE {s}.t DROP COLUMN b; ROLLBACK", None),
]


@pytest.fixture(scope="module")
def drift_db(admin_dsn: str) -> Iterator[str]:
    name = f"asymm_drift_{os.getpid()}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(ROLE)))
    dsn = with_dbname(admin_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("CREATE EXTENSION asymm CASCADE")
    try:
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_drift_scenario(drift_db: str, sc: Scenario) -> None:
    s = f"s_{sc.id}"
    schemas = [s, f"{s}_b"] if sc.second_schema else [s]
    with psycopg.connect(drift_db, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(sql.Identifier(s), sql.Identifier(ROLE)))
        conn.execute((SETUP + sc.setup).format(s=s).encode())
        try:
            drift.capture_baseline(conn, sc.id, schemas)
            assert drift.drift_items(conn, sc.id) == [], "a fresh baseline has no drift"
            conn.execute(sc.change.format(s=s).encode())

            # the log
            log = conn.execute(
                "SELECT command_tag, role_name, statement, txid::text FROM asymm.ddl_log"
                " WHERE id > (SELECT last_ddl_id FROM asymm.drift_baselines WHERE name = %s) ORDER BY id",
                (sc.id,),
            ).fetchall()
            if sc.tag is None:
                assert log == []
            else:
                assert sc.tag in {r[0] for r in log}, log
                if sc.id == "do_block":
                    assert all(str(r[2]).startswith("DO ") for r in log)
                if sc.id == "many_in_one_transaction":
                    assert len(log) >= 4 and len({r[3] for r in log}) == 1, "one transaction, one txid"
                if sc.who:
                    assert sc.who in {r[1] for r in log}

            # the drift item
            items = drift.drift_items(conn, sc.id)
            if sc.kind is None:
                assert items == []
                assert drift.plan(conn, sc.id) == []
                return
            match = [
                i
                for i in items
                if i["kind"] == sc.kind
                and i["object_type"] == sc.object_type
                and (sc.prop is None or i["property"] == sc.prop)
            ]
            assert match, items
            item = match[0]
            assert item["detection"] == sc.detection
            if sc.detection == "event":
                assert item["who"] == (sc.who or "postgres") and item["changed_at"] is not None
            if sc.severity:
                assert item["severity"] == sc.severity
            if sc.hazard:
                assert sc.hazard in item["hazards"]

            # the plan, and its validation on a scratch copy of the schema
            steps = drift.plan(conn, sc.id)
            text = "\n".join(step.statement for step in steps)
            assert sc.plan is not None and sc.plan.format(s=s) in text, text
            result = drift.validate_plan(conn, sc.id, steps)
            assert result.ok, (result.error, result.failed_step, result.remaining, text)
        finally:
            if sc.id == "disabled_event_trigger":
                conn.execute("ALTER EVENT TRIGGER asymm_drift_ddl_command_end ENABLE")
            conn.execute("RESET ROLE")
            for schema in [*schemas, f"{s}_r"]:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            conn.execute("DELETE FROM asymm.drift_baselines WHERE name = %s", (sc.id,))
