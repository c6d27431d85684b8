"""A command group that imports some of its commands only when they are used or listed.

Why: the developer tooling (``asymm sandbox``, ``asymm demo`` in :mod:`asymm.dev`) builds on the
CLI's helpers, so the CLI must not import it at import time (that would be a cycle, and would load
the demo for every ``asymm status``).  The group names them by ``module:attribute`` instead.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from asymm.cli.common import AsymmGroup


class LazyGroup(AsymmGroup):
    """:class:`AsymmGroup` plus ``lazy_commands``: name -> ``"package.module:attribute"`` of a click command."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            self.add_command(_load(self.lazy_commands[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)


def _load(target: str) -> click.Command:
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command
