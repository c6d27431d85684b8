"""``asymm advise --apply``: create the chosen indexes safely, and remember how things were before.

Why this way: ``CREATE INDEX CONCURRENTLY`` one at a time under ``lock_timeout`` and an advisory
lock keeps writes flowing and two runs apart; INVALID leftovers are dropped; the counters recorded
before each build are the "before" of ``asymm verify`` (docs/advisor.md).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from asymm.db import extension_schema
from asymm.errors import AsymmError

log = logging.getLogger("asymm.advisor")
# pg_advisory_lock key shared by every asymm process that creates or drops indexes ("asymmidx").
LOCK_KEY = 0x6173796D6D696478


def extension_installed(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'asymm'").fetchone() is not None


def lock_timeout(conn: psycopg.Connection[Any]) -> str:
    if extension_installed(conn):
        row = conn.execute("SELECT asymm.setting('advisor.lock_timeout')").fetchone()
        if row and row[0]:
            return str(row[0])
    return "5s"


class IndexLock:
    """The session advisory lock around index builds and drops (non-blocking: fail if taken)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def __enter__(self) -> IndexLock:
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        if not row or not row[0]:
            raise AsymmError("another asymm process is creating or dropping indexes in this database; try again later")
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.conn.closed:
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def statement_counters(conn: psycopg.Connection[Any], queryids: list[int]) -> dict[int, tuple[int, float]]:
    """Current (calls, total_exec_time ms) per queryid in this database."""
    home = extension_schema(conn, "pg_stat_statements") or "public"
    rows = conn.execute(
        sql.SQL(
            "SELECT queryid, sum(calls)::int8, sum(total_exec_time) FROM {}.pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            "   AND toplevel AND queryid = ANY(%s) GROUP BY queryid"
        ).format(sql.Identifier(home)),
        (queryids,),
    ).fetchall()
    return {int(str(q)): (int(str(c)), float(str(t))) for q, c, t in rows}


def qualified_index(conn: psycopg.Connection[Any], table: str, name: str) -> str | None:
    """The schema-qualified name of index ``name`` beside ``table``, if it exists."""
    row = conn.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = %s AND c.relkind = 'i'"
        "   AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass(%s))",
        (name, table),
    ).fetchone()
    return str(row[0]) if row else None


def drop_index(conn: psycopg.Connection[Any], qualified: str) -> None:
    # ``qualified`` comes from format('%I.%I') on the catalog, never from user input.
    conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}")


def apply_result(conn: psycopg.Connection[Any], result: dict[str, Any]) -> None:
    """Create every index of an :func:`asymm.advisor.advise.advise` result; marks each item."""
    from asymm.advisor.candidates import Candidate  # noqa: F401  (documents the definition format)

    if not result["indexes"]:
        return
    record = extension_installed(conn)
    timeout = lock_timeout(conn)
    with IndexLock(conn):
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (timeout,))
        try:
            for item in result["indexes"]:
                apply_one(conn, item, record)
        finally:
            conn.execute("RESET lock_timeout")


def apply_one(conn: psycopg.Connection[Any], item: dict[str, Any], record: bool) -> None:
    existing = qualified_index(conn, item["table"], item["name"])
    if existing is not None:
        item["applied"] = "exists"
        return
    baseline = statement_counters(conn, list(item["queryids"]))
    statement = item["definition"].replace("CREATE INDEX ", "CREATE INDEX CONCURRENTLY ", 1)
    try:
        conn.execute(statement)
    except psycopg.Error as exc:
        message = (exc.diag.message_primary or str(exc)).strip()
        leftover = qualified_index(conn, item["table"], item["name"])
        if leftover is not None:
            drop_index(conn, leftover)  # the INVALID index a failed concurrent build leaves behind
        item["applied"] = f"failed: {message}"
        log.warning("advisor: %s failed: %s", item["definition"], message)
        if record and "suggestion_id" in item:
            conn.execute(
                "UPDATE asymm.index_suggestions SET status = 'failed', error = %s WHERE suggestion_id = %s",
                (message, item["suggestion_id"]),
            )
        return
    item["applied"] = "yes"
    if record and "suggestion_id" in item:
        with conn.transaction():
            conn.execute(
                "UPDATE asymm.index_suggestions SET status = 'applied', applied_at = now(), error = NULL"
                " WHERE suggestion_id = %s",
                (item["suggestion_id"],),
            )
            for queryid, (calls, total) in baseline.items():
                conn.execute(
                    "INSERT INTO asymm.index_suggestion_baselines"
                    " (suggestion_id, queryid, calls, total_exec_time) VALUES (%s, %s, %s, %s)",
                    (item["suggestion_id"], queryid, calls, total),
                )
