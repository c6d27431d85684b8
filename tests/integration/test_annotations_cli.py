"""``asymm annotate | annotations | coherence`` and ``asymm.infer()`` on a real workload."""

from __future__ import annotations

import json
import subprocess
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


# -- export / import (issue 19): what pg_dump --schema-only leaves behind ---------------------------


def test_annotations_cross_a_schema_only_copy_through_export_and_import(
    sandbox: Any, make_db: Any, tmp_path: Any
) -> None:
    source, target = make_db(), make_db(extension=False)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text)")
        conn.execute("SELECT asymm.annotate('items', 'dataEntity', 'schema', 'Balance', 'O(log n)', '{create}')")
        conn.execute(
            "SELECT asymm.annotate('items'::regclass, 'label', 'itemLabel', 'local', 'Stabilization', 'O(1)', '{}')"
        )
    exported = _run("annotations", "--export", "--dsn", source)
    assert exported.exit_code == 0, exported.output
    assert len(json.loads(exported.output)) == 2
    schema = subprocess.run(
        [sandbox.pg_bindir + "/pg_dump", "--schema-only", source], check=True, capture_output=True, text=True
    ).stdout
    subprocess.run(
        [sandbox.pg_bindir + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target],
        input=schema,
        check=True,
        capture_output=True,
        text=True,
    )
    with psycopg.connect(target, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM asymm.annotations").fetchone() == (0,), "schema-only loses them"
    path = tmp_path / "annotations.json"
    path.write_text(exported.output)
    imported = _run("annotations", "--import", str(path), "--dsn", target)
    assert imported.exit_code == 0 and "imported 2" in imported.output, imported.output
    with psycopg.connect(target, autocommit=True) as conn:
        rows = conn.execute("SELECT target, symbol, resolved FROM asymm.annotations ORDER BY symbol").fetchall()
    assert [(r[1], r[2]) for r in rows] == [("dataEntity", True), ("itemLabel", True)], rows
    assert [r[0].split(".", 1)[-1] if r[0].startswith("public.") else r[0] for r in rows] == ["items", "items.label"]


def test_a_bad_import_writes_nothing_and_says_why(db: str, conn: psycopg.Connection[Any], tmp_path: Any) -> None:
    conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
    good = {
        "target_type": "table",
        "target_names": ["public", "items"],
        "symbol": "dataEntity",
        "scope": "schema",
        "regime": "Balance",
        "cost": "O(1)",
    }
    for payload, expected in [
        ('{"not": "an array"}', "expects a JSON array"),
        (json.dumps([good, {**good, "symbol": "no spaces allowed", "target_names": ["public", "other"]}]), "symbol"),
        (json.dumps([good, {"symbol": "x"}]), "not an exported annotation"),
        ("not json", "is not JSON"),
    ]:
        path = tmp_path / "bad.json"
        path.write_text(payload)
        result = CliRunner().invoke(main, ["annotations", "--import", str(path), "--dsn", db])
        assert result.exit_code != 0 and expected in result.output, (payload, result.output)
        assert "Traceback" not in result.output
        assert conn.execute("SELECT count(*) FROM asymm.annotation_entries").fetchone() == (0,), payload


def test_reconciliation_repairs_the_address_of_a_rename_the_event_triggers_missed(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
    conn.execute("SELECT asymm.annotate('items', 'dataEntity', 'schema', 'Balance', 'O(1)', '{}')")
    conn.execute("SET session_replication_role = replica")  # event triggers do not fire
    conn.execute("ALTER TABLE items RENAME TO goods")
    conn.execute("RESET session_replication_role")
    stored = "SELECT target_names FROM asymm.annotation_entries"
    assert conn.execute(stored).fetchone() == (["public", "items"],), "the address went stale"
    conn.execute("SELECT asymm.drift_reconcile()")
    assert conn.execute(stored).fetchone() == (["public", "goods"],)
