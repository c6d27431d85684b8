"""Schema drift from the control plane: baselines, drift reports, validated migration plans.

The comparison itself lives in the extension (``asymm.drift()``, ``asymm.drift_plan()``) so that
SQL users, the CLI and the daemon see the same answer.  What lives here is what the server cannot
do from inside a transaction:

* validating a plan on a scratch copy of the schema (``CREATE INDEX CONCURRENTLY`` cannot run in a
  transaction block, and applying a plan to the live database just to check it would take its
  locks and rewrite its tables), and
* the daemon's periodic reconciliation and the opt-in restore of dropped baseline indexes.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from asymm.daemon.scheduler import Task
from asymm.db import connect, one_line, require_extension, with_dbname
from asymm.errors import AsymmError

if TYPE_CHECKING:
    from asymm.daemon.pulse import Tick
    from asymm.daemon.service import Daemon

log = logging.getLogger("asymm.drift")
Conn = psycopg.Connection[tuple[object, ...]]
_scratch_counter = itertools.count()


@dataclass
class PlanStep:
    step: int
    phase: int
    statement: str
    transactional: bool
    online: bool
    hazards: list[str]


@dataclass
class Validation:
    """Outcome of applying a plan to a scratch copy of the schema."""

    ok: bool
    scratch: str
    error: str | None = None
    failed_step: int | None = None
    remaining: list[dict[str, Any]] = field(default_factory=list)


def capture_baseline(conn: Conn, name: str, schemas: list[str] | None = None) -> int:
    """Store (or move) the named baseline; returns the number of objects captured."""
    require_extension(conn)
    row = conn.execute("SELECT asymm.baseline(%s, %s)", (name, schemas or None)).fetchone()
    assert row is not None
    return int(str(row[0]))


def accept(conn: Conn, name: str) -> int:
    require_extension(conn)
    row = conn.execute("SELECT asymm.drift_accept(%s)", (name,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def baseline_names(conn: Conn) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT name FROM asymm.drift_baselines ORDER BY name")]


def drift_items(conn: Conn, name: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``asymm.drift(name)`` as dictionaries (every baseline when ``name`` is None)."""
    require_extension(conn)
    if name is not None and name not in baseline_names(conn):
        raise AsymmError(f'no baseline named "{name}" (asymm baseline {name} captures one)')
    cur = conn.execute("SELECT * FROM asymm.drift(%s)", (name,))
    cols = [d.name for d in cur.description or []]
    out = []
    for row in cur.fetchall():
        item = dict(zip(cols, row, strict=True))
        item["txid"] = str(item["txid"]) if item["txid"] is not None else None
        out.append(item)
    return out


def plan(conn: Conn, name: str) -> list[PlanStep]:
    require_extension(conn)
    rows = conn.execute(
        "SELECT step, phase, statement, transactional, online, hazards FROM asymm.drift_plan(%s)", (name,)
    ).fetchall()
    return [PlanStep(int(str(r[0])), int(str(r[1])), str(r[2]), bool(r[3]), bool(r[4]),
                     [str(h) for h in r[5]])  # type: ignore[attr-defined]
            for r in rows]


def lock_timeout(conn: Conn) -> str:
    row = conn.execute("SELECT asymm.setting('drift.lock_timeout')").fetchone()
    assert row is not None
    return str(row[0])


def render_sql(steps: list[PlanStep], timeout: str, validation: Validation | None) -> str:
    """The plan as a psql script: each statement preceded by its own ``SET lock_timeout``."""
    if not steps:
        return "-- no drift: the schema matches the baseline\n"
    lines = ["-- asymm drift migration plan (run with psql in autocommit mode, statement by statement)"]
    if validation is not None:
        lines.append("-- validated on a scratch copy of the schema: " + ("ok" if validation.ok else "FAILED"))
    for s in steps:
        lines.append("")
        if s.hazards:
            lines.append("-- hazards: " + ", ".join(s.hazards))
        if not s.transactional:
            lines.append("-- cannot run inside a transaction block")
        lines.append(f"SET lock_timeout = '{timeout}';")
        lines.append(s.statement + ";")
    return "\n".join(lines) + "\n"


def _pg_tool(name: str) -> str:
    """Path of a PostgreSQL client program (pg_dump, psql): PG_CONFIG's bindir first, then PATH."""
    pg_config = os.environ.get("PG_CONFIG") or shutil.which("pg_config")
    if pg_config:
        try:
            bindir = subprocess.run([pg_config, "--bindir"], check=True, capture_output=True,
                                    text=True).stdout.strip()
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
        raise AsymmError("validating a drift plan needs a superuser (it builds a scratch copy of the schema);"
                         " --no-validate prints the plan unvalidated")
    snapshot, schemas = row
    scratch = f"asymm_scratch_{os.getpid()}_{next(_scratch_counter)}"
    src = source_dsn(conn)
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        env = tool_env(conn)
        # asymm's own tables (the daemon's telemetry partitions) come with CREATE EXTENSION: dumped
        # as well, they would clash with the indexes the extension's partitioned tables give them.
        dump = subprocess.run([_pg_tool("pg_dump"), "--schema-only", "--no-comments", "--exclude-table=asymm.*",
                               "-d", src], capture_output=True, text=True, env=env)
        if dump.returncode != 0:
            raise AsymmError(f"pg_dump failed: {one_line(dump.stderr)}")
        target = with_dbname(src, scratch)
        with connect(target) as scratch_conn:
            scratch_conn.execute(SCRATCH_GUARD)
            restore = subprocess.run([_pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target],
                                     input=dump.stdout, capture_output=True, text=True, env=env)
            if restore.returncode != 0:
                raise AsymmError(f"restoring the schema into {scratch} failed: {one_line(restore.stderr)}")
            timeout = lock_timeout(scratch_conn)
            for s in steps:
                try:
                    scratch_conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(timeout)))
                    scratch_conn.execute(s.statement.encode())  # plan text from asymm.drift_plan
                except psycopg.Error as exc:
                    return Validation(False, scratch, error=one_line(str(exc)), failed_step=s.step)
            scratch_conn.execute(SCRATCH_UNGUARD)
            left = scratch_conn.execute(
                "SELECT asymm._drift_compare(%s, asymm._drift_snapshot(%s), false)",
                (Jsonb(snapshot), schemas)).fetchone()
            assert left is not None
            found: list[dict[str, Any]] = left[0]  # type: ignore[assignment]
            remaining = [{k: v for k, v in item.items() if k in ("kind", "object_type", "identity", "property")}
                         for item in found]
        return Validation(not remaining, scratch, remaining=remaining,
                          error=None if not remaining else f"{len(remaining)} difference(s) remain after the plan")
    finally:
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
        except psycopg.Error as exc:
            log.warning("could not drop scratch database %s: %s", scratch, exc)


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


# ---- daemon --------------------------------------------------------------------------------------

NOTIFY_ITEMS = 20
"""How many drift items a webhook notification carries at most."""


class DriftWatcher:
    """The daemon's side of drift: periodic full catalog diff, opt-in index restore.

    Reconciliation is what catches DDL the event triggers never saw (replica role, a disabled
    event trigger).  The restore of a dropped index runs in its own thread and connection because a
    CREATE INDEX CONCURRENTLY can take far longer than a tick.
    """

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.restoring: threading.Thread | None = None
        self.restored: list[str] = []

    def reconcile(self, _tick: Tick) -> None:
        conn = self.daemon.conn
        assert conn is not None
        row = conn.execute("SELECT asymm.drift_reconcile()").fetchone()
        if row and row[0]:
            log.warning("drift: %s new finding(s); asymm drift shows them", row[0])
            self._notify(conn, int(row[0]))  # type: ignore[call-overload]
        setting = conn.execute("SELECT asymm.setting('drift.restore_indexes')::boolean").fetchone()
        if setting and setting[0] and (self.restoring is None or not self.restoring.is_alive()):
            statements = [str(r[0]) for r in conn.execute(
                "SELECT s ->> 'sql' FROM asymm.drift() d, jsonb_array_elements(d.plan) s"
                " WHERE d.kind = 'removed' AND d.object_type = 'index'"
                "   AND s ->> 'sql' ~ '^CREATE (UNIQUE )?INDEX CONCURRENTLY '")]
            if statements:
                self.restoring = threading.Thread(target=self._restore, args=(statements,), daemon=True,
                                                  name="asymm-drift-restore")
                self.restoring.start()

    def _notify(self, conn: psycopg.Connection[tuple[object, ...]], new_findings: int) -> None:
        """Tell the configured webhooks what drifted (the first items; `asymm drift` has them all)."""
        items = [
            {"baseline": r[0], "kind": r[1], "object_type": r[2], "identity": r[3], "severity": r[4],
             "hazards": r[5], "who": r[6], "detection": r[7]}
            for r in conn.execute(
                "SELECT baseline, kind, object_type, identity, severity, hazards, who, detection"
                "  FROM asymm.drift() ORDER BY changed_at DESC NULLS LAST LIMIT %s", (NOTIFY_ITEMS,))
        ]
        self.daemon.notifier.notify("drift", {"database": conn.info.dbname, "new_findings": new_findings,
                                              "items": items})

    def _restore(self, statements: list[str]) -> None:
        try:
            with connect(self.daemon.config.dsn) as conn:
                timeout = lock_timeout(conn)
                for statement in statements:
                    try:
                        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(timeout)))
                        conn.execute(statement.encode())  # from asymm.drift(): baseline DDL
                        self.restored.append(statement)
                        log.warning("drift: restored a dropped baseline index: %s", statement)
                    except psycopg.Error as exc:
                        log.error("drift: could not restore index (%s): %s", statement, one_line(str(exc)))
        except AsymmError as exc:
            log.error("drift: restore connection failed: %s", exc)


def reconcile_ticks(daemon: Daemon) -> int:
    """Ticks between reconciliations, from the ``drift.reconcile_every`` setting (read once at start)."""
    try:
        with connect(daemon.config.dsn) as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM asymm.setting('drift.reconcile_every')::interval)").fetchone()
        seconds = float(row[0]) if row else 10.0  # type: ignore[arg-type]
    except (AsymmError, psycopg.Error):
        seconds = 10.0
    return max(1, round(seconds / daemon.config.period))


def daemon_tasks(daemon: Daemon) -> list[Task]:
    watcher = DriftWatcher(daemon)
    daemon.drift_watcher = watcher  # type: ignore[attr-defined]  # for tests and status
    return [Task("drift-reconcile", watcher.reconcile, every=reconcile_ticks(daemon), regime="stabilization")]
