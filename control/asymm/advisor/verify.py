"""``asymm verify [--rollback]``: did the applied indexes make their queries faster, for real?

Why re-weighted means: the mean latency of an index's queries since it was applied is compared with
the mean before, weighted by the calls since, so a change in the query mix does not pass for a
gain.  Sources, verdicts and rollback: docs/advisor.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from asymm.advisor.apply import (
    IndexLock,
    drop_index,
    extension_installed,
    lock_timeout,
    qualified_index,
    statement_counters,
)
from asymm.errors import AsymmError


def _setting(conn: psycopg.Connection[Any], name: str, default: float) -> float:
    row = conn.execute("SELECT asymm.setting(%s)", (name,)).fetchone()
    return float(str(row[0])) if row and row[0] is not None else default


def history_means(
    conn: psycopg.Connection[Any], queryids: list[int], applied_at: datetime
) -> dict[int, tuple[float, int, float, int]] | None:
    """Per queryid (mean_before_ms, calls_before, mean_after_ms, calls_after) from the telemetry history.

    Why prefer it over the counters recorded at apply time: ``asymm.query_history`` compares two
    windows of equal length around ``applied_at`` (the time since apply, and as long before it), so
    a query whose latency drifted for hours before the index does not count that drift as gain,
    and it is immune to pg_stat_statements resets and evictions.  Only queries with calls on both
    sides are returned; the others fall back to the recorded counters.  None when the telemetry
    history is not being recorded (no snapshot has run).
    """
    row = conn.execute("SELECT snapshots > 0 FROM asymm.telemetry_state").fetchone()
    if not row or not row[0]:
        return None
    rows = conn.execute(
        """
        SELECT h.queryid,
               sum(h.calls) FILTER (WHERE h.sampled_at < %(applied)s),
               sum(h.total_ms) FILTER (WHERE h.sampled_at < %(applied)s),
               sum(h.calls) FILTER (WHERE h.sampled_at >= %(applied)s),
               sum(h.total_ms) FILTER (WHERE h.sampled_at >= %(applied)s)
          FROM asymm.query_history(2 * (now() - %(applied)s::timestamptz)) h
         WHERE h.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND h.queryid = ANY(%(ids)s)
         GROUP BY h.queryid
        """,
        {"applied": applied_at, "ids": queryids},
    ).fetchall()
    means: dict[int, tuple[float, int, float, int]] = {}
    for queryid, calls_before, total_before, calls_after, total_after in rows:
        if calls_before and calls_after:
            before, after = int(str(calls_before)), int(str(calls_after))
            means[int(str(queryid))] = (
                float(str(total_before)) / before,
                before,
                float(str(total_after)) / after,
                after,
            )
    return means


def verify(conn: psycopg.Connection[Any], rollback: bool = False) -> dict[str, Any]:
    if not extension_installed(conn):
        raise AsymmError("the asymm extension is not installed in this database (CREATE EXTENSION asymm CASCADE)")
    from asymm.advisor.advise import may_write

    recorded = may_write(conn, "index_suggestions", "UPDATE")
    if rollback and not recorded:
        raise AsymmError(
            "permission denied to roll back indexes: this role may not update asymm.index_suggestions"
            " (a reader role; run asymm verify without --rollback)"
        )
    min_calls = _setting(conn, "advisor.verify_min_calls", 20)
    min_improvement = _setting(conn, "advisor.verify_min_improvement", 0.05)
    applied = conn.execute(
        "SELECT suggestion_id, index_name, table_name, definition, applied_at, queryids FROM asymm.index_suggestions"
        " WHERE status = 'applied' ORDER BY applied_at, suggestion_id"
    ).fetchall()
    out: list[dict[str, Any]] = []
    for suggestion_id, index_name, table_name, definition, applied_at, queryids in applied:
        baselines = {
            int(str(q)): (int(str(c)), float(str(t)))
            for q, c, t in conn.execute(
                "SELECT queryid, calls, total_exec_time FROM asymm.index_suggestion_baselines WHERE suggestion_id = %s",
                (suggestion_id,),
            )
        }
        ids = sorted({int(str(q)) for q in (queryids or [])} | set(baselines))
        history = history_means(conn, ids, applied_at)
        now = statement_counters(conn, ids)
        per_query = []
        weighted_before = calls_since = 0.0
        time_since = 0.0
        for queryid in ids:
            base_calls, base_total = baselines.get(queryid, (0, 0.0))
            cur_calls, cur_total = now.get(queryid, (0, 0.0))
            if history is not None and queryid in history:
                mean_before, base_calls, mean_after, d_calls = history[queryid]
                d_time = mean_after * d_calls
            else:
                if cur_calls >= base_calls:
                    d_calls, d_time = cur_calls - base_calls, cur_total - base_total
                else:  # pg_stat_statements was reset (or the entry evicted) since apply
                    d_calls, d_time = cur_calls, cur_total
                mean_before = base_total / base_calls if base_calls else 0.0
            per_query.append(
                {
                    "queryid": queryid,
                    "calls_before": base_calls,
                    "mean_before_ms": mean_before,
                    "calls_since": d_calls,
                    "mean_after_ms": d_time / d_calls if d_calls else None,
                }
            )
            if base_calls and d_calls:
                weighted_before += mean_before * d_calls
                calls_since += d_calls
                time_since += d_time
        before = weighted_before / calls_since if calls_since else None
        after = time_since / calls_since if calls_since else None
        if calls_since < min_calls or before is None or after is None:
            verdict = "insufficient_data"
        elif after <= before * (1 - min_improvement):
            verdict = "paid_off"
        else:
            verdict = "no_gain"
        item: dict[str, Any] = {
            "suggestion_id": int(str(suggestion_id)),
            "index_name": index_name,
            "table": table_name,
            "definition": definition,
            "verdict": verdict,
            "mean_before_ms": before,
            "mean_after_ms": after,
            "calls_since": int(calls_since),
            "queries": per_query,
            "action": "",
        }
        if rollback and verdict == "no_gain":
            qualified = qualified_index(conn, str(table_name), str(index_name))
            with IndexLock(conn):
                conn.execute("SELECT set_config('lock_timeout', %s, false)", (lock_timeout(conn),))
                try:
                    if qualified is not None:
                        drop_index(conn, qualified)
                finally:
                    conn.execute("RESET lock_timeout")
            item["action"] = "dropped"
        detail = {k: item[k] for k in ("mean_before_ms", "mean_after_ms", "calls_since", "queries")}
        out.append(item)
        if not recorded:
            continue  # a reader sees the verdicts; they are recorded by a role that may
        conn.execute(
            "UPDATE asymm.index_suggestions SET verified_at = now(), verdict = %s, verdict_detail = %s::jsonb,"
            " status = CASE WHEN %s THEN 'rolled_back' ELSE status END WHERE suggestion_id = %s",
            (verdict, _json(detail), item["action"] == "dropped", suggestion_id),
        )
    return {"indexes": out, "rollback": rollback, "recorded": recorded}


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)
