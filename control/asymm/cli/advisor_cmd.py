"""``asymm advise`` and ``asymm verify``: the index advisor from the command line."""

from __future__ import annotations

from typing import Any

import click

from asymm.cli.common import dsn_option, emit, json_option, number, table, whole
from asymm.db import connect
from asymm.errors import AsymmError


def render_advice(result: dict[str, Any]) -> str:
    rows = [
        {
            "table": item["table"],
            "index": item["definition"],
            "benefit": f"{item['estimated_benefit']:.0f}",
            "size*": _size(item["size_bytes"]),
            "queries": len(item["queryids"]),
            "estimate": item.get("estimate", "hypopg"),
            "applied": item.get("applied", ""),
        }
        for item in result["indexes"]
    ]
    columns = ["table", "index", "benefit", "size*", "queries", "estimate"]
    if any("applied" in item for item in result["indexes"]):
        columns.append("applied")
    lines = [table(rows, columns)]
    before, after = result["workload_cost_before"], result["workload_cost_after"]
    if before:
        lines.append(f"estimated workload cost: {before:.0f} -> {after:.0f} ({100 * (1 - after / before):.0f} % less)")
    lines.append(f"* {result['size_note']}")
    if any(item.get("size_note", result["size_note"]) != result["size_note"] for item in result["indexes"]):
        lines.append("  an index estimated on a sample copy: its size there, scaled to the table's rows")
    lines.append(
        f"{result['planned']} of {result['statements']} statements planned, "
        f"{result['whatif_calls']} what-if calls, {result['runtime_s']:.2f} s"
    )
    if result.get("stopped_by") == "max_indexes":
        lines.append(
            f"stopped by the index cap (advisor.max_indexes / --max-indexes): "
            f"{result.get('beneficial_candidates_left', 0)} more candidates would still pay"
        )
    for item in result.get("refused_write_bound", []):
        lines.append(
            f"refused (write bound): {item['definition']} -- would make {item['statement'].upper()}"
            f" {item['queryid']} {item['modelled_ratio']:.2f}x costlier per call ({item['reason']})"
        )
    slower = result.get("slower_statements", [])
    if slower:
        lines.append("expected slower with these indexes (modelled; heaviest first):")
        rows = [
            {
                "queryid": item["queryid"],
                "statement": item["statement"],
                "factor": f"{item['estimated_factor']:.2f}x",
                "calls": item["calls"],
                "query": item["query"],
            }
            for item in slower
        ]
        lines.append(table(rows, ["queryid", "statement", "factor", "calls", "query"]))
    for item in result.get("unverified", []):
        lines.append(f"unverified (not chosen): {item['definition']} -- {item['calls']} calls; {item['reason']}")
    for item in result.get("candidates_rejected", []):
        lines.append(f"refused by PostgreSQL (not chosen): {item['definition']} -- {item['reason']}")
    if result["skipped"]:
        lines.append("skipped:")
        for item in result["skipped"]:
            query = " ".join(str(item["query"]).split())
            lines.append(f"  {item['queryid']}: {item['reason']} -- {query[:80]}")
    return "\n".join(lines)


def _size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


@click.command("advise")
@dsn_option
@json_option
@click.option("--apply", "do_apply", is_flag=True, help="Create the suggested indexes (CONCURRENTLY, one at a time).")
@click.option(
    "--budget-mb",
    type=number(0, 16_777_216),
    default=None,
    help="Storage budget in MB (HypoPG's estimate corrected for deduplication); default: setting advisor.budget_mb.",
)
@click.option(
    "--max-indexes",
    type=whole(0, 1000),
    default=None,
    help="At most this many indexes (0: no cap; the selection stops on marginal benefit);"
    " default: setting advisor.max_indexes.",
)
@click.option(
    "--min-gain",
    type=number(0, 1),
    default=None,
    help="Stop when the next index saves less than this fraction of the workload cost.",
)
@click.option(
    "--storage-weight",
    type=number(0, 100),
    default=None,
    help="Storage price: an index as big as its tables must save this fraction of the remaining cost"
    " (0: storage is free); default: setting advisor.storage_weight.",
)
@click.option(
    "--limit",
    type=whole(1, 100_000),
    default=2000,
    show_default=True,
    help="Consider at most this many statements (heaviest total time first).",
)
@click.option(
    "--max-write-regression",
    type=number(0, 1000),
    default=None,
    help="Refuse indexes that make an INSERT or UPDATE more than this fraction costlier per call;"
    " default: setting advisor.max_write_regression (0.50; negative: no bound).",
)
@click.option(
    "--no-write-bound", is_flag=True, help="No per-call bound on writes (maintenance is still charged in the benefit)."
)
@click.option(
    "--no-observed-values",
    is_flag=True,
    help="Plan with values from the column statistics only, not with those pg_qualstats observed.",
)
def advise_command(
    dsn: str,
    as_json: bool,
    do_apply: bool,
    budget_mb: float | None,
    max_indexes: int | None,
    min_gain: float | None,
    storage_weight: float | None,
    limit: int,
    max_write_regression: float | None,
    no_write_bound: bool,
    no_observed_values: bool,
) -> None:
    """Suggest indexes for the workload in pg_stat_statements (validated with HypoPG)."""
    from asymm.advisor.advise import advise, settings_from_db, store

    with connect(dsn) as conn:
        if do_apply:
            from asymm.advisor.advise import may_write

            if not may_write(conn, "index_suggestions", "UPDATE"):
                raise AsymmError(
                    "permission denied to apply indexes: this role may not update"
                    " asymm.index_suggestions (a reader role; run asymm advise without --apply)"
                )
        settings = settings_from_db(conn)
        if budget_mb is not None:
            settings.budget_mb = budget_mb
        if max_indexes is not None:
            settings.max_indexes = max_indexes or None
        if min_gain is not None:
            settings.min_gain_fraction = min_gain
        if storage_weight is not None:
            settings.storage_weight = storage_weight
        settings.limit = limit
        if max_write_regression is not None:
            settings.max_write_regression = max_write_regression
        if no_write_bound:
            settings.max_write_regression = None
        settings.observed_values = not no_observed_values
        result = advise(conn, settings)
        store(conn, result)
        if result.get("stored") is False:
            click.echo(
                "note: this role may not write asymm.index_suggestions: the advice is shown, not stored", err=True
            )
        if do_apply:
            from asymm.advisor.apply import apply_result

            apply_result(conn, result)
    emit(result, as_json, render_advice)


def render_verify(result: dict[str, Any]) -> str:
    rows = [
        {
            "index": item["index_name"],
            "verdict": item["verdict"],
            "mean before ms": _ms(item.get("mean_before_ms")),
            "mean after ms": _ms(item.get("mean_after_ms")),
            "calls since": item.get("calls_since", 0),
            "action": item.get("action", ""),
        }
        for item in result["indexes"]
    ]
    return table(rows, ["index", "verdict", "mean before ms", "mean after ms", "calls since", "action"])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@click.command("verify")
@dsn_option
@json_option
@click.option("--rollback", is_flag=True, help="Drop (CONCURRENTLY) the applied indexes that did not pay off.")
def verify_command(dsn: str, as_json: bool, rollback: bool) -> None:
    """Compare the real latency of the queries of applied indexes before and after."""
    from asymm.advisor.verify import verify

    with connect(dsn) as conn:
        result = verify(conn, rollback=rollback)
    if not result.get("recorded", True):
        click.echo(
            "note: this role may not write asymm.index_suggestions: the verdicts are shown, not recorded", err=True
        )
    emit(result, as_json, render_verify)
