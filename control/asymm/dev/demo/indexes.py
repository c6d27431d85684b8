"""The demo's index step: the real advisor on the demo workload, applied, then checked by verify.

It calls the same functions as ``asymm advise --apply`` and ``asymm verify`` (no demo-only
shortcut): suggestions are validated with HypoPG, stored in ``asymm.index_suggestions``, built
with ``CREATE INDEX CONCURRENTLY`` one at a time, and judged by the mean latency of their queries
before and after.  The numbers are the demo's own: a 10-second workload on a 2-core box, so a
verdict is an illustration, not a benchmark.
"""

from __future__ import annotations

from typing import Any

from asymm.advisor.advise import advise, settings_from_db, store
from asymm.advisor.apply import apply_result
from asymm.advisor.verify import verify
from asymm.db import connect


def advise_and_apply(dsn: str) -> dict[str, Any]:
    """Advise on pg_stat_statements' view of the workload, store the suggestions, build them."""
    with connect(dsn) as conn:
        result = advise(conn, settings_from_db(conn))
        store(conn, result)
        apply_result(conn, result)
    return result


def verify_applied(dsn: str) -> dict[str, Any]:
    """``asymm verify`` (no rollback): verdict and mean latency before → after per applied index."""
    with connect(dsn) as conn:
        return verify(conn, rollback=False)


def summary_rows(advice: dict[str, Any], verdicts: dict[str, Any]) -> list[dict[str, str]]:
    """One row per index the advisor chose: what it estimated and what verify measured."""
    by_id = {v["suggestion_id"]: v for v in verdicts.get("indexes", [])}
    rows = []
    for item in advice["indexes"]:
        measured = by_id.get(item.get("suggestion_id", -1), {})
        before, after = measured.get("mean_before_ms"), measured.get("mean_after_ms")
        latency = "-"
        if before is not None and after is not None:
            if 0 < after < before:
                change = f" ({before / after:,.1f}x faster)"
            else:
                change = f" ({100 * (after / before - 1):+.0f} %)" if before else ""
            latency = f"{before:.3f} -> {after:.3f} ms{change}"
        rows.append(
            {
                "index": f"{item['table']} ({', '.join(item['columns'])})",
                "est. benefit": f"{item['estimated_benefit']:,.0f}",
                "applied": str(item.get("applied", "no")),
                "verdict": measured.get("verdict", "-"),
                "mean latency before -> after": latency,
                "calls since": str(measured.get("calls_since", "-")),
            }
        )
    return rows


COLUMNS = ["index", "est. benefit", "applied", "verdict", "mean latency before -> after", "calls since"]
