"""Create and fill the demo database."""

from __future__ import annotations

import contextlib
from importlib.resources import files

import psycopg
from psycopg import sql

from asymm.db import connect, with_dbname

DEMO_DB = "asymm_demo"


def recreate_database(admin_dsn: str, dbname: str = DEMO_DB) -> str:
    """Drop and create the demo database; returns its DSN."""
    with connect(admin_dsn) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return with_dbname(admin_dsn, dbname)


def load_schema(dsn: str, scale: int = 1) -> dict[str, int]:
    """Create the shop schema and fill it; returns row counts per table."""
    customers, products, orders = 20_000 * scale, 2_000 * scale, 100_000 * scale
    ddl = files("asymm.dev.demo").joinpath("schema.sql").read_text()
    # The demo shop is the application: its DDL and data use its own search_path (public).
    with connect(dsn, autocommit=False, pin=False) as conn:
        conn.execute(ddl)  # packaged, trusted DDL
        conn.execute(
            "INSERT INTO customers (email, full_name, country, created_at)"
            " SELECT 'user' || g || '@example.' || (ARRAY['com','org','net'])[1 + g %% 3],"
            "        'Customer ' || g, (ARRAY['FR','DE','US','JP','BR','IN'])[1 + g %% 6],"
            "        now() - make_interval(days => g %% 900)"
            "   FROM generate_series(1, %s) g",
            (customers,),
        )
        conn.execute(
            "INSERT INTO products (sku, name, category, price_cents, attributes)"
            " SELECT 'SKU-' || lpad(g::text, 6, '0'), 'Product ' || g,"
            "        (ARRAY['books','games','garden','kitchen','music','tools'])[1 + g %% 6],"
            "        100 + (g * 37) %% 20000,"
            "        jsonb_build_object('color', (ARRAY['red','green','blue'])[1 + g %% 3], 'size', g %% 5)"
            "   FROM generate_series(1, %s) g",
            (products,),
        )
        conn.execute(
            "INSERT INTO orders (customer_id, status, placed_at)"
            " SELECT 1 + (g * 7919) %% %s, (ARRAY['new','paid','shipped','cancelled'])[1 + g %% 4],"
            "        now() - make_interval(mins => g %% 200000)"
            "   FROM generate_series(1, %s) g",
            (customers, orders),
        )
        conn.execute(
            "INSERT INTO order_items (order_id, line_no, product_id, quantity, price_cents)"
            " SELECT o, l, 1 + (o * 31 + l * 17) %% %s, 1 + (o + l) %% 4, 100 + (o * l) %% 5000"
            "   FROM generate_series(1, %s) o, generate_series(1, 1 + o %% 4) l",
            (products, orders),
        )
        conn.execute(
            "UPDATE orders o SET total_cents = t.total_cents FROM order_totals t WHERE t.order_id = o.order_id"
        )
        conn.commit()
    with connect(dsn, pin=False) as conn:
        conn.execute("VACUUM ANALYZE")
        counts: dict[str, int] = {}
        for table in ("customers", "products", "orders", "order_items"):
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            assert row is not None
            counts[table] = int(row[0])  # type: ignore[call-overload]
    return counts


def install_extension(dsn: str) -> None:
    with connect(dsn, pin=False) as conn:  # CASCADE installs into the creation schema (public)
        conn.execute("CREATE EXTENSION IF NOT EXISTS asymm CASCADE")
        with contextlib.suppress(psycopg.Error):  # optional: the advisor reports its absence
            conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
