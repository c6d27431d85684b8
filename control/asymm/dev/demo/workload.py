"""A parameterised shop workload: point lookups, range scans, joins, writes, and a slow report.

It runs with ``observed=True`` connections so that pg_stat_statements records it, unlike asymm's
own statements.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass

import psycopg

from asymm.db import connect

STATEMENTS: list[tuple[str, str]] = [
    ("customer by id", "SELECT * FROM customers WHERE customer_id = %(customer)s"),
    ("customer by email", "SELECT customer_id FROM customers WHERE lower(email) = lower(%(email)s)"),
    (
        "recent orders of a customer",
        "SELECT order_id, status, placed_at FROM orders WHERE customer_id = %(customer)s"
        " ORDER BY placed_at DESC LIMIT 10",
    ),
    (
        "orders by status and date",
        "SELECT count(*) FROM orders WHERE status = %(status)s AND placed_at > now() - %(age)s::interval",
    ),
    ("order lines", "SELECT * FROM order_items WHERE order_id = %(order)s"),
    ("product sales", "SELECT sum(quantity) FROM order_items WHERE product_id = %(product)s"),
    ("products by attribute", "SELECT product_id, name FROM products WHERE attributes @> %(attrs)s::jsonb LIMIT 20"),
    (
        "category revenue",
        "SELECT p.category, sum(i.quantity * i.price_cents) FROM order_items i"
        " JOIN products p USING (product_id) WHERE p.category = %(category)s GROUP BY p.category",
    ),
    ("pay an order", "UPDATE orders SET status = 'paid' WHERE order_id = %(order)s AND status = 'new'"),
    ("new customer", "INSERT INTO customers (email, full_name, country) VALUES (%(email)s, 'Walk-in', 'FR')"),
]


@dataclass
class WorkloadResult:
    statements: int = 0
    errors: int = 0
    seconds: float = 0.0


def _params(rng: random.Random, sizes: dict[str, int]) -> dict[str, object]:
    return {
        "customer": rng.randint(1, sizes["customers"]),
        "email": f"user{rng.randint(1, sizes['customers'])}@example.com",
        "order": rng.randint(1, sizes["orders"]),
        "product": rng.randint(1, sizes["products"]),
        "status": rng.choice(["new", "paid", "shipped", "cancelled"]),
        "age": f"{rng.randint(1, 30)} days",
        "attrs": json.dumps({"color": rng.choice(["red", "green", "blue"])}),
        "category": rng.choice(["books", "games", "garden", "kitchen", "music", "tools"]),
    }


def run(dsn: str, sizes: dict[str, int], seconds: float, clients: int = 2, seed: int = 4909) -> WorkloadResult:
    """Run the workload from ``clients`` threads for ``seconds``; returns what was executed."""
    result = WorkloadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(number: int) -> None:
        rng = random.Random(seed + number)
        done = errors = 0
        with connect(dsn, observed=True, application_name="asymm-demo-workload", pin=False) as conn:
            while time.monotonic() < deadline:
                _name, statement = rng.choice(STATEMENTS)
                try:
                    conn.execute(statement, _params(rng, sizes))
                    done += 1
                except psycopg.Error:
                    errors += 1
        with lock:
            result.statements += done
            result.errors += errors

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - started
    return result
