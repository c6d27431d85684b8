"""``asymm baseline`` and ``asymm drift``: schema baselines, drift reports and migration plans.

``asymm drift`` exits with code 3 when drift exists so that CI jobs can fail on it.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from asymm import drift
from asymm.cli.common import dsn_option, emit, json_option, table
from asymm.db import connect
from asymm.errors import AsymmError

DRIFT_EXIT = 3


@click.command("baseline")
@click.argument("name")
@click.option("--schema", "schemas", multiple=True, help="Limit the baseline to these schemas (repeatable).")
@dsn_option
@json_option
def baseline_command(name: str, schemas: tuple[str, ...], dsn: str, as_json: bool) -> None:
    """Capture (or move) the schema baseline NAME."""
    with connect(dsn) as conn:
        count = drift.capture_baseline(conn, name, list(schemas) or None)
    emit(
        {"baseline": name, "objects": count, "schemas": list(schemas) or None},
        as_json,
        lambda d: f"baseline {d['baseline']}: {d['objects']} objects captured",
    )


def _render_items(items: list[dict[str, Any]]) -> str:
    rows = [
        {
            **i,
            "hazards": ", ".join(i["hazards"]),
            "who": i["who"] or "",
            "property": i["property"] or "",
            "when": i["changed_at"].strftime("%Y-%m-%d %H:%M:%S") if i["changed_at"] else "",
        }
        for i in items
    ]
    if not rows:
        return "no drift"
    return table(
        rows,
        ["baseline", "kind", "object_type", "identity", "property", "severity", "hazards", "who", "when", "detection"],
    )


@click.command("drift")
@click.argument("name", required=False)
@click.option("--sql", "as_sql", is_flag=True, help="Print a migration plan back to the baseline (validated first).")
@click.option("--accept", is_flag=True, help="Accept the current schema: move the baseline to it.")
@click.option("--no-validate", is_flag=True, help="With --sql: skip the validation on a scratch copy of the schema.")
@dsn_option
@json_option
def drift_command(name: str | None, as_sql: bool, accept: bool, no_validate: bool, dsn: str, as_json: bool) -> None:
    """Show drift from baseline NAME (every baseline when omitted); exit code 3 when there is drift."""
    if as_sql and accept:
        raise click.UsageError("--sql and --accept exclude each other")
    with connect(dsn) as conn:
        if accept:
            names = [name] if name else drift.baseline_names(conn)
            if not names:
                raise AsymmError("no baseline to accept (asymm baseline NAME captures one)")
            counts = {n: drift.accept(conn, n) for n in names}
            emit(
                {"accepted": counts},
                as_json,
                lambda d: "\n".join(
                    f"baseline {n} moved to the current schema ({c} objects)" for n, c in d["accepted"].items()
                ),
            )
            return
        items = drift.drift_items(conn, name)
        if as_sql:
            names = [name] if name else sorted({str(i["baseline"]) for i in items})
            timeout = drift.lock_timeout(conn)
            documents = []
            for n in names:
                steps = drift.plan(conn, n)
                validation = drift.validate_plan(conn, n, steps) if steps and not no_validate else None
                documents.append((n, steps, validation))
            if as_json:
                emit(
                    [
                        {
                            "baseline": n,
                            "lock_timeout": timeout,
                            "validated": None if v is None else v.ok,
                            "validation_error": None if v is None else v.error,
                            "remaining": [] if v is None else v.remaining,
                            "steps": [s.__dict__ for s in steps],
                        }
                        for n, steps, v in documents
                    ],
                    True,
                    str,
                )
            else:
                for n, steps, v in documents:
                    click.echo(f"-- baseline {n}")
                    click.echo(drift.render_sql(steps, timeout, v), nl=False)
            failed = [(n, v) for n, _s, v in documents if v is not None and not v.ok]
            if failed:
                n, v = failed[0]
                raise AsymmError(
                    f"the plan for baseline {n} failed validation on a scratch copy (step {v.failed_step}): {v.error}"
                )
        else:
            emit(items, as_json, _render_items)
    if items:
        sys.exit(DRIFT_EXIT)
