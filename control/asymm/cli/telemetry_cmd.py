"""``asymm top``, ``asymm health``, ``asymm duplicates``: the telemetry reports."""

from __future__ import annotations

from typing import Any

import click

from asymm import telemetry
from asymm.cli.common import check_interval, dsn_option, emit, json_option, number, table, whole
from asymm.db import connect


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _short(text: Any, width: int = 60) -> str:
    one = " ".join(str(text or "?").split())
    return one if len(one) <= width else one[: width - 1] + "…"


def render_top(data: dict[str, Any]) -> str:
    rows = [
        {
            "calls": q["calls"],
            "calls/s": _fmt(q["calls_per_s"]),
            "mean ms": _fmt(q["mean_ms"], 3),
            "max ms": _fmt(q["max_sample_mean_ms"], 3),
            "total ms": _fmt(q["total_ms"]),
            "hit %": _fmt(None if q["hit_ratio"] is None else 100 * q["hit_ratio"], 1),
            "query": _short(q["query"]),
        }
        for q in data["queries"]
    ]
    slow = [
        {
            "slow calls": s["slow_calls"],
            "calls": s["calls"],
            "max ms": _fmt(s["max_sample_mean_ms"], 1),
            "query": _short(s["query"]),
        }
        for s in data["slow_queries"]
    ]
    smooth = data["smoothness"]
    lines = [
        f"window: last {data['since']}   smoothness: {_fmt(smooth, 3)}",
        table(rows, ["calls", "calls/s", "mean ms", "max ms", "total ms", "hit %", "query"]),
        "",
        "slow queries:",
        table(slow, ["slow calls", "calls", "max ms", "query"]),
    ]
    return "\n".join(lines)


def render_health(data: dict[str, Any]) -> str:
    rows = [
        {
            "category": i["category"],
            "index": f"{i['schema_name']}.{i['index_name']}",
            "table": i["table_name"],
            "size": i["index_size"],
            "detail": i["detail"],
            "fix": i["drop_statement"],
        }
        for i in data["indexes"]
    ]
    return table(rows, ["category", "index", "table", "size", "detail", "fix"])


def render_duplicates(data: dict[str, Any]) -> str:
    rows = [
        {
            "copies": g["copies"],
            "sha256": g["row_hash"][:16],
            "ctids": " ".join(g["ctids"][:5]) + (" …" if len(g["ctids"]) > 5 else ""),
            "values": _short(g["row_values"], 50),
        }
        for g in data["groups"]
    ]
    head = f"{data['table']}: {len(data['groups'])} duplicate groups, {data['duplicate_rows']} surplus rows"
    return head + "\n" + table(rows, ["copies", "sha256", "ctids", "values"])


@click.command("top")
@dsn_option
@json_option
@click.option("--since", default="15 minutes", show_default=True, help="Window, as a PostgreSQL interval.")
@click.option("--limit", type=whole(1, 100_000), default=20, show_default=True, help="At most this many queries.")
@click.option(
    "--slow-ms",
    type=number(0, 86_400_000),
    default=100.0,
    show_default=True,
    help="Threshold of a slow call, in milliseconds.",
)
def top_command(dsn: str, as_json: bool, since: str, limit: int, slow_ms: float) -> None:
    """Per-query latency and throughput, slow queries and smoothness over a window."""
    with connect(dsn) as conn:
        check_interval(conn, since, "--since")
        emit(telemetry.top(conn, since=since, limit=limit, slow_ms=slow_ms), as_json, render_top)


@click.command("health")
@dsn_option
@json_option
def health_command(dsn: str, as_json: bool) -> None:
    """Invalid, unused, duplicate and prefix-redundant indexes, with DROP statements."""
    with connect(dsn) as conn:
        emit(telemetry.health(conn), as_json, render_health)


@click.command("duplicates")
@click.argument("table_name", metavar="TABLE")
@dsn_option
@json_option
@click.option("--columns", default=None, help="Comma-separated columns to compare (default: all non-key columns).")
def duplicates_command(table_name: str, dsn: str, as_json: bool, columns: str | None) -> None:
    """Groups of duplicate rows in TABLE, by SHA-256 of their values."""
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    with connect(dsn) as conn:
        emit(telemetry.duplicates(conn, table_name, chosen), as_json, render_duplicates)
