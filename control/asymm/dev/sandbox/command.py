"""``asymm sandbox``: throwaway PostgreSQL + Redis for tests, benchmarks and the demo."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from asymm.cli.common import emit, json_option
from asymm.dev import sandbox

dir_option = click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Sandbox directory, created 0700 and refused if another user could have made or changed it "
    "[default: $ASYMM_SANDBOX_DIR or /tmp/asymm-sandbox-UID].",
)


def _render_env(env: dict[str, str]) -> str:
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.items())


@click.group("sandbox")
def sandbox_group() -> None:
    """Start, inspect and stop a throwaway PostgreSQL 15 cluster and Redis server."""


@sandbox_group.command("up")
@dir_option
@click.option(
    "--preload",
    "preload",
    multiple=True,
    metavar="LIBRARY",
    help="Also put LIBRARY in shared_preload_libraries (repeatable; e.g. pg_qualstats for bench/advisor.py). "
    "A plain name whose .so is in pg_config --pkglibdir.",
)
@click.option(
    "--shared-buffers",
    default=None,
    metavar="SIZE",
    help="shared_buffers for the new cluster, e.g. 2GB [default: 256MB].",
)
@json_option
def sandbox_up(root: Path | None, preload: tuple[str, ...], shared_buffers: str | None, as_json: bool) -> None:
    """Start the sandbox (or reuse a running one started with the same options) and print its environment."""
    box = sandbox.up(root, sandbox.server_options(preload, shared_buffers))
    emit(box.env(), as_json, _render_env)


@sandbox_group.command("env")
@dir_option
@click.option(
    "--dbname",
    default="postgres",
    show_default=True,
    help="The database that PGDATABASE and ASYMM_DSN name (the demo's is asymm_demo).",
)
@json_option
def sandbox_env(root: Path | None, dbname: str, as_json: bool) -> None:
    """Print the environment variables that point at a running sandbox (eval-able)."""
    emit(sandbox.load(root).env(dbname), as_json, _render_env)


@sandbox_group.command("down")
@dir_option
@json_option
def sandbox_down(root: Path | None, as_json: bool) -> None:
    """Stop the sandbox's servers and remove its directory."""
    stopped = sandbox.down(root)
    result: dict[str, Any] = {"stopped": stopped}

    def render(data: dict[str, Any]) -> str:
        return "sandbox stopped" if data["stopped"] else "no sandbox was running there"

    emit(result, as_json, render)
