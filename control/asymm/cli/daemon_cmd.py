"""``asymm daemon``: run the pulse loop in the foreground (systemd runs it this way)."""

from __future__ import annotations

import logging

import click

from asymm.cli.common import dsn_option
from asymm.daemon.pulse import DEFAULT_PERIOD_S
from asymm.daemon.service import Daemon, DaemonConfig


@click.command("daemon")
@dsn_option
@click.option("--redis-url", envvar="ASYMM_REDIS_URL", default=None, show_envvar=True,
              help="Redis to keep in sync, e.g. redis://127.0.0.1:6379/0.")
@click.option("--period", type=click.FloatRange(min=0.001, max=3600), default=DEFAULT_PERIOD_S,
              show_default=True, help="Pulse period in seconds (0.2037 s is 4.909 Hz).")
@click.option("--ticks", "max_ticks", type=click.IntRange(min=1), default=None,
              help="Stop after this many ticks (default: run until SIGTERM/SIGINT).")
def daemon_command(dsn: str, redis_url: str | None, period: float, max_ticks: int | None) -> None:
    """Run the asymm daemon in the foreground until SIGTERM or SIGINT."""
    logging.getLogger("asymm").setLevel(min(logging.getLogger("asymm").getEffectiveLevel(), logging.INFO))
    daemon = Daemon(DaemonConfig(dsn=dsn, redis_url=redis_url, period=period, max_ticks=max_ticks))
    daemon.install_signal_handlers()
    daemon.run()
