"""Conventions shared by every ``asymm`` command.

Why shared: ``--dsn``/``ASYMM_DSN``, ``--json`` on stdout only, exit codes 0/1/2 (3 for "found
something"), one-line errors and range-checked numbers must be the same in every command
(listed in docs/architecture.md).
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click
import psycopg

from asymm.db import one_line
from asymm.errors import AsymmError, pg_error_line

F = TypeVar("F", bound=Callable[..., Any])


class OperationalFailure(click.ClickException):
    """Printed as ``Error: <message>`` with exit code 1."""

    exit_code = 1


class OneLineUsageError(click.UsageError):
    """A usage error printed as one line (click prints usage, a hint line and the error)."""

    def show(self, file: Any = None) -> None:
        where = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {one_line(self.format_message())}{where}", file=file or sys.stderr)


# A group run without a command raises this to show its help (exit 2): kept as click shows it.
NoArgsIsHelpError: type[click.UsageError] = getattr(click.exceptions, "NoArgsIsHelpError", OneLineUsageError)


def _one_line_usage(exc: click.UsageError) -> OneLineUsageError:
    return OneLineUsageError(exc.format_message(), exc.ctx)


class AsymmGroup(click.Group):
    """A click group that turns every failure into one line and the right exit code."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except (OneLineUsageError, NoArgsIsHelpError):
            raise
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (OneLineUsageError, NoArgsIsHelpError):
            raise
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except AsymmError as exc:
            raise OperationalFailure(one_line(str(exc))) from None
        except psycopg.Error as exc:
            raise OperationalFailure(f"PostgreSQL: {pg_error_line(exc)}") from None
        except OSError as exc:
            raise OperationalFailure(one_line(str(exc))) from None
        except Exception as exc:  # a bug: still one line, with a way to see more
            if os.environ.get("ASYMM_DEBUG"):
                traceback.print_exc()
            raise OperationalFailure(
                f"internal error: {type(exc).__name__}: {one_line(str(exc))} (ASYMM_DEBUG=1 shows the traceback)"
            ) from None


class FiniteFloatRange(click.FloatRange):
    """A float in a range that also refuses NaN and infinities (``float('nan')`` passes any range
    check, and an infinite budget or timeout is never what was meant)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def number(low: float, high: float) -> FiniteFloatRange:
    """A finite number from ``low`` to ``high`` inclusive (an option's type)."""
    return FiniteFloatRange(low, high)


class WholeRange(click.IntRange):
    name = "integer"


def whole(low: int, high: int) -> click.IntRange:
    """An integer from ``low`` to ``high`` inclusive: both bounds, so a huge value is a usage error
    rather than an overflow in PostgreSQL."""
    return WholeRange(low, high)


BIGINT = whole(-(2**63), 2**63 - 1)


def check_interval(conn: psycopg.Connection[Any], value: str, option: str) -> None:
    """A usage error unless ``value`` is a PostgreSQL interval of at least zero (the server parses it:
    its syntax is PostgreSQL's, not Python's)."""
    try:
        row = conn.execute("SELECT %s::text::interval >= interval '0'", (value,)).fetchone()
    except psycopg.DataError as exc:
        raise click.BadParameter(
            f"{value!r} is not a PostgreSQL interval ({pg_error_line(exc)})", param_hint=f"'{option}'"
        ) from None
    if not (row and row[0]):
        raise click.BadParameter(f"{value!r} is negative", param_hint=f"'{option}'")


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
