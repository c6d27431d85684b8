"""``asymm annotate | annotations | coherence`` and ``asymm.infer()`` on a real workload."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from click.testing import CliRunner

from asymm.cli import main
from asymm.db import connect


def _run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_cli_annotate_list_and_coherence(db: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text)")
    out = _run(
        "annotate",
        "items",
        "--symbol",
        "dataEntity",
        "--scope",
        "schema",
        "--regime",
        "Balance",
        "--cost",
        "O(log n)",
        "--lineage",
        "create,query",
        "--dsn",
        db,
        "--json",
    )
    assert out.exit_code == 0, out.output
    row = json.loads(out.output)
    assert (row["target"], row["lineage"], row["source"]) == ("public.items", ["create", "query"], "user")
    out = _run(
        "annotate",
        "items",
        "--column",
        "label",
        "--symbol",
        "itemLabel",
        "--scope",
        "local",
        "--regime",
        "Stabilization",
        "--cost",
        "O(1)",
        "--dsn",
        db,
    )
    assert out.exit_code == 0 and "public.items.label" in out.output
    out = _run(
        "annotate",
        "--query",
        "SELECT label FROM items WHERE id = 3",
        "--symbol",
        "byId",
        "--scope",
        "local",
        "--regime",
        "Balance",
        "--cost",
        "O(log n)",
        "--lineage",
        "query",
        "--dsn",
        db,
    )
    assert out.exit_code == 0, out.output
    bad = _run(
        "annotate",
        "items",
        "--symbol",
        "x",
        "--scope",
        "local",
        "--regime",
        "Balance",
        "--cost",
        "O(n)",
        "--lineage",
        "create,create",
        "--dsn",
        db,
    )
    assert bad.exit_code == 1 and "lineage" in bad.output and "Traceback" not in bad.output
    two = _run(
        "annotate",
        "--query",
        "SELECT 1; SELECT 2",
        "--symbol",
        "x",
        "--scope",
        "local",
        "--regime",
        "Balance",
        "--cost",
        "O(1)",
        "--dsn",
        db,
    )
    assert two.exit_code == 1 and "exactly one" in two.output
    listed = json.loads(_run("annotations", "--dsn", db, "--json").output)
    assert {"public.items", "public.items.label"} <= {r["target"] for r in listed}
    assert len(listed) == 3 and all(r["resolved"] for r in listed)
    human = _run("annotations", "--dsn", db)
    assert human.exit_code == 0 and "itemLabel" in human.output
    score = json.loads(_run("coherence", "--dsn", db, "--json").output)
    assert score["total"] == 3 and {v["verdict"] for v in score["verdicts"]} <= {
        "coherent",
        "incoherent",
        "not evaluable",
    }
    assert _run("coherence", "--dsn", db).output.startswith("coherence: ")


def test_infer_annotates_unannotated_tables_and_frequent_queries(db: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE events (id int PRIMARY KEY, kind text)")
    conn.execute("CREATE TABLE mine (id int PRIMARY KEY)")
    conn.execute("SELECT asymm.annotate('mine', 'myEntity', 'global', 'Exploration', 'O(1)', '{sync}')")
    conn.execute("SELECT pg_stat_statements_reset()")
    with connect(db, observed=True) as work:
        work.execute("INSERT INTO events SELECT g, 'k' || g % 5 FROM generate_series(1, 2000) g")
        work.execute("ANALYZE events")
        for i in range(5):
            work.execute("SELECT kind FROM events WHERE id = %s", (i,))
            work.execute("UPDATE events SET kind = 'z' WHERE id = %s", (i,))
        work.execute("DELETE FROM events WHERE id = 1")
        work.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT pg_stat_force_next_flush()")
    inferred = {r[0]: r for r in conn.execute("SELECT target, target_type, cost, lineage FROM asymm.infer()")}
    assert "public.mine" not in inferred, "a user annotation is never overwritten"
    assert inferred["public.events"][2:] == ("O(log n)", ["create", "query", "update", "delete"])
    queries = {(r[2], tuple(r[3])) for r in inferred.values() if r[1] == "query"}
    assert ("O(log n)", ("query",)) in queries and ("O(log n)", ("update",)) in queries
    assert conn.execute("SELECT source, symbol FROM asymm.annotations WHERE target = 'public.mine'").fetchone() == (
        "user",
        "myEntity",
    )
    # a second run adds evidence and strengthens confidence instead of duplicating
    conn.execute("SELECT * FROM asymm.infer()")
    row = conn.execute(
        "SELECT evidence, round(confidence::numeric, 2) FROM asymm.annotations WHERE target = 'public.events'"
    ).fetchone()
    assert row is not None and row[0] == 2 and float(row[1]) == 0.51
    verdicts = {
        r[0]: r[1]
        for r in conn.execute("SELECT target, verdict FROM asymm.coherence_verdicts() WHERE source = 'inferred'")
    }
    assert verdicts["public.events"] == "coherent"
