"""``asymm annotate``, ``asymm annotations`` and ``asymm coherence``: annotations from the shell."""

from __future__ import annotations

import json
from typing import Any

import click

from asymm.annotations import api
from asymm.cli.common import BIGINT, dsn_option, emit, json_option, table
from asymm.db import connect

REGIMES = ["Exploration", "Optimization", "Stabilization", "Balance"]
SCOPES = ["local", "schema", "global"]
COSTS = ["O(1)", "O(log n)", "O(n)", "O(n log n)", "O(n^2)"]


def _lineage(value: str) -> list[str]:
    return [word.strip() for word in value.split(",") if word.strip()]


def _render_rows(rows: list[dict[str, Any]]) -> str:
    shown = [
        {
            **row,
            "lineage": ",".join(row["lineage"] or []),
            "confidence": f"{row['confidence']:.2f}",
            "resolved": "yes" if row["resolved"] else "NO",
        }
        for row in rows
    ]
    return table(
        shown,
        ["target", "target_type", "resolved", "symbol", "scope", "regime", "cost", "lineage", "source", "confidence"],
    )


@click.command("annotate")
@click.argument("target", required=False)
@click.option("--symbol", required=True, help="σ: identifier-like name, e.g. dataEntity.")
@click.option("--scope", required=True, type=click.Choice(SCOPES), help="ρ scope.")
@click.option("--regime", required=True, type=click.Choice(REGIMES), help="γ regime.")
@click.option("--cost", required=True, type=click.Choice(COSTS), help="κ cost class.")
@click.option("--lineage", default="", help="λ: comma-separated lowercase operation words, e.g. create,query.")
@click.option("--column", help="Annotate this column of TARGET.")
@click.option("--query", "query", help="Annotate this query (SQL text) instead of TARGET.")
@click.option("--queryid", type=BIGINT, help="Annotate the pg_stat_statements query with this queryid.")
@dsn_option
@json_option
def annotate_command(
    target: str | None,
    symbol: str,
    scope: str,
    regime: str,
    cost: str,
    lineage: str,
    column: str | None,
    query: str | None,
    queryid: int | None,
    dsn: str,
    as_json: bool,
) -> None:
    """Annotate TARGET (a table, view, index or f(argtypes)), a column, or a query."""
    with connect(dsn) as conn:
        row = api.annotate(
            conn,
            target=target,
            symbol=symbol,
            scope=scope,
            regime=regime,
            cost=cost,
            lineage=_lineage(lineage),
            column=column,
            query=query,
            queryid=queryid,
        )
    emit(row, as_json, lambda r: _render_rows([r]))


@click.command("annotations")
@click.option("--export", "export", is_flag=True, help="Print every annotation as JSON for --import elsewhere.")
@click.option(
    "--import",
    "import_file",
    type=click.File("r"),
    help="Write back annotations exported with --export (a file, or - for stdin), all or none.",
)
@dsn_option
@json_option
def annotations_command(dsn: str, as_json: bool, export: bool, import_file: Any) -> None:
    """List every annotation (resolved = NO: its target is missing, e.g. after a partial restore).

    pg_dump --schema-only does not carry annotations: --export before, --import after."""
    if export and import_file is not None:
        raise click.UsageError("--export and --import go to two different databases: give one of them")
    if import_file is not None:
        try:
            data = json.load(import_file)
        except ValueError as exc:
            raise click.ClickException(f"{import_file.name} is not JSON: {exc}") from None
        with connect(dsn) as conn:
            count = api.import_annotations(conn, data)
        click.echo(f"imported {count} annotation(s)")
        return
    with connect(dsn) as conn:
        if export:
            click.echo(json.dumps(api.export_annotations(conn), indent=2, ensure_ascii=False))
            return
        rows = api.list_annotations(conn)
    emit(rows, as_json, _render_rows)


def _render_coherence(result: dict[str, Any]) -> str:
    score = "n/a (nothing evaluable)" if result["score"] is None else f"{result['score']} %"
    head = (
        f"coherence: {score} (goal > {result['goal']} %): {result['coherent']} coherent, "
        f"{result['incoherent']} incoherent, {result['not_evaluable']} not evaluable"
    )
    return head + "\n" + table(result["verdicts"], ["target", "source", "cost", "verdict", "reason"])


@click.command("coherence")
@dsn_option
@json_option
def coherence_command(dsn: str, as_json: bool) -> None:
    """Check every annotation against reality (Semantic Sonar) and print the score."""
    with connect(dsn) as conn:
        result = api.coherence(conn)
    emit(result, as_json, _render_coherence)
