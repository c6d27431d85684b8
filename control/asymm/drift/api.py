"""Schema drift's functions over a connection: baselines, drift items, migration plans as SQL.

The comparison itself lives in the extension (``asymm.drift()``, ``asymm.drift_plan()``) so that
SQL users, the CLI, the dashboard and the daemon see the same answer; these functions call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from asymm.db import require_extension
from asymm.errors import AsymmError

Conn = psycopg.Connection[tuple[object, ...]]


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
    return [
        PlanStep(int(str(r[0])), int(str(r[1])), str(r[2]), bool(r[3]), bool(r[4]), [str(h) for h in r[5]])  # type: ignore[attr-defined]
        for r in rows
    ]


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


def reconcile(conn: Conn) -> int:
    """One ``asymm.drift_reconcile()`` (a full catalog diff against every baseline): new findings."""
    row = conn.execute("SELECT asymm.drift_reconcile()").fetchone()
    return int(str(row[0])) if row and row[0] else 0


def restore_indexes_enabled(conn: Conn) -> bool:
    """The ``drift.restore_indexes`` setting."""
    row = conn.execute("SELECT asymm.setting('drift.restore_indexes')::boolean").fetchone()
    return bool(row and row[0])


def index_restore_statements(conn: Conn) -> list[str]:
    """The ``CREATE INDEX CONCURRENTLY`` statements that put back every dropped baseline index."""
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT s ->> 'sql' FROM asymm.drift() d, jsonb_array_elements(d.plan) s"
            " WHERE d.kind = 'removed' AND d.object_type = 'index'"
            "   AND s ->> 'sql' ~ '^CREATE (UNIQUE )?INDEX CONCURRENTLY '"
        )
    ]


def latest_items(conn: Conn, limit: int) -> list[dict[str, Any]]:
    """The most recently changed drift items, in the shape a webhook carries."""
    return [
        {
            "baseline": r[0],
            "kind": r[1],
            "object_type": r[2],
            "identity": r[3],
            "severity": r[4],
            "hazards": r[5],
            "who": r[6],
            "detection": r[7],
        }
        for r in conn.execute(
            "SELECT baseline, kind, object_type, identity, severity, hazards, who, detection"
            "  FROM asymm.drift() ORDER BY changed_at DESC NULLS LAST LIMIT %s",
            (limit,),
        )
    ]


def open_findings(conn: Conn, limit: int = 12) -> list[dict[str, Any]]:
    """Unresolved drift findings (``asymm.drift_findings``), latest first."""
    cur = conn.execute(
        "SELECT baseline, item->>'kind' AS kind, item->>'identity' AS identity,"
        "       item->>'severity' AS severity, first_seen, last_seen"
        "  FROM asymm.drift_findings WHERE resolved_at IS NULL ORDER BY last_seen DESC LIMIT %s",
        (limit,),
    )
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
