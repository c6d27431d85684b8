"""The ``asymm`` command line.  Each area lives in its own module and is registered here."""

from __future__ import annotations

import logging

import click

from asymm import __version__
from asymm.cli.advisor_cmd import advise_command, verify_command
from asymm.cli.annotations_cmd import annotate_command, annotations_command, coherence_command
from asymm.cli.daemon_cmd import daemon_command
from asymm.cli.drift_cmd import baseline_command, drift_command
from asymm.cli.graph_cmd import graph_command, impact_command
from asymm.cli.lazy import LazyGroup
from asymm.cli.status_cmd import status_command
from asymm.cli.sync_cmd import sync_group
from asymm.cli.telemetry_cmd import duplicates_command, health_command, top_command

# Developer tooling (asymm.dev) builds on the CLI, so it is loaded by name when used (see asymm.cli.lazy).
DEV_COMMANDS = {
    "sandbox": "asymm.dev.sandbox.command:sandbox_group",
    "demo": "asymm.dev.demo.command:demo_command",
}


@click.group(cls=LazyGroup, lazy_commands=DEV_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="asymm")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
def main(verbose: int) -> None:
    """asymm: a self-tuning companion for PostgreSQL."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


main.add_command(status_command)
main.add_command(daemon_command)
main.add_command(top_command)
main.add_command(health_command)
main.add_command(duplicates_command)
main.add_command(baseline_command)
main.add_command(drift_command)
main.add_command(annotate_command)
main.add_command(annotations_command)
main.add_command(coherence_command)
main.add_command(sync_group)
main.add_command(advise_command)
main.add_command(verify_command)
main.add_command(graph_command)
main.add_command(impact_command)
