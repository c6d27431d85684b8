"""``asymm daemon``: run the pulse loop in the foreground (systemd runs it this way).

Configuration comes from defaults, then the TOML file, then ``ASYMM_*`` variables, then these
flags (:mod:`asymm.daemon.config`); flags default to "not given" so that only typed ones override.
Why no ``--http-token`` flag: a command line is visible to every local user (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import click

from asymm.app import make_daemon
from asymm.cli.common import number, whole
from asymm.daemon import config as config_mod
from asymm.redact import RedactingFilter


class ConfigFailure(click.ClickException):
    """A configuration error: ``Error: <message>`` with exit code 2 (a usage error)."""

    exit_code = 2


def _render(loaded: config_mod.LoadedConfig) -> str:
    view = config_mod.public_view(loaded.config)
    width = max(len(name) for name in view)
    lines = [f"# effective asymm daemon configuration (file: {loaded.file or 'none'})"]
    for name, value in view.items():
        lines.append(f"{name:<{width}} = {json.dumps(value)}  # {loaded.sources[name]}")
    return "\n".join(lines)


@click.command("daemon")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration file (default: $ASYMM_CONFIG, else none).",
)
@click.option("--dsn", default=None, help="libpq connection string or URI (also ASYMM_DSN; empty uses PG* variables).")
@click.option(
    "--redis-url", default=None, help="Redis to keep in sync, e.g. redis://127.0.0.1:6379/0 (ASYMM_REDIS_URL)."
)
@click.option(
    "--period", type=number(0.001, 3600), default=None, help="Pulse period in seconds [default: 0.2037, i.e. 4.909 Hz]."
)
@click.option(
    "--ticks",
    "max_ticks",
    type=whole(1, 2**62),
    default=None,
    help="Stop after this many ticks (default: run until SIGTERM/SIGINT).",
)
@click.option("--http-host", default=None, help="Address of the metrics/health/API server [default: 127.0.0.1].")
@click.option(
    "--http-port",
    type=whole(0, 65535),
    default=None,
    help=f"Port of the metrics/health/API server; 0 disables it [default: {config_mod.DEFAULT_HTTP_PORT}].",
)
@click.option(
    "--http-allowed-hosts",
    default=None,
    help="Comma-separated Host names the HTTP server answers (host or host:port) [default: localhost,127.0.0.1,[::1]].",
)
@click.option(
    "--http-allow-remote",
    is_flag=True,
    default=None,
    help="Allow a non-loopback --http-host (needs a token: --http-token-file or ASYMM_HTTP_TOKEN).",
)
@click.option(
    "--http-token-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File holding the bearer token required by /api (and by /metrics off loopback) "
    "[default: a generated one, written to $RUNTIME_DIRECTORY or $XDG_RUNTIME_DIR/asymm].",
)
@click.option("--log-level", type=click.Choice(config_mod.LOG_LEVELS), default=None, help="[default: info]")
@click.option(
    "--check-config",
    is_flag=True,
    help="Print the effective configuration and its sources, then exit (0 valid, 2 invalid).",
)
@click.option("--json", "as_json", is_flag=True, help="With --check-config: print it as one JSON document.")
def daemon_command(config_file: str | None, check_config: bool, as_json: bool, **flags: Any) -> None:
    """Run the asymm daemon in the foreground until SIGTERM or SIGINT (SIGHUP reloads the configuration)."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        loaded = config_mod.load(config_file, flags=given)
    except config_mod.ConfigError as exc:
        raise ConfigFailure(str(exc)) from None
    if check_config:
        if not config_mod.is_loopback(loaded.config.http_host) and loaded.config.http_port:
            click.echo(
                f"warning: the HTTP server listens on {loaded.config.http_host or 'all addresses'}, "
                "reachable from other hosts; /api and /metrics need the bearer token",
                err=True,
            )
        if loaded.config.http_auth == "none" and loaded.config.http_port:
            click.echo(
                "warning: http.auth = none: /api is open to every local user (statement texts of every "
                "role, the DDL log, table names)",
                err=True,
            )
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "config": config_mod.public_view(loaded.config),
                        "sources": loaded.sources,
                        "file": str(loaded.file) if loaded.file else None,
                    },
                    indent=2,
                    sort_keys=True,
                )
            )
        else:
            click.echo(_render(loaded))
        return
    logging.getLogger("asymm").setLevel(loaded.config.log_level.upper())
    daemon = make_daemon(dataclasses.replace(loaded.config), loaded=loaded, flags=given)
    redacting = RedactingFilter(lambda: config_mod.secrets(daemon.config))
    for handler in logging.getLogger().handlers:
        handler.addFilter(redacting)
    daemon.install_signal_handlers()
    try:
        daemon.run()
    except config_mod.ConfigError as exc:  # the token directory was refused: nothing written or connected
        raise ConfigFailure(str(exc)) from None
