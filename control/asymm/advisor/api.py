"""The advisor as the daemon task and the dashboard use it: run, store, apply, and read the results.

Why the imports inside the functions: the pipeline loads pglast and the what-if machinery, which a
daemon that never runs the advisor (and ``asymm status``) should not pay for at start.
"""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


def advise_and_store(conn: Conn, *, auto_apply: bool = False) -> dict[str, Any]:
    """One run with the settings stored in the database; its suggestions are stored, and built if asked."""
    from asymm.advisor.advise import advise, settings_from_db, store
    from asymm.advisor.apply import apply_result

    result = advise(conn, settings_from_db(conn))
    store(conn, result)
    if auto_apply:
        apply_result(conn, result)
    return result


def latest_suggestions(conn: Conn, limit: int = 20) -> list[dict[str, Any]] | None:
    """The latest run's suggestions plus everything applied, failed or rolled back, with the verify verdict.

    Applied indexes come first: they are what changed the database.  None when the extension's
    advisor view is not there (an older install).
    """
    row = conn.execute("SELECT to_regclass('asymm.index_suggestions_latest') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return None
    cur = conn.execute(
        """
        SELECT suggestion_id, run_id::text AS run_id, suggested_at, table_name, columns, method, index_name,
               definition, estimated_benefit, size_bytes, cardinality(queryids) AS queries, status,
               applied_at, error, verified_at, verdict,
               (verdict_detail->>'mean_before_ms')::float8 AS mean_before_ms,
               (verdict_detail->>'mean_after_ms')::float8 AS mean_after_ms,
               (verdict_detail->>'calls_since')::int8 AS calls_since
          FROM asymm.index_suggestions_latest
         ORDER BY status = 'suggested', coalesce(applied_at, suggested_at) DESC, estimated_benefit DESC,
                  suggestion_id DESC
         LIMIT %s""",
        (limit,),
    )
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def hypopg_installed(conn: Conn) -> bool:
    """Whether the what-if engine is there (without it the advisor suggests nothing)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg')").fetchone()
    return bool(row and row[0])
