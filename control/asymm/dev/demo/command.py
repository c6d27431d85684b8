"""``asymm demo``: build the demo shop, run a workload and the daemon, print what asymm sees."""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from asymm import graph as graph_mod
from asymm.app import make_daemon
from asymm.cli.common import dsn_option, number, table
from asymm.cli.status_cmd import fetch_status, render_status
from asymm.daemon.config import DaemonConfig
from asymm.daemon.service import Daemon
from asymm.daemon.token import generate as generate_token
from asymm.db import connect
from asymm.dev.demo import indexes, logfile, setup, workload
from asymm.errors import AsymmError
from asymm.sync import api as sync_api
from asymm.sync.cache import Cache


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
        click.echo(
            f"[{self.number}/{self.total}] {title}: done in {time.monotonic() - started:.1f} s{detail}", err=True
        )
        sys.stderr.flush()


def top_statements(dsn: str, limit: int = 8) -> list[dict[str, Any]]:
    """The heaviest statements of the demo workload, as pg_stat_statements saw them."""
    with connect(dsn, pin=False) as conn:  # the demo database: pg_stat_statements is in public
        rows = conn.execute(
            "SELECT s.calls, round(s.mean_exec_time::numeric, 3) AS mean_ms,"
            "       round(s.total_exec_time::numeric, 1) AS total_ms,"
            "       left(regexp_replace(s.query, '\\s+', ' ', 'g'), 70) AS query"
            "  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = current_database() AND s.query !~* 'asymm\\.|pg_stat_statements'"
            " ORDER BY s.total_exec_time DESC LIMIT %s",
            (limit,),
        ).fetchall()
    return [dict(zip(("calls", "mean_ms", "total_ms", "query"), row, strict=True)) for row in rows]


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@click.command("demo")
@dsn_option
@click.option(
    "--redis-url",
    envvar="ASYMM_REDIS_URL",
    default="",
    show_envvar=True,
    help="Redis for the cache step (the sandbox's); empty skips it.",
)
@click.option(
    "--scale",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Data size: 1 is 20k customers, 100k orders, about 250k order lines.",
)
@click.option("--seconds", type=number(1, 3600), default=10, show_default=True, help="How long the workload runs.")
@click.option("--http-port", type=click.IntRange(0, 65535), default=0, help="Dashboard port (0: a free one).")
@click.option("--serve", is_flag=True, help="Keep the daemon and the dashboard serving until Ctrl-C.")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the daemon's log lines go during the demo [default: demo.log in $ASYMM_SANDBOX_DIR;"
    " without a sandbox: stderr].",
)
def demo_command(
    dsn: str, redis_url: str, scale: int, seconds: float, http_port: int, serve: bool, log_file: Path | None
) -> None:
    """Create the demo shop database next to DSN's database and show what asymm sees."""
    log = click.get_current_context().with_resource(logfile.routed_to(log_file or logfile.default_path()))
    progress = Progress(total=11)
    with progress.step(f"creating database {setup.DEMO_DB}") as note:
        demo_dsn = setup.recreate_database(dsn)
        note(demo_dsn)
    with progress.step("loading the shop schema and data") as note:
        sizes = setup.load_schema(demo_dsn, scale)
        note(", ".join(f"{name} {count:,}" for name, count in sizes.items()))
    with progress.step("installing the asymm extension, capturing schema baseline 'demo'") as note:
        setup.install_extension(demo_dsn)
        with connect(demo_dsn, pin=False) as conn:  # the shop's own names (public)
            conn.execute("SELECT pg_stat_statements_reset()")
            if redis_url:  # before the baseline: its capture triggers are part of the intended schema
                conn.execute("SELECT asymm.track('customers')")
            conn.execute("SELECT asymm.baseline('demo', ARRAY['public'])")
        note(
            "CREATE EXTENSION asymm CASCADE"
            + ("; asymm.track('customers')" if redis_url else "")
            + "; asymm.baseline('demo')"
        )
    with progress.step("starting the asymm daemon with the dashboard") as note:
        port = http_port or _free_port()
        token = generate_token()  # the API needs one (every local user reaches 127.0.0.1): in the URL's fragment
        daemon = make_daemon(DaemonConfig(dsn=demo_dsn, redis_url=redis_url or None, http_port=port, http_token=token))
        thread = threading.Thread(target=daemon.run, name="asymm-demo-daemon", daemon=True)
        thread.start()
        if not _wait(lambda: daemon.http is not None and daemon.ready, 20):
            raise AsymmError(f"the daemon did not start its HTTP server within 20 s (log: {log.describe()})")
        url = f"http://127.0.0.1:{daemon.http.address[1] if daemon.http else port}/#token={token}"
        note(url)
    try:
        with progress.step(f"running the shop workload for {seconds:g} s (the daemon samples it)") as note:
            result = workload.run(demo_dsn, sizes, seconds)
            note(
                f"{result.statements:,} statements, {result.statements / result.seconds:,.0f}/s, "
                f"{result.errors} errors; {daemon.pulse.stats.ticks} pulses so far"
            )
        advice: dict[str, Any] | None = None
        verdicts: dict[str, Any] = {}
        with progress.step("index advisor: suggest (HypoPG), apply with CREATE INDEX CONCURRENTLY") as note:
            try:
                advice = indexes.advise_and_apply(demo_dsn)
            except AsymmError as exc:
                note(f"skipped: {exc}")
            else:
                applied = sum(1 for i in advice["indexes"] if i.get("applied") == "yes")
                note(
                    f"{len(advice['indexes'])} index(es) chosen, {applied} built; {advice['planned']} of "
                    f"{advice['statements']} statements planned, {advice['whatif_calls']} what-if calls, "
                    f"{advice['runtime_s']:.1f} s"
                    + (
                        f"; {len(advice['unverified'])} GIN index(es) HypoPG cannot price left unverified"
                        if advice["unverified"]
                        else ""
                    )
                )
        if advice and any(i.get("applied") == "yes" for i in advice["indexes"]):
            with progress.step(f"re-running the workload for {seconds:g} s, then asymm verify") as note:
                again = workload.run(demo_dsn, sizes, seconds)
                verdicts = indexes.verify_applied(demo_dsn)
                tally: dict[str, int] = {}
                for item in verdicts["indexes"]:
                    tally[item["verdict"]] = tally.get(item["verdict"], 0) + 1
                note(
                    f"{again.statements:,} statements ({again.statements / again.seconds:,.0f}/s, before: "
                    f"{result.statements / result.seconds:,.0f}/s); verdicts: "
                    + ", ".join(f"{n} {v}" for v, n in sorted(tally.items()))
                )
        else:
            with progress.step("re-running the workload, then asymm verify") as note:
                note("skipped: no index was applied")
        with progress.step("Redis cache: a tracked table synced by the daemon, read through asymm.cache") as note:
            note(_cache_step(demo_dsn, redis_url, daemon) if redis_url else "skipped: no Redis URL (--redis-url)")
        with progress.step("schema drift: ALTER TABLE against baseline 'demo'") as note:
            with connect(demo_dsn, pin=False) as conn:  # the shop's own DDL
                conn.execute("ALTER TABLE orders ADD COLUMN gift_note text")
                drift_rows = conn.execute(
                    "SELECT kind, object_type, identity, severity FROM asymm.drift('demo') ORDER BY identity"
                ).fetchall()
            note(f"{len(drift_rows)} finding(s): " + "; ".join(f"{k} {t} {i} ({s})" for k, t, i, s in drift_rows))
        with progress.step("semantic data graph") as note:
            with connect(demo_dsn) as conn:
                counts = graph_mod.build(conn).as_dict()["counts"]
            note(
                ", ".join(f"{v} {k}" for k, v in sorted(counts["nodes"].items()))
                + "; edges "
                + ", ".join(f"{v} {k}" for k, v in sorted(counts["edges"].items()))
            )
        with progress.step("status") as note:
            status = fetch_status(demo_dsn)
            note(
                f"{daemon.pulse.stats.ticks} pulses, {daemon.pulse.stats.skipped} skipped, "
                f"{daemon.scheduler.overruns} overruns"
            )
        click.echo("What asymm sees")
        click.echo("===============")
        click.echo(render_status(status))
        if advice is not None:
            click.echo("\nIndex advisor: estimated by HypoPG, applied, measured by asymm verify:")
            click.echo(indexes_table(advice, verdicts))
        click.echo("\nHeaviest statements of the workload (pg_stat_statements):")
        click.echo(table(top_statements(demo_dsn), ["calls", "mean_ms", "total_ms", "query"]))
        click.echo(f"\nDashboard: {url}" + ("" if serve else " (served during the demo; `make demo-serve` keeps it)"))
        quoted = shlex.quote(demo_dsn)
        click.echo(
            f"Graph:     asymm graph --dsn {quoted} --format dot | dot -Tsvg > graph.svg"
            + ("" if shutil.which("dot") else "  (dot is Graphviz's: make deps installs it)")
        )
        click.echo(f"Impact:    asymm impact --dsn {quoted} orders.status")
        click.echo(f"Explore:   psql {quoted}")
        click.echo(f"Log:       {log.describe()}")
        if serve:
            click.echo("Serving the dashboard until Ctrl-C (or SIGTERM) ...")
            sys.stdout.flush()
            _serve_until_signal(daemon, thread)
    finally:
        daemon.stop_event.set()
        thread.join(15)
    if serve:
        click.echo(
            "stopped: the daemon left cleanly" if not thread.is_alive() else "the daemon did not stop within 15 s",
            err=True,
        )


def _serve_until_signal(daemon: Daemon, thread: threading.Thread) -> None:
    """Wait for the daemon thread until SIGINT or SIGTERM, then ask it to stop.

    Why explicit handlers: a shell starts background jobs with SIGINT ignored, and Python keeps an
    ignored SIGINT ignored, so ``make demo-serve &`` followed by ``kill -INT`` would never stop; and
    SIGTERM (what service managers and ``timeout`` send) would kill the process without the daemon
    unregistering.  Both now set the daemon's stop event; the ``finally`` above joins its thread.
    """
    received: list[str] = []

    def stop(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        daemon.stop_event.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while thread.is_alive() and not daemon.stop_event.is_set():
            thread.join(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        click.echo(f"received {received[0]}, stopping the daemon", err=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def indexes_table(advice: dict[str, Any], verdicts: dict[str, Any]) -> str:
    """The chosen indexes: estimated benefit (planner cost units), verdict, mean latency before → after."""
    if not advice["indexes"]:
        return "(no index worth its cost for this workload)"
    return (
        table(indexes.summary_rows(advice, verdicts), indexes.COLUMNS)
        + "\nbenefit: planner cost units saved (calls x cost) minus the write penalty;"
        " latency: mean of the index's statements"
    )


def _cache_step(dsn: str, redis_url: str, daemon: Daemon) -> str:
    with connect(dsn, pin=False) as conn:  # the shop's own statement
        conn.execute("UPDATE customers SET full_name = 'Ada Lovelace' WHERE customer_id = 1")

    def synced() -> bool:
        with connect(dsn) as conn:
            status = sync_api.status(conn)
        tables = status.get("tables") or []
        return bool(tables) and int(status.get("backlog_rows") or 0) == 0 and tables[0].get("backfill") == "done"

    if not _wait(synced, 30):
        return "the daemon did not sync within 30 s"
    cache = Cache(dsn, redis_url)
    try:
        row = cache.get("customers", 1)
        again = cache.get("customers", 1)
        lag = _sync_lag(dsn)
    finally:
        cache.close()
    name = (row or {}).get("full_name")
    return (
        f"customers row 1 from Redis: full_name={name!r} ({cache.stats.hits} hit(s), "
        f"{cache.stats.misses} miss(es)); sync lag {lag}; same row again: {again == row}"
    )


def _sync_lag(dsn: str) -> str:
    with connect(dsn) as conn:
        lag = sync_api.status(conn).get("lag_ms")
    return "n/a" if lag is None else f"{float(lag):.1f} ms"
