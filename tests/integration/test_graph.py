"""The semantic data graph and impact analysis against a real database."""

from __future__ import annotations

import json

import psycopg
from click.testing import CliRunner

from asymm import graph
from asymm.cli import main
from asymm.db import connect

SCHEMA = """
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id int PRIMARY KEY, email text NOT NULL, secret text);
CREATE TABLE shop.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES shop.customers,
                          status text NOT NULL, total int NOT NULL DEFAULT 0);
CREATE INDEX orders_status ON shop.orders (status);
CREATE INDEX customers_lower_email ON shop.customers (lower(email));
CREATE VIEW shop.open_orders AS SELECT id, customer_id FROM shop.orders WHERE status = 'new';
CREATE VIEW shop.open_order_count AS SELECT count(*) AS n FROM shop.open_orders;
CREATE VIEW shop.order_totals AS SELECT customer_id, sum(total) AS total FROM shop.orders GROUP BY customer_id;
"""


def _setup(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("SELECT asymm.track('shop.customers', '{secret}')")
        conn.execute(
            "SELECT asymm.annotate('shop.orders', 'status', 'orderState', 'local', 'Stabilization', 'O(1)', '{}')"
        )
    # Workload statements through an observed connection so that pg_stat_statements keeps them.
    with connect(dsn, observed=True) as conn:
        conn.execute("INSERT INTO shop.customers VALUES (1, 'a@example.com', 's')")
        conn.execute("INSERT INTO shop.orders (id, customer_id, status) VALUES (1, 1, 'new')")
        conn.execute(
            "SELECT o.id, c.email FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id WHERE o.status = %s",
            ("new",),
        )
        conn.execute("UPDATE shop.orders SET total = 5 WHERE id = %s", (1,))
        conn.execute("SELECT n FROM shop.open_order_count")


def test_graph_nodes_and_edges(db: str) -> None:
    _setup(db)
    result = CliRunner().invoke(main, ["graph", "--dsn", db, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    ids = {n["id"]: n for n in data["nodes"]}
    for expected in (
        "table:shop.customers",
        "table:shop.orders",
        "view:shop.open_orders",
        "view:shop.open_order_count",
        "index:shop.orders_status",
        "index:shop.customers_pkey",
        "cache:shop.customers",
    ):
        assert expected in ids, expected
    assert not any(i.startswith(("table:asymm.", "view:asymm.", "view:public.pg_stat")) for i in ids)
    edges = {(e["source"], e["target"], e["kind"]): e["columns"] for e in data["edges"]}
    assert edges[("table:shop.orders", "table:shop.customers", "foreign_key")] == ["customer_id->id"]
    assert set(edges[("view:shop.open_orders", "table:shop.orders", "view_depends")]) == {"id", "customer_id", "status"}
    assert ("view:shop.open_order_count", "view:shop.open_orders", "view_depends") in edges
    assert edges[("index:shop.orders_status", "table:shop.orders", "index_of")] == ["status"]
    assert edges[("index:shop.customers_lower_email", "table:shop.customers", "index_of")] == ["email"]
    assert edges[("table:shop.customers", "cache:shop.customers", "synced_to")] == ["id"]
    queries = {n["id"]: n for n in data["nodes"] if n["kind"] == "query"}
    join = next(q for q in queries.values() if "JOIN" in q["query"])
    assert edges[(join["id"], "table:shop.orders", "reads")] == ["customer_id", "id", "status"]
    assert edges[(join["id"], "table:shop.customers", "reads")] == ["email", "id"]
    update = next(q for q in queries.values() if q["query"].startswith("UPDATE"))
    assert (update["id"], "table:shop.orders", "writes") in edges
    assert (update["id"], "table:shop.orders", "reads") not in edges
    insert = next(q for q in queries.values() if q["query"].startswith("INSERT INTO shop.orders"))
    assert edges[(insert["id"], "table:shop.orders", "writes")] == ["customer_id", "id", "status"]

    dot = CliRunner().invoke(main, ["graph", "--dsn", db, "--format", "dot"])
    assert dot.exit_code == 0
    assert dot.output.startswith("digraph asymm {")
    assert '"table:shop.orders" -> "table:shop.customers"' in dot.output


def test_impact_of_a_column_and_a_table(db: str) -> None:
    _setup(db)
    result = CliRunner().invoke(main, ["impact", "--dsn", db, "--json", "orders.status"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["object"] == "shop.orders.status" and data["kind"] == "column"
    # open_orders filters on status; open_order_count reads open_orders; order_totals does not use status.
    assert [v["view"] for v in data["views"]] == ["shop.open_order_count", "shop.open_orders"]
    assert [i["index"] for i in data["indexes"]] == ["shop.orders_status"]
    texts = [q["query"] for q in data["queries"]]
    assert any("JOIN" in t for t in texts)  # reads status
    assert any("open_order_count" in t for t in texts)  # through the views
    assert not any(t.startswith("UPDATE") for t in texts)  # only touches total and id
    assert [a["symbol"] for a in data["annotations"]] == ["orderState"]
    assert data["cache"] == [] and data["foreign_keys"] == []

    with psycopg.connect(db, autocommit=True) as conn:
        g = graph.build(conn)
        whole = graph.impact(conn, g, "shop.customers")
        email = graph.impact(conn, g, "shop.customers.email")
        secret = graph.impact(conn, g, "customers.secret")
    assert whole["cache"] == [{"keyspace": "asymm:{shop.customers}", "table": "shop.customers", "key": ["id"]}]
    assert whole["foreign_keys"] == [{"from": "shop.orders", "to": "shop.customers", "columns": ["customer_id->id"]}]
    assert {i["index"] for i in whole["indexes"]} == {"shop.customers_pkey", "shop.customers_lower_email"}
    assert email["cache"] and [i["index"] for i in email["indexes"]] == ["shop.customers_lower_email"]
    assert secret["cache"] == []  # sensitive columns never reach Redis

    text = CliRunner().invoke(main, ["impact", "--dsn", db, "orders"])
    assert text.exit_code == 0 and "impact of table shop.orders" in text.output
    missing = CliRunner().invoke(main, ["impact", "--dsn", db, "orders.nope"])
    assert missing.exit_code == 1 and "no table, view or column" in missing.output
