"""``asymm status``: what the extension sees in one database."""

from __future__ import annotations

from typing import Any

import click

from asymm.cli.common import dsn_option, emit, json_option
from asymm.db import connect, require_extension


def fetch_status(dsn: str) -> dict[str, Any]:
    """``asymm.status()`` of the database, or a clear error if the extension is missing."""
    with connect(dsn) as conn:
        require_extension(conn)
        row = conn.execute("SELECT asymm.status()").fetchone()
    assert row is not None
    status: dict[str, Any] = row[0]  # type: ignore[assignment]
    return status


def render_status(status: dict[str, Any]) -> str:
    yes_no = {True: "yes", False: "no"}
    lines = [
        f"asymm {status['version']} on PostgreSQL {status['server_version']} (PL/Python {status['plpython']})",
        f"pg_stat_statements preloaded: {yes_no[status['pg_stat_statements_loaded']]}",
        f"HypoPG available: {yes_no[status['hypopg_available']]}, installed: {yes_no[status['hypopg_installed']]}",
        f"settings changed from default: {status['settings_changed']}",
    ]
    daemons = status.get("daemons", [])
    if daemons:
        for daemon in daemons:
            role = "leader" if daemon.get("leader") else "standby"
            lines.append(
                f"daemon {daemon['host']}:{daemon['pid']} ({role}) up since {daemon['started_at']}, "
                f"{daemon['ticks']} ticks, {daemon['skipped_ticks']} skipped, {daemon['overruns']} overruns"
            )
    else:
        lines.append("daemon: none running")
    leader = status.get("leader")
    if leader is None:
        if daemons:
            lines.append("leader: none (no daemon holds the leader lock: scheduled work is not running)")
    elif leader.get("daemon_id") is None:
        lines.append(
            f"leader: the leader lock is held by backend {leader['backend_pid']}, which is not a registered daemon"
        )
    return "\n".join(lines)


@click.command("status")
@dsn_option
@json_option
def status_command(dsn: str, as_json: bool) -> None:
    """Show versions, prerequisites and running daemons."""
    emit(fetch_status(dsn), as_json, render_status)
