"""``asymm demo``: build the demo shop, run a workload and the daemon, print what asymm sees."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from asymm.cli.common import dsn_option, table
from asymm.cli.status_cmd import fetch_status, render_status
from asymm.daemon.service import Daemon, DaemonConfig
from asymm.db import connect
from asymm.demo import setup, workload


class Progress:
    """Numbered steps with their duration, on stderr so stdout stays the report."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.number = 0

    @contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        self.number += 1
        started = time.monotonic()
        click.echo(f"[{self.number}/{self.total}] {title} ...", err=True)
        notes: list[str] = []
        yield notes.append
        detail = f" ({'; '.join(notes)})" if notes else ""
        click.echo(f"[{self.number}/{self.total}] {title}: done in {time.monotonic() - started:.1f} s{detail}",
                   err=True)
        sys.stderr.flush()


def top_statements(dsn: str, limit: int = 8) -> list[dict[str, Any]]:
    """The heaviest statements of the demo workload, as pg_stat_statements saw them."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT s.calls, round(s.mean_exec_time::numeric, 3) AS mean_ms,"
            "       round(s.total_exec_time::numeric, 1) AS total_ms,"
            "       left(regexp_replace(s.query, '\\s+', ' ', 'g'), 70) AS query"
            "  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = current_database() AND s.query !~* 'asymm\\.|pg_stat_statements'"
            " ORDER BY s.total_exec_time DESC LIMIT %s", (limit,)).fetchall()
    return [dict(zip(("calls", "mean_ms", "total_ms", "query"), row, strict=True)) for row in rows]


@click.command("demo")
@dsn_option
@click.option("--scale", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Data size: 1 is 20k customers, 100k orders, about 250k order lines.")
@click.option("--seconds", type=click.FloatRange(1, 3600), default=10, show_default=True,
              help="How long the workload runs.")
def demo_command(dsn: str, scale: int, seconds: float) -> None:
    """Create the demo shop database next to DSN's database and show what asymm sees."""
    progress = Progress(total=5)
    with progress.step(f"creating database {setup.DEMO_DB}") as note:
        demo_dsn = setup.recreate_database(dsn)
        note(demo_dsn)
    with progress.step("loading the shop schema and data") as note:
        sizes = setup.load_schema(demo_dsn, scale)
        note(", ".join(f"{name} {count:,}" for name, count in sizes.items()))
    with progress.step("installing the asymm extension") as note:
        setup.install_extension(demo_dsn)
        with connect(demo_dsn) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
        note("CREATE EXTENSION asymm CASCADE")
    with progress.step(f"running the shop workload for {seconds:g} s") as note:
        result = workload.run(demo_dsn, sizes, seconds)
        note(f"{result.statements:,} statements, {result.statements / result.seconds:,.0f}/s, "
             f"{result.errors} errors")
    with progress.step("running the asymm daemon for 25 pulses") as note:
        daemon = Daemon(DaemonConfig(dsn=demo_dsn, max_ticks=25))
        daemon.run()
        note(f"{daemon.pulse.stats.ticks} ticks, {daemon.pulse.stats.skipped} skipped, "
             f"{daemon.scheduler.overruns} overruns")
    click.echo("What asymm sees")
    click.echo("===============")
    click.echo(render_status(fetch_status(demo_dsn)))
    click.echo("\nHeaviest statements of the workload (pg_stat_statements):")
    click.echo(table(top_statements(demo_dsn), ["calls", "mean_ms", "total_ms", "query"]))
    click.echo(f"\nExplore: psql '{demo_dsn}'")
