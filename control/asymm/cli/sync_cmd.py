"""``asymm sync status`` and ``asymm sync backfill TABLE``."""

from __future__ import annotations

import time
from typing import Any

import click

from asymm.cli.common import dsn_option, emit, json_option, number, table
from asymm.db import connect, lookup_relation
from asymm.errors import AsymmError
from asymm.sync import api as sync_api


def fetch_sync_status(dsn: str) -> dict[str, Any]:
    with connect(dsn) as conn:
        return sync_api.checked_status(conn)


def render_sync_status(status: dict[str, Any]) -> str:
    lag = status.get("lag_ms")
    lines = [
        f"lag (commit to Redis, last heartbeat): {'-' if lag is None else f'{lag:.1f} ms'}"
        f"{'' if not status.get('lag_at') else ' at ' + str(status['lag_at'])}",
        f"backlog: {status['backlog_rows']} outbox rows, {status['backlog_keys']} keys"
        f" (position {status['position']}, horizon {status['horizon']})",
        f"applied: {status['batches']} batches, {status['rows_applied']} outbox rows, {status['keys_applied']} keys;"
        f" {status['truncations']} truncations, {status['resyncs']} re-syncs",
        f"last error: {status['last_error'] or 'none'}"
        f"{'' if not status.get('last_error_at') else ' at ' + str(status['last_error_at'])}",
        *([f"Redis warning: {status['redis_warning']}"] if status.get("redis_warning") else []),
        *([_horizon_line(status["horizon_held_by"])] if status.get("horizon_held_by") else []),
        "",
        table(status["tables"], ["table", "key", "sensitive", "backfill", "rows_backfilled", "backfilled_at"]),
    ]
    return "\n".join(lines)


def _horizon_line(held: dict[str, Any]) -> str:
    """The oldest running transaction id of the cluster: what the sync waits for (any database)."""
    where = "this database" if held.get("this_database") else f"database {held.get('database')!r}"
    who = f"pid {held['pid']}" if held.get("pid") is not None else "a prepared transaction"
    return f"horizon held by: {who} in {where}, {held.get('xid_age')} transactions old, open {held.get('xact_age_s')} s"


@click.group("sync")
def sync_group() -> None:
    """Redis sync: tracked tables, lag and backlog."""


@sync_group.command("status")
@dsn_option
@json_option
def status_command(dsn: str, as_json: bool) -> None:
    """Show lag, backlog, last error and tracked tables."""
    emit(fetch_sync_status(dsn), as_json, render_sync_status)


@sync_group.command("backfill")
@click.argument("table_name", metavar="TABLE")
@dsn_option
@json_option
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the daemon has copied the table.")
@click.option("--timeout", type=number(0, 86_400), default=600.0, show_default=True, help="Seconds to wait.")
def backfill_command(table_name: str, dsn: str, as_json: bool, wait: bool, timeout: float) -> None:
    """Re-copy TABLE into Redis (done by the running daemon, consistent with concurrent writes)."""
    with connect(dsn) as conn:
        rel = lookup_relation(conn, table_name)
        if rel is None:
            raise AsymmError(f"table {table_name!r} does not exist")
        conn.execute("SELECT asymm.sync_backfill(%s::text::regclass)", (rel,))
        state = "pending"
        deadline = time.monotonic() + timeout
        while wait and state != "done":
            if time.monotonic() > deadline:
                raise AsymmError(
                    f"backfill of {table_name} not finished after {timeout:g} s (is the daemon running"
                    " with --redis-url?)"
                )
            time.sleep(0.2)
            row = conn.execute(
                "SELECT backfill_state, rows_backfilled FROM asymm.sync_tables WHERE rel = %s::text::regclass", (rel,)
            ).fetchone()
            assert row is not None
            state = str(row[0])
        row = conn.execute(
            "SELECT backfill_state, rows_backfilled FROM asymm.sync_tables WHERE rel = %s::text::regclass", (rel,)
        ).fetchone()
    assert row is not None
    result = {"table": table_name, "backfill": row[0], "rows_backfilled": row[1] if row[0] == "done" else None}
    emit(
        result,
        as_json,
        lambda r: (
            f"{r['table']}: backfill {r['backfill']}"
            + (f", {r['rows_backfilled']} rows" if r["rows_backfilled"] is not None else "")
        ),
    )
