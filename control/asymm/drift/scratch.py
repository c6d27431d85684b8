"""Validating a drift plan on a scratch copy of the schema, and the PostgreSQL client tools it needs.

Why outside the server: ``CREATE INDEX CONCURRENTLY`` cannot run in a transaction block, and
applying a plan to the live database just to check it would take its locks and rewrite its tables.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from asymm.db import connect, one_line, with_dbname
from asymm.drift.api import Conn, PlanStep, Validation, lock_timeout
from asymm.errors import AsymmError

log = logging.getLogger("asymm.drift")
_scratch_counter = itertools.count()


def _pg_tool(name: str) -> str:
    """Path of a PostgreSQL client program (pg_dump, psql): PG_CONFIG's bindir first, then PATH."""
    pg_config = os.environ.get("PG_CONFIG") or shutil.which("pg_config")
    if pg_config:
        try:
            bindir = subprocess.run([pg_config, "--bindir"], check=True, capture_output=True, text=True).stdout.strip()
            if os.path.exists(os.path.join(bindir, name)):
                return os.path.join(bindir, name)
        except (OSError, subprocess.CalledProcessError):
            pass
    found = shutil.which(name) or os.path.join("/usr/lib/postgresql/15/bin", name)
    if not os.path.exists(found):
        raise AsymmError(f"{name} not found (install postgresql-client-15 or set PG_CONFIG)")
    return found


def source_dsn(conn: Conn) -> str:
    """A DSN for the connection's own database (libpq tools cannot reuse a psycopg connection).

    It holds no password: a command line is readable by every local user; see :func:`tool_env`.
    """
    info = conn.info
    params = {"host": info.host, "port": str(info.port), "user": info.user, "dbname": info.dbname}
    return psycopg.conninfo.make_conninfo("", **params)


def tool_env(conn: Conn) -> dict[str, str]:
    """The environment for libpq tools run on ``conn``'s behalf: its password, if any, in PGPASSWORD."""
    env = dict(os.environ)
    if conn.info.password:
        env["PGPASSWORD"] = conn.info.password
    return env


def validate_plan(conn: Conn, name: str, steps: list[PlanStep]) -> Validation:
    """Apply ``steps`` to a scratch database built from ``pg_dump --schema-only`` and check that the
    result equals the baseline.

    Why a scratch database and not a rolled-back transaction: the plan uses forms that cannot run in
    a transaction block (``CREATE INDEX CONCURRENTLY``), and running it against the live database,
    even rolled back, would take its ACCESS EXCLUSIVE locks and rewrite its real tables.  The scratch
    copy holds the schema without data, so it proves the statements are valid and dependency-ordered
    and that they lead back to the baseline; it cannot prove that existing rows satisfy a constraint.

    The copy is built and the plan applied with the caller's rights (a superuser), yet some DDL
    evaluates expressions other roles wrote, even on empty tables (an ADD COLUMN default, a
    partition key, a CHECK being validated: see "runs code of role" in the plan's hazards).  So the
    scratch copy gets a guard first (:data:`SCRATCH_GUARD`) that gives every function of a role that
    is not a superuser a stub body the moment it is created or changed; the real bodies are put back
    only for the final comparison, which runs none of them.
    """
    row = conn.execute("SELECT snapshot, schemas FROM asymm.drift_baselines WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise AsymmError(f'no baseline named "{name}"')
    if conn.info.parameter_status("is_superuser") != "on":
        raise AsymmError(
            "validating a drift plan needs a superuser (it builds a scratch copy of the schema);"
            " --no-validate prints the plan unvalidated"
        )
    snapshot, schemas = row
    scratch = f"asymm_scratch_{os.getpid()}_{next(_scratch_counter)}"
    src = source_dsn(conn)
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        env = tool_env(conn)
        # asymm's own tables (the daemon's telemetry partitions) come with CREATE EXTENSION: dumped
        # as well, they would clash with the indexes the extension's partitioned tables give them.
        dump = subprocess.run(
            [_pg_tool("pg_dump"), "--schema-only", "--no-comments", "--exclude-table=asymm.*", "-d", src],
            capture_output=True,
            text=True,
            env=env,
        )
        if dump.returncode != 0:
            raise AsymmError(f"pg_dump failed: {one_line(dump.stderr)}")
        target = with_dbname(src, scratch)
        with connect(target) as scratch_conn:
            scratch_conn.execute(SCRATCH_GUARD)
            restore = subprocess.run(
                [_pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target],
                input=dump.stdout,
                capture_output=True,
                text=True,
                env=env,
            )
            if restore.returncode != 0:
                raise AsymmError(f"restoring the schema into {scratch} failed: {one_line(restore.stderr)}")
            copy_invalid_indexes(conn, scratch_conn, schemas if isinstance(schemas, list) else None)
            timeout = lock_timeout(scratch_conn)
            for s in steps:
                try:
                    scratch_conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(timeout)))
                    scratch_conn.execute(s.statement.encode())  # plan text from asymm.drift_plan
                except psycopg.Error as exc:
                    return Validation(False, scratch, error=one_line(str(exc)), failed_step=s.step)
            scratch_conn.execute(SCRATCH_UNGUARD)
            left = scratch_conn.execute(
                "SELECT asymm._drift_compare(%s, asymm._drift_snapshot(%s), false)", (Jsonb(snapshot), schemas)
            ).fetchone()
            assert left is not None
            found: list[dict[str, Any]] = left[0]  # type: ignore[assignment]
            remaining = [
                {k: v for k, v in item.items() if k in ("kind", "object_type", "identity", "property")}
                for item in found
            ]
        return Validation(
            not remaining,
            scratch,
            remaining=remaining,
            error=None if not remaining else f"{len(remaining)} difference(s) remain after the plan",
        )
    finally:
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
        except psycopg.Error as exc:
            log.warning("could not drop scratch database %s: %s", scratch, exc)


def copy_invalid_indexes(conn: Conn, scratch_conn: Conn, schemas: list[str] | None) -> None:
    """pg_dump leaves INVALID indexes out (a failed concurrent build's leftover), yet the plan may
    drop, rename or rebuild one: build each in the scratch copy (its empty table, under the guard)
    and mark it invalid there as it is on the live database."""
    rows = conn.execute(
        "SELECT pg_get_indexdef(i.indexrelid), quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
        "  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE NOT i.indisvalid AND NOT c.relispartition AND n.nspname <> 'asymm'"
        "   AND (%s::text[] IS NULL OR n.nspname = ANY (%s::text[]))",
        (schemas, schemas),
    ).fetchall()
    for ddl, name in rows:
        scratch_conn.execute(str(ddl).encode())  # the server's own pg_get_indexdef() text
        scratch_conn.execute(
            "UPDATE pg_catalog.pg_index SET indisvalid = false WHERE indexrelid = pg_catalog.to_regclass(%s)", (name,)
        )


SCRATCH_GUARD = b"""
CREATE SCHEMA asymm_scratch_guard;
CREATE TABLE asymm_scratch_guard.real (oid oid PRIMARY KEY, prolang oid NOT NULL, prosrc text, proconfig text[]);
CREATE FUNCTION asymm_scratch_guard.stub() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $guard$
DECLARE
    plpgsql oid := (SELECT l.oid FROM pg_language l WHERE l.lanname = 'plpgsql');
BEGIN
    -- A function a non-superuser owns, just created, replaced or given to that role (the dump's
    -- ALTER FUNCTION ... OWNER TO): keep its real definition, unless it is a stub already.
    INSERT INTO asymm_scratch_guard.real AS r
    SELECT DISTINCT p.oid, p.prolang, p.prosrc, p.proconfig
      FROM pg_event_trigger_ddl_commands() c
      JOIN pg_proc p ON p.oid = c.objid
      JOIN pg_roles o ON o.oid = p.proowner
     WHERE c.classid = 'pg_proc'::regclass AND p.prokind IN ('f', 'p') AND NOT o.rolsuper
       AND NOT (p.prolang = plpgsql AND p.prosrc IN ('BEGIN RETURN; END', 'BEGIN RETURN NULL; END'))
    ON CONFLICT (oid) DO UPDATE
       SET prolang = excluded.prolang, prosrc = excluded.prosrc, proconfig = excluded.proconfig;
    -- ... and stub it: PL/pgSQL that runs nothing; signature, volatility and owner unchanged.
    UPDATE pg_proc p
       SET prolang = plpgsql, proconfig = NULL,
           prosrc = CASE WHEN p.prokind = 'p' OR p.proretset
                              OR p.prorettype IN ('void'::regtype, 'event_trigger'::regtype)
                              OR p.proargmodes && ARRAY['o', 'b', 't']::"char"[]
                         THEN 'BEGIN RETURN; END' ELSE 'BEGIN RETURN NULL; END' END
      FROM asymm_scratch_guard.real r
     WHERE p.oid = r.oid
       AND NOT (p.prolang = plpgsql AND p.prosrc IN ('BEGIN RETURN; END', 'BEGIN RETURN NULL; END'));
END
$guard$;
CREATE EVENT TRIGGER asymm_scratch_guard ON ddl_command_end EXECUTE FUNCTION asymm_scratch_guard.stub();
"""
"""Run in a fresh scratch database before anything else: from then on, no function body of a role
that is not a superuser exists there while DDL runs (direct ``pg_proc`` edits: superuser only, in a
database that is dropped afterwards)."""

SCRATCH_UNGUARD = b"""
DROP EVENT TRIGGER asymm_scratch_guard;
UPDATE pg_catalog.pg_proc p SET prolang = r.prolang, prosrc = r.prosrc, proconfig = r.proconfig
  FROM asymm_scratch_guard.real r WHERE p.oid = r.oid;
DROP SCHEMA asymm_scratch_guard CASCADE;
"""
"""Put the real bodies back (for the comparison only) and remove the guard."""
