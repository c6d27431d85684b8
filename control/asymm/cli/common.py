"""Conventions shared by every ``asymm`` command.

* ``--dsn`` falls back to ``ASYMM_DSN`` and then to libpq's own ``PG*`` variables;
* ``--json`` prints one JSON document on stdout and nothing else there (logs go to stderr);
* exit codes: 0 ok, 1 operational error, 2 usage error (click's own), 3 reserved for "found
  something" answers such as drift;
* errors are one line on stderr, never a traceback (``ASYMM_DEBUG=1`` shows it).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click
import psycopg

from asymm.db import one_line
from asymm.errors import AsymmError

F = TypeVar("F", bound=Callable[..., Any])


class OperationalFailure(click.ClickException):
    """Printed as ``Error: <message>`` with exit code 1."""

    exit_code = 1


class AsymmGroup(click.Group):
    """A click group that turns every failure into one line and the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except AsymmError as exc:
            raise OperationalFailure(one_line(str(exc))) from None
        except psycopg.Error as exc:
            raise OperationalFailure(f"PostgreSQL: {one_line(str(exc))}") from None
        except OSError as exc:
            raise OperationalFailure(one_line(str(exc))) from None
        except Exception as exc:  # a bug: still one line, with a way to see more
            if os.environ.get("ASYMM_DEBUG"):
                traceback.print_exc()
            raise OperationalFailure(
                f"internal error: {type(exc).__name__}: {one_line(str(exc))} (ASYMM_DEBUG=1 shows the traceback)"
            ) from None


def dsn_option(func: F) -> F:
    return click.option(
        "--dsn",
        envvar="ASYMM_DSN",
        default="",
        show_envvar=True,
        help="libpq connection string or URI; empty uses PGHOST, PGPORT, PGUSER, PGDATABASE.",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(func)


def emit(data: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    """Print ``data`` as JSON or through ``render`` for people."""
    if as_json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        click.echo(render(data))


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table (no dependency, stable for tests and terminals)."""
    if not rows:
        return "(none)"
    cells = [[str(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(line[i]) for line in cells)) for i, col in enumerate(columns)]
    header = "  ".join(col.ljust(width) for col, width in zip(columns, widths, strict=True))
    rule = "  ".join("-" * width for width in widths)
    body = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]
    return "\n".join([header, rule, *body])
