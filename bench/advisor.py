#!/usr/bin/env python3
"""Index advisor benchmark: replayed OLTP workload with no indexes, a DBA's hand-made set, the advisor's set.

Usage: ``.venv/bin/python bench/advisor.py [--dsn DSN] [--scale 1.0]`` against a throwaway server
(``asymm sandbox up``); it creates (and at the end drops) databases ``asymm_bench_advisor*``.
Give the server a buffer pool that holds the copies (about 1.3 GB at scale 1: ``ALTER SYSTEM SET
shared_buffers = '2GB'`` and a restart), else the copies compete for it (see :func:`prewarm`).

1. An OLTP schema (customers 200k, products 20k, orders 1.2M, order_items 2M, events 300k at
   scale 1) generated with generate_series, ANALYZEd, only primary keys.
2. 18 query shapes with parameters, each with a weight (calls per replay).  Some need
   multi-column or expression indexes, some cannot use any index, two are writes.  One pass of
   the workload feeds pg_stat_statements (reset first): that is what the advisor reads.
3. ``advise()`` on that workload (default settings, then without the write bound), then a
   file-level copy of the database per index set, and an interleaved replay (:func:`measure`):
   per shape, paired samples of at least ``--sample-ms`` of work each, client wall time and
   server execution time (pg_stat_statements) per call, the median of the paired ratios with a
   bootstrap interval, and per shape whether it is within 10 % of no indexes.
4. 1,000 distinct statements (generated variations over the same schema) through the advisor:
   runtime and what-if calls.
5. Analytic (TPC-H-style) statements at 250 MB / 500 MB / 1 GB budgets: estimated workload cost
   relative to no indexes.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from asymm.advisor.advise import Settings, advise
from asymm.advisor.workload import Statement, read_workload
from asymm.db import resolve_dsn, with_dbname

DB = "asymm_bench_advisor"

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, country text NOT NULL, tier text NOT NULL,
                        created_at timestamp NOT NULL);
INSERT INTO customers SELECT g, 'Customer' || g || '@Example.com', 'C' || (g % 20),
       (ARRAY['free','pro','team'])[1 + g % 3],
       timestamp '2024-01-01' + (g * 157 % {c}) * interval '5 min' FROM generate_series(1, {c}) g;
CREATE TABLE products (id int PRIMARY KEY, category int NOT NULL, price numeric(10,2) NOT NULL, name text NOT NULL,
                       attrs jsonb NOT NULL);
INSERT INTO products SELECT g, g % 200, (g * 7919 % 100000) / 100.0, 'product ' || g,
       jsonb_build_object('color', (ARRAY['red','blue','green','black'])[1 + g % 4], 'size', g % 10)
  FROM generate_series(1, {p}) g;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL, total numeric(10,2) NOT NULL,
                     shipping_country text NOT NULL, created_at timestamp NOT NULL, note text);
INSERT INTO orders SELECT g, 1 + (g * 7 % {c}), (ARRAY['new','paid','shipped','done','done','done'])[1 + g % 6],
       (g * 31 % 100000) / 100.0, 'C' || (g * 13 % 20), timestamp '2024-01-01' + g * interval '20 s', NULL
  FROM generate_series(1, {o}) g;
CREATE TABLE order_items (id int PRIMARY KEY, order_id int NOT NULL, product_id int NOT NULL, quantity int NOT NULL,
                          price numeric(10,2) NOT NULL);
INSERT INTO order_items SELECT g, 1 + (g * 3 % {o}), 1 + (g * 101 % {p}), 1 + g % 5, (g % 10000) / 100.0
  FROM generate_series(1, {i}) g;
CREATE TABLE events (id bigserial PRIMARY KEY, customer_id int NOT NULL, kind text NOT NULL, at timestamp NOT NULL);
INSERT INTO events (customer_id, kind, at) SELECT 1 + g % {c}, (ARRAY['login','view','cart'])[1 + g % 3],
       timestamp '2024-06-01' + g * interval '30 s' FROM generate_series(1, {e}) g;
"""

# The careful DBA's set: what one would create by hand reading the same 18 shapes.
HAND = [
    "CREATE INDEX hand_orders_cust_created ON orders (customer_id, created_at DESC)",
    "CREATE INDEX hand_customers_lower_email ON customers (lower(email))",
    "CREATE INDEX hand_orders_status_created ON orders (status, created_at)",
    "CREATE INDEX hand_items_order ON order_items (order_id)",
    "CREATE INDEX hand_items_product ON order_items (product_id)",
    "CREATE INDEX hand_products_cat_price ON products (category, price)",
    "CREATE INDEX hand_events_cust_at ON events (customer_id, at DESC)",
    "CREATE INDEX hand_products_attrs ON products USING gin (attrs jsonb_path_ops)",
    "CREATE INDEX hand_customers_created ON customers (created_at)",
    "CREATE INDEX hand_orders_country_total ON orders (shipping_country, total)",
]


@dataclass
class Shape:
    name: str
    query: str
    params: Any  # (rng, scale) -> tuple
    weight: int  # calls per replay
    note: str


def shapes(c: int, p: int, o: int) -> list[Shape]:
    return [
        Shape(
            "recent orders of a customer",
            "SELECT * FROM orders WHERE customer_id = %s ORDER BY created_at DESC LIMIT 10",
            lambda r: (r.randint(1, c),),
            40,
            "multi-column (eq + sort)",
        ),
        Shape(
            "login by e-mail",
            "SELECT id, tier FROM customers WHERE lower(email) = lower(%s)",
            lambda r: (f"customer{r.randint(1, c)}@example.com",),
            40,
            "expression index",
        ),
        Shape(
            "orders by status in a window",
            "SELECT count(*), sum(total) FROM orders WHERE status = %s AND created_at >= %s AND created_at < %s",
            lambda r: ("paid", *_window(r, o)),
            20,
            "multi-column (eq + range)",
        ),
        Shape(
            "items of an order",
            "SELECT * FROM order_items WHERE order_id = %s",
            lambda r: (r.randint(1, o),),
            40,
            "join key",
        ),
        Shape(
            "customer's ordered items",
            "SELECT i.product_id, i.quantity FROM orders o JOIN order_items i ON i.order_id = o.id"
            " WHERE o.customer_id = %s",
            lambda r: (r.randint(1, c),),
            20,
            "join",
        ),
        Shape(
            "cheapest in category",
            "SELECT id, name, price FROM products WHERE category = %s ORDER BY price LIMIT 20",
            lambda r: (r.randint(0, 199),),
            20,
            "multi-column (eq + sort)",
        ),
        Shape(
            "customers per tier in a country",
            "SELECT count(*) FROM customers WHERE country = %s AND tier = %s",
            lambda r: (f"C{r.randint(0, 19)}", "pro"),
            5,
            "index does not help (low selectivity)",
        ),
        Shape("order by id", "SELECT * FROM orders WHERE id = %s", lambda r: (r.randint(1, o),), 40, "primary key"),
        Shape(
            "revenue of a status",
            "SELECT sum(total) FROM orders WHERE status = %s",
            lambda r: ("done",),
            2,
            "index does not help (half the table)",
        ),
        Shape(
            "record event",
            "INSERT INTO events (customer_id, kind, at) VALUES (%s, %s, now())",
            lambda r: (r.randint(1, c), "view"),
            60,
            "write",
        ),
        Shape(
            "latest events of a customer",
            "SELECT kind, at FROM events WHERE customer_id = %s ORDER BY at DESC LIMIT 20",
            lambda r: (r.randint(1, c),),
            20,
            "multi-column on a written table",
        ),
        Shape(
            "daily revenue",
            "SELECT date_trunc('day', created_at) d, sum(total) FROM orders GROUP BY 1 ORDER BY 1 LIMIT 5",
            lambda r: (),
            1,
            "index does not help (full scan)",
        ),
        Shape(
            "products with attribute",
            "SELECT id FROM products WHERE attrs @> %s::jsonb LIMIT 50",
            lambda r: ('{"color": "red", "size": 3}',),
            10,
            "GIN (jsonb @>)",
        ),
        Shape(
            "sales of a product",
            "SELECT sum(quantity) FROM order_items WHERE product_id = %s",
            lambda r: (r.randint(1, p),),
            20,
            "join key / eq",
        ),
        Shape(
            "pay an order",
            "UPDATE orders SET status = 'paid' WHERE id = %s",
            lambda r: (r.randint(1, o),),
            20,
            "write (primary key)",
        ),
        Shape(
            "new customers",
            "SELECT id, email FROM customers WHERE created_at >= %s ORDER BY created_at LIMIT 50",
            lambda r: (_ts(r, c * 5 * 60 // 20),),
            10,
            "range + sort",
        ),
        Shape(
            "big orders to a country",
            "SELECT id, total FROM orders WHERE shipping_country = %s AND total > %s ORDER BY total DESC LIMIT 20",
            lambda r: (f"C{r.randint(0, 19)}", 995),
            10,
            "multi-column (eq + range/sort)",
        ),
        Shape(
            "orders in the last days (literal interval)",
            "SELECT count(*) FROM orders WHERE created_at > timestamp '2024-01-01' + interval '270 days'"
            " AND status = 'new'",
            lambda r: (),
            5,
            "normalized interval/timestamp literals",
        ),
    ]


EPOCH = datetime(2024, 1, 1)


def _window(r: random.Random, o: int) -> tuple[datetime, datetime]:
    """A six-hour window inside the orders' time span."""
    start = EPOCH + timedelta(seconds=r.randint(0, o * 20 - 86400))
    return start, start + timedelta(hours=6)


def _ts(r: random.Random, span_s: int) -> datetime:
    return EPOCH + timedelta(seconds=r.randint(0, span_s))


def params_for(items: list[Shape], seed: int) -> dict[str, list[tuple[Any, ...]]]:
    """The parameters of one round: the same for every configuration, so only the indexes differ."""
    rng = random.Random(seed)
    return {shape.name: [shape.params(rng) for _ in range(shape.weight)] for shape in items}


def run_shape(conn: psycopg.Connection[Any], shape: Shape, params: list[tuple[Any, ...]]) -> float:
    started = time.perf_counter()
    for values in params:
        cur = conn.execute(shape.query, values)
        if cur.description is not None:
            cur.fetchall()
    return time.perf_counter() - started


def feed(dsn: str, items: list[Shape], seed: int = 7) -> None:
    """One pass of the workload: what pg_stat_statements records and the advisor reads."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        params = params_for(items, seed)
        for shape in items:
            run_shape(conn, shape, params[shape.name])


@dataclass
class Sample:
    """One block of ``calls`` executions of a shape in one configuration."""

    calls: int
    client_s: float  # wall time of the block seen by the client (round trips included)
    server_s: float | None  # pg_stat_statements execution + planning time of those calls
    reads: int | None  # blocks those calls read from outside shared_buffers (shared_blks_read)


class Probe:
    """A connection to one configuration's database, and a view on its pg_stat_statements totals.

    The server-side time of a block is the delta of ``total_exec_time + total_plan_time`` summed
    over the entries of this database (``dbid``): only the block's statements run in it
    meanwhile, and a shape may have several entries (psycopg sends a Python int as int2, int4 or
    int8 by its value, and the parameter type is part of the queryid).  The totals are read
    through ``stats``, a connection to another database, so that reading them adds no entry
    here.  This time has no client round trip and no scheduling of the client process in it, so
    a small difference in execution is not drowned in jitter; it also leaves out the protocol,
    executor start-up (opening the table's indexes) and commit, which the client time has.
    Planning time is counted (``track_planning`` on for this session) because more indexes on a
    table are more paths for the planner to cost.
    """

    def __init__(self, dsn: str, stats: psycopg.Connection[Any]) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.stats = stats
        with contextlib.suppress(psycopg.Error):  # not a superuser: execution time only
            self.conn.execute("SET pg_stat_statements.track_planning = on")
        row = self.conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
        assert row is not None
        self.dboid = int(row[0])

    def server(self) -> tuple[float, int, int]:
        """(ms, calls, blocks read) so far over this database's pg_stat_statements entries."""
        row = self.stats.execute(
            "SELECT coalesce(sum(total_exec_time + total_plan_time), 0), coalesce(sum(calls), 0),"
            " coalesce(sum(shared_blks_read), 0) FROM pg_stat_statements(false) WHERE dbid = %s",
            (self.dboid,),
        ).fetchone()
        assert row is not None
        return float(row[0]), int(row[1]), int(row[2])

    def block(self, shape: Shape, params: list[tuple[Any, ...]]) -> Sample:
        before = self.server()
        elapsed = run_shape(self.conn, shape, params)
        after = self.server()
        # None if anything else ran in the database meanwhile (or an entry was evicted)
        if after[1] - before[1] != len(params):
            return Sample(len(params), elapsed, None, None)
        return Sample(len(params), elapsed, (after[0] - before[0]) / 1000, after[2] - before[2])

    def close(self) -> None:
        self.conn.close()


def sample_params(shape: Shape, k: int, round_no: int, rep: int, calls: int) -> list[tuple[Any, ...]]:
    """The parameters of one sample: the same in every configuration, so only the indexes differ."""
    rng = random.Random(1_000_003 * round_no + 1009 * rep + k)
    return [shape.params(rng) for _ in range(calls)]


REPEAT_UNDER_S = 2.5  # shapes whose slowest block takes less are sampled ``reps`` times per round


def block_order(names: list[str], j: int) -> list[str]:
    """The ``j``-th order of the configurations' blocks: rotated, and reversed every other cycle, so
    that over ``2 x len(names)`` samples each configuration runs first, last and between as often."""
    shift = j % len(names)
    order = names[shift:] + names[:shift]
    return order[::-1] if (j // len(names)) % 2 else order


def measure(
    dsns: dict[str, str], stats_dsn: str, items: list[Shape], rounds: int, reps: int, target_s: float, max_calls: int
) -> tuple[dict[str, dict[str, list[Sample]]], dict[str, int]]:
    """Paired samples per (configuration, shape): the configurations interleaved block by block.

    Each configuration lives in its own database, a file-level copy (CREATE DATABASE ... TEMPLATE)
    of the same data and statistics, differing only by the added indexes.  A warm-up round (not
    recorded) runs every shape at its weight in every configuration and fixes the calls per
    sample: at least the weight, and enough for ``target_s`` of work in the slowest
    configuration (capped at ``max_calls``), so that a 0.1 ms statement is timed over a thousand
    calls rather than forty.  Then, per round and per shape, the configurations run one block
    each with identical parameters, back to back, in an order that changes from sample to sample
    (:func:`block_order`); shapes whose slowest block takes under ``REPEAT_UNDER_S`` repeat that
    ``reps`` times per round (where the configurations are close, precision matters most).
    A burst of load from the neighbours on this shared machine thus hits all configurations
    of a sample alike, and the per-sample ratio cancels it.  Writes run in every configuration
    alike (the same rows updated, the same events inserted).
    """
    names = list(dsns)
    stats = psycopg.connect(stats_dsn, autocommit=True)
    probes = {n: Probe(dsn, stats) for n, dsn in dsns.items()}
    out: dict[str, dict[str, list[Sample]]] = {n: {s.name: [] for s in items} for n in names}
    calls: dict[str, int] = {}
    repeat: dict[str, int] = {}
    try:
        for k, shape in enumerate(items):  # warm-up
            params = sample_params(shape, k, 0, 0, shape.weight)
            slowest = max(probes[n].block(shape, params).client_s for n in names) / shape.weight
            calls[shape.name] = min(max_calls, max(shape.weight, math.ceil(target_s / max(slowest, 1e-6))))
            repeat[shape.name] = reps if calls[shape.name] * slowest < REPEAT_UNDER_S else 1
        for round_no in range(1, rounds + 1):
            for k, shape in enumerate(items):
                for rep in range(repeat[shape.name]):
                    params = sample_params(shape, k, round_no, rep, calls[shape.name])
                    for name in block_order(names, round_no * repeat[shape.name] + rep + k):
                        out[name][shape.name].append(probes[name].block(shape, params))
    finally:
        for probe in probes.values():
            probe.close()
        stats.close()
    return out, calls


@dataclass
class Ratio:
    """Median of paired per-sample ratios, with a bootstrap 95 % interval and the middle 50 %."""

    median: float
    low: float  # 2.5th percentile of the bootstrapped median
    high: float  # 97.5th percentile
    q1: float
    q3: float
    n: int

    def text(self) -> str:
        return f"{self.median:5.2f} [{self.low:4.2f}-{self.high:4.2f}]"


def paired(a: list[float], b: list[float], seed: int = 5, resamples: int = 2000) -> Ratio:
    """a[i] / b[i] summarized: the median, a percentile-bootstrap interval for it, the quartiles."""
    ratios = sorted(x / y for x, y in zip(a, b, strict=True))
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return Ratio(
        statistics.median(ratios),
        medians[int(0.025 * resamples)],
        medians[int(0.975 * resamples) - 1],
        q1,
        q3,
        len(ratios),
    )


BOUND = 1.10


def verdict(ratios: list[Ratio]) -> str:
    """'ok' when every interval is under the bound, 'OVER' when one is entirely above it, else '?'."""
    if any(r.low > BOUND for r in ratios):
        return "OVER"
    if all(r.high <= BOUND for r in ratios):
        return "ok"
    return "?"


def plans(dsn: str, items: list[Shape], seed: int = 7) -> dict[str, str]:
    """A plan signature (node types and index names) per shape, for its first parameters."""
    out: dict[str, str] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        rng = random.Random(seed)
        for shape in items:
            row = conn.execute("EXPLAIN (FORMAT JSON) " + shape.query, shape.params(rng)).fetchone()
            assert row is not None
            out[shape.name] = _signature(row[0][0]["Plan"])
    return out


def _signature(plan: dict[str, Any]) -> str:
    here = plan["Node Type"] + (f"[{plan['Index Name']}]" if "Index Name" in plan else "")
    children = ",".join(_signature(child) for child in plan.get("Plans", ()))
    return f"{here}({children})" if children else here


def prewarm(admin: str, dbs: list[str]) -> None:
    """Load every copy into shared_buffers when they all fit, else say that they do not.

    The three copies share one buffer pool.  When it cannot hold them, a configuration's
    statements find fewer of their pages cached for reasons foreign to their own plans: the
    no-index copy's sequential scans keep its tables' usage counts up, the other copies' index
    scans and index maintenance take buffers.  A primary-key read measured up to 1.6x slower
    in the advisor's copy than in the no-index copy, with an identical plan, from blocks read
    alone (2026-11-24, shared_buffers 256 MB for 1.2 GB of copies).  In a single database,
    new indexes do take cache from the rest; that is not the per-statement effect measured here.
    The blocks read per call are printed either way.
    """
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sum(pg_database_size(datname)), current_setting('shared_buffers'),"
            " (SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers')"
            " FROM pg_database WHERE datname = ANY(%s)",
            (dbs,),
        ).fetchone()
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_prewarm'").fetchone()
    assert row is not None
    total, setting, pool = int(row[0]), row[1], int(row[2])
    fits = total < 0.9 * pool
    print(
        f"buffer pool: shared_buffers {setting}, the three copies {total / 2**20:.0f} MB:"
        + (
            " prewarmed (pg_prewarm)"
            if fits and available
            else " do not fit, not prewarmed"
            if not fits
            else " pg_prewarm not available, not prewarmed"
        )
    )
    if not (fits and available):
        return
    for db in dbs:
        with psycopg.connect(with_dbname(admin, db), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            conn.execute(
                "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'i', 't', 'm') AND n.nspname NOT IN ('pg_catalog',"
                " 'information_schema') AND c.relpersistence = 'p'"
            )


def index_sizes(conn: psycopg.Connection[Any], names: list[str]) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(pg_relation_size(c.oid)), 0) FROM pg_class c WHERE relname = ANY(%s)", (names,)
    ).fetchone()
    return int(row[0]) if row else 0


def with_indexes(conn: psycopg.Connection[Any], statements: list[str]) -> list[str]:
    """Create the indexes; ANALYZE only tables that got an expression index (which needs statistics).

    The other tables keep the statistics copied from the template, so that a plan differs between
    configurations only because of the indexes, not because ANALYZE drew another sample.
    """
    names, analyze = [], set()
    for statement in statements:
        conn.execute(statement)
        names.append(statement.split()[2].strip('"'))
        match = re.search(r" ON (\S+) (?:USING \w+ )?\((.*)\)$", statement)
        if match and "(" in match.group(2):
            analyze.add(match.group(1))
    for table in sorted(analyze):
        conn.execute(f"ANALYZE {table}")
    return names


def distinct_statements(n: int) -> list[Statement]:
    """``n`` distinct normalized statements: variations of select lists, filters, sorts and limits."""
    tables = {
        "orders": (
            ["id", "customer_id", "status", "total", "shipping_country", "created_at"],
            ["customer_id", "status", "shipping_country"],
            ["created_at", "total"],
        ),
        "customers": (["id", "email", "country", "tier", "created_at"], ["country", "tier", "email"], ["created_at"]),
        "order_items": (
            ["id", "order_id", "product_id", "quantity", "price"],
            ["order_id", "product_id"],
            ["quantity", "price"],
        ),
        "products": (["id", "category", "price", "name"], ["category", "name"], ["price"]),
        "events": (["id", "customer_id", "kind", "at"], ["customer_id", "kind"], ["at"]),
    }
    rng = random.Random(11)
    seen: set[str] = set()
    out: list[Statement] = []
    while len(out) < n:
        table = rng.choice(sorted(tables))
        cols, eqs, ranges = tables[table]
        select = ", ".join(rng.sample(cols, rng.randint(1, len(cols))))
        preds, k = [], 1
        for col in rng.sample(eqs, rng.randint(0, min(2, len(eqs)))):
            preds.append(f"{col} = ${k}")
            k += 1
        if rng.random() < 0.6:
            col = rng.choice(ranges)
            if rng.random() < 0.5:
                preds.append(f"{col} >= ${k} AND {col} < ${k + 1}")
                k += 2
            else:
                preds.append(f"{col} > ${k}")
                k += 1
        text = f"SELECT {select} FROM {table}"  # noqa: S608 - generated from the fixed lists above
        if preds:
            text += " WHERE " + " AND ".join(preds)
        if rng.random() < 0.4:
            text += f" ORDER BY {rng.choice(ranges)}{rng.choice(['', ' DESC'])} LIMIT ${k}"
        if text in seen:
            continue
        seen.add(text)
        out.append(Statement(len(out) + 1, text, rng.randint(1, 1000), 1.0, 1))
    return out


# -- TPC-H-style analytic part -------------------------------------------------------------------

TPCH_DB = "asymm_bench_tpch"

TPCH_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE supplier (s_suppkey int PRIMARY KEY, s_nationkey int NOT NULL, s_acctbal numeric(12,2) NOT NULL);
INSERT INTO supplier SELECT g, g % 25, (g * 7919 % 1100000) / 100.0 - 1000 FROM generate_series(1::bigint, {s}) g;
CREATE TABLE part (p_partkey int PRIMARY KEY, p_brand text NOT NULL, p_type text NOT NULL, p_size int NOT NULL,
                   p_container text NOT NULL, p_retailprice numeric(12,2) NOT NULL);
INSERT INTO part SELECT g, 'Brand#' || (1 + g % 5) || (1 + g / 5 % 5),
       (ARRAY['STANDARD','SMALL','MEDIUM','LARGE','ECONOMY','PROMO'])[1 + g % 6] || ' '
       || (ARRAY['ANODIZED','BURNISHED','PLATED','POLISHED','BRUSHED'])[1 + g / 6 % 5] || ' '
       || (ARRAY['TIN','NICKEL','BRASS','STEEL','COPPER'])[1 + g / 30 % 5],
       1 + g % 50, (ARRAY['SM','MED','LG','JUMBO','WRAP'])[1 + g / 7 % 5] || ' '
       || (ARRAY['CASE','BOX','BAG','JAR','PKG','PACK','CAN','DRUM'])[1 + g / 11 % 8],
       900 + (g % 20000) / 100.0 FROM generate_series(1::bigint, {p}) g;
CREATE TABLE customer (c_custkey int PRIMARY KEY, c_nationkey int NOT NULL, c_mktsegment text NOT NULL,
                       c_acctbal numeric(12,2) NOT NULL);
INSERT INTO customer SELECT g, g * 13 % 25,
       (ARRAY['AUTOMOBILE','BUILDING','FURNITURE','MACHINERY','HOUSEHOLD'])[1 + g * 7 % 5],
       (g * 104729 % 1100000) / 100.0 - 1000 FROM generate_series(1::bigint, {c}) g;
CREATE TABLE orders (o_orderkey int PRIMARY KEY, o_custkey int NOT NULL, o_orderstatus char(1) NOT NULL,
                     o_totalprice numeric(12,2) NOT NULL, o_orderdate date NOT NULL, o_orderpriority text NOT NULL);
INSERT INTO orders SELECT g, 1 + g * 7 % {c}, (ARRAY['F','O','P'])[1 + g % 3], (g * 31 % 50000000) / 100.0,
       date '1992-01-01' + (g * 97 % 2400)::int,
       (ARRAY['1-URGENT','2-HIGH','3-MEDIUM','4-NOT SPECIFIED','5-LOW'])[1 + g % 5]
  FROM generate_series(1::bigint, {o}) g;
CREATE TABLE lineitem (l_orderkey int NOT NULL, l_linenumber int NOT NULL, l_partkey int NOT NULL,
                       l_suppkey int NOT NULL, l_quantity numeric(12,2) NOT NULL,
                       l_extendedprice numeric(12,2) NOT NULL,
                       l_discount numeric(12,2) NOT NULL, l_tax numeric(12,2) NOT NULL, l_returnflag char(1) NOT NULL,
                       l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL,
                       l_receiptdate date NOT NULL, l_shipmode text NOT NULL,
                       PRIMARY KEY (l_orderkey, l_linenumber));
INSERT INTO lineitem SELECT 1 + (g - 1) / 4, 1 + (g - 1) % 4, 1 + g * 7919 % {p}, 1 + g * 31 % {s}, 1 + g % 50,
       (1 + g % 50) * (900 + (g * 7919 % {p}) % 20000 / 100.0), (g % 11) / 100.0, (g % 9) / 100.0,
       (ARRAY['A','N','R'])[1 + g % 3], (ARRAY['F','O'])[1 + g / 3 % 2],
       date '1992-01-02' + ((1 + (g - 1) / 4) * 97 % 2400 + g % 120)::int,
       date '1992-01-02' + ((1 + (g - 1) / 4) * 97 % 2400 + 30 + g % 60)::int,
       date '1992-01-02' + ((1 + (g - 1) / 4) * 97 % 2400 + g % 120 + 1 + g % 30)::int,
       (ARRAY['REG AIR','AIR','RAIL','SHIP','TRUCK','MAIL','FOB'])[1 + g / 5 % 7]
  FROM generate_series(1::bigint, {l}) g;
"""

# (statement, calls): TPC-H queries 3, 4, 5, 6, 10, 12, 14, 17, 19, 21 in spirit (parameters as
# pg_stat_statements shows them), and the drill-downs an analyst runs around them.
TPCH: list[tuple[str, int]] = [
    (
        "SELECT l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice * (1 - l_discount)), count(*)"
        " FROM lineitem WHERE l_shipdate <= $1 GROUP BY 1, 2 ORDER BY 1, 2",
        2,
    ),
    (
        "SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate FROM customer, orders,"
        " lineitem WHERE c_mktsegment = $1 AND c_custkey = o_custkey AND l_orderkey = o_orderkey"
        " AND o_orderdate < $2 AND o_orderdate >= $3 AND l_shipdate > $4 GROUP BY l_orderkey, o_orderdate"
        " ORDER BY revenue DESC LIMIT 10",
        20,
    ),
    (
        "SELECT o_orderpriority, count(*) FROM orders WHERE o_orderdate >= $1 AND o_orderdate < $2 AND EXISTS"
        " (SELECT 1 FROM lineitem WHERE l_orderkey = o_orderkey AND l_commitdate < l_receiptdate) GROUP BY 1",
        10,
    ),
    (
        "SELECT sum(l_extendedprice * l_discount) FROM lineitem WHERE l_shipdate >= $1 AND l_shipdate < $2"
        " AND l_discount BETWEEN $3 AND $4 AND l_quantity < $5",
        30,
    ),
    (
        "SELECT c_custkey, sum(l_extendedprice * (1 - l_discount)) FROM customer, orders, lineitem"
        " WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND o_orderdate >= $1 AND o_orderdate < $2"
        " AND l_returnflag = $3 GROUP BY c_custkey ORDER BY 2 DESC LIMIT 20",
        10,
    ),
    (
        "SELECT l_shipmode, count(*) FROM orders, lineitem WHERE o_orderkey = l_orderkey AND l_shipmode = $1"
        " AND l_commitdate < l_receiptdate AND l_shipdate < l_commitdate AND l_receiptdate >= $2"
        " AND l_receiptdate < $3 GROUP BY l_shipmode",
        20,
    ),
    (
        "SELECT sum(l_extendedprice * (1 - l_discount)) FROM lineitem, part WHERE l_partkey = p_partkey"
        " AND l_shipdate >= $1 AND l_shipdate < $2 AND p_type LIKE $3",
        10,
    ),
    (
        "SELECT sum(l_extendedprice) / 7.0 FROM lineitem, part WHERE p_partkey = l_partkey AND p_brand = $1"
        " AND p_container = $2"
        " AND l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)",
        10,
    ),
    (
        "SELECT sum(l_extendedprice * (1 - l_discount)) FROM lineitem, part WHERE p_partkey = l_partkey"
        " AND p_brand = $1 AND p_container = $2 AND l_quantity BETWEEN $3 AND $4 AND l_shipmode = $5",
        10,
    ),
    ("SELECT count(*) FROM lineitem WHERE l_suppkey = $1 AND l_receiptdate > l_commitdate", 40),
    ("SELECT l_orderkey, l_quantity FROM lineitem WHERE l_partkey = $1 AND l_suppkey = $2", 50),
    ("SELECT * FROM lineitem WHERE l_receiptdate = $1 AND l_shipmode = $2", 30),
    ("SELECT o_orderkey, o_totalprice FROM orders WHERE o_custkey = $1 ORDER BY o_orderdate DESC LIMIT $2", 50),
    ("SELECT l_returnflag, count(*) FROM lineitem WHERE l_commitdate = $1 GROUP BY 1", 20),
    (
        "SELECT l_orderkey, l_extendedprice FROM lineitem WHERE l_returnflag = $1 AND l_shipdate = $2"
        " ORDER BY l_extendedprice DESC LIMIT $3",
        20,
    ),
    ("SELECT count(*) FROM lineitem WHERE l_extendedprice > $1", 10),
]


def tpch(admin: str, scale: float) -> None:
    """The analytic workload's estimated cost relative to no indexes at 250 MB, 500 MB and 1 GB."""
    s, p, c, o, li = (max(10, int(x * scale)) for x in (10_000, 200_000, 150_000, 1_500_000, 6_000_000))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TPCH_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TPCH_DB)))
    dsn = with_dbname(admin, TPCH_DB)
    from asymm.db import connect

    try:
        started = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(TPCH_SCHEMA.format(s=s, p=p, c=c, o=o, l=li))
            conn.execute("VACUUM ANALYZE")
            row = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('lineitem'))").fetchone()
        print(
            f"TPC-H-style schema (scale {scale}): lineitem {li:,} rows ({row[0] if row else '?'}), orders {o:,},"
            f" part {p:,}, customer {c:,}, supplier {s:,} (generated in {time.perf_counter() - started:.1f} s);"
            f" {len(TPCH)} statements"
        )
        stmts = [Statement(k + 1, q, calls, 1.0, 1) for k, (q, calls) in enumerate(TPCH)]
        print()
        print(
            f"{'analytic budget':16} {'indexes':>7} {'est. cost / no indexes':>23} {'HypoPG MB':>10}"
            f" {'what-if':>8} {'runtime s':>9}  indexes"
        )
        with connect(dsn) as conn:
            for budget in (250, 500, 1024, None):
                res = advise(conn, Settings(budget_mb=budget, max_indexes=None, min_gain_fraction=0.001), stmts)
                ratio = res["workload_cost_after"] / res["workload_cost_before"]
                label = f"{budget:>11} MB" if budget else "  (no budget)  "
                chosen = "; ".join(f"{i['table'].split('.')[-1]}({', '.join(i['columns'])})" for i in res["indexes"])
                print(
                    f"{label:16} {len(res['indexes']):7} {ratio:23.3f} {res['storage_bytes'] / 2**20:10.1f}"
                    f" {res['whatif_calls']:8} {res['runtime_s']:9.2f}  {chosen}"
                )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TPCH_DB)))


# -- driver ------------------------------------------------------------------------------------


@dataclass
class MeasureOpts:
    rounds: int
    reps: int
    target_s: float
    max_calls: int


def uptime(when: str) -> None:
    """The load average, which RESULTS.md states: the machine is shared with other jobs."""
    with open("/proc/loadavg") as f:
        print(f"load average {when}: {' '.join(f.read().split()[:3])}")


def create_db(admin: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_dbs(admin: str, names: list[str]) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5, help="recorded interleaved rounds (after one warm-up)")
    parser.add_argument("--reps", type=int, default=4, help="samples per round of shapes under 2.5 s per block")
    parser.add_argument(
        "--sample-ms",
        type=float,
        default=250.0,
        help="minimum work per sample in the slowest configuration (more calls for cheap shapes)",
    )
    parser.add_argument("--max-calls", type=int, default=5000, help="cap on the calls per sample")
    parser.add_argument("--tpch-scale", type=float, default=1.0, help="TPC-H-style scale (1: 6M lineitem rows)")
    parser.add_argument("--only", choices=("oltp", "tpch"), default=None)
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    args = parser.parse_args()
    admin = resolve_dsn(args.dsn)
    status = 0
    if args.only != "tpch":
        opts = MeasureOpts(args.rounds, args.reps, args.sample_ms / 1000, args.max_calls)
        status = oltp(admin, args.scale, opts, args.keep)
    if args.only != "oltp":
        tpch(admin, args.tpch_scale)
    return status


def oltp(admin: str, scale: float, measure_opts: MeasureOpts, keep: bool) -> int:
    c, p, o, i, e = (int(x * scale) for x in (200_000, 20_000, 1_200_000, 2_000_000, 300_000))
    create_db(admin, DB)
    dsn = with_dbname(admin, DB)
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.format(c=c, p=p, o=o, i=i, e=e))
        conn.execute("VACUUM ANALYZE")
    print(
        f"schema: orders {o:,} rows, order_items {i:,}, customers {c:,}, products {p:,}, events {e:,}"
        f" (generated in {time.perf_counter() - started:.1f} s)"
    )
    items = shapes(c, p, o)
    try:
        return run(admin, dsn, items, measure_opts)
    finally:
        if not keep:
            drop_dbs(admin, [DB, DB + "_hand", DB + "_adv", DB + "_free", DB + "_stats"])


def describe(label: str, result: dict[str, Any], statements: int) -> None:
    print(
        f"{label}: {statements} statements, {result['planned']} planned, {len(result['skipped'])} skipped, "
        f"{result['whatif_calls']} what-if calls, {result['runtime_s']:.2f} s; "
        f"estimated cost {result['workload_cost_before']:.0f} -> {result['workload_cost_after']:.0f}"
    )
    for item in result["indexes"]:
        print(
            f"  {item['definition']}  (benefit {item['estimated_benefit']:.0f},"
            f" HypoPG size {item['size_bytes'] / 2**20:.1f} MB)"
        )
    for item in result["skipped"]:
        print(f"  skipped {item['queryid']}: {item['reason']}")
    for item in result.get("refused_write_bound", []):
        print(
            f"  refused by the write bound: {item['definition']} ({item['statement'].upper()}"
            f" {item['modelled_ratio']:.2f}x per call, modelled: {item['reason']})"
        )
    for item in result.get("unverified", []):
        print(f"  unverified: {item['definition']} ({item['reason']})")


LABELS = {
    "hand": "the hand-made set",
    "adv": "the advisor's set",
    "free": "the advisor's set without the write bound (--no-write-bound)",
}


def run(admin: str, dsn: str, items: list[Shape], measure_opts: MeasureOpts) -> int:
    from asymm.db import connect

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    feed(dsn, items)  # what pg_stat_statements records: the advisor's input
    with connect(dsn) as conn:
        statements = read_workload(conn)
        row = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'orders'"
        ).fetchone()
        print(
            f"orders updates observed by the advisor: {row[0] if row else '?'}, of which HOT {row[1] if row else '?'}"
        )
        result = advise(conn, Settings())
        describe("advisor", result, len(statements))
        free = advise(conn, Settings(max_write_regression=None))
    sets = {"none": [], "hand": HAND, "adv": [item["definition"] for item in result["indexes"]]}
    free_set = [item["definition"] for item in free["indexes"]]
    if sorted(free_set) != sorted(sets["adv"]):
        describe("advisor without the write bound", free, len(statements))
        sets["free"] = free_set
    else:
        print("advisor without the write bound: the same set")

    # Identical copies (data, visibility, statistics); then each gets its indexes.
    configs = {name: DB if name == "none" else f"{DB}_{name}" for name in sets}
    started = time.perf_counter()
    sizes: dict[str, int] = {}
    for name, definitions in sets.items():
        if name != "none":
            create_db(admin, configs[name], template=DB)
        with psycopg.connect(with_dbname(admin, configs[name]), autocommit=True) as conn:
            sizes[name] = index_sizes(conn, with_indexes(conn, definitions))
    print(f"copies and indexes built in {time.perf_counter() - started:.1f} s")
    dsns = {name: with_dbname(admin, db) for name, db in configs.items()}
    shape_plans = {name: plans(d, items) for name, d in dsns.items()}
    prewarm(admin, list(configs.values()))
    stats_dsn = with_dbname(admin, DB + "_stats")
    create_db(admin, DB + "_stats")
    with psycopg.connect(stats_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    uptime("before the replay")
    started = time.perf_counter()
    samples, calls = measure(
        dsns, stats_dsn, items, measure_opts.rounds, measure_opts.reps, measure_opts.target_s, measure_opts.max_calls
    )
    elapsed = time.perf_counter() - started
    print(
        f"interleaved replay: 1 warm-up + {measure_opts.rounds} rounds x {len(configs)} configurations"
        f" ({measure_opts.reps} samples per round for shapes under {REPEAT_UNDER_S} s per block;"
        f" >= {measure_opts.target_s * 1000:.0f} ms of work per sample in the slowest configuration)"
        f" in {elapsed:.0f} s"
    )
    uptime("after the replay")

    def per_call(name: str, shape: Shape, server: bool = False) -> list[float]:
        if server:
            return [(s.server_s or 0.0) / s.calls for s in samples[name][shape.name]]
        return [s.client_s / s.calls for s in samples[name][shape.name]]

    def has_server(shape: Shape) -> bool:
        return all(s.server_s is not None for name in configs for s in samples[name][shape.name])

    totals = {name: sum(shape.weight * statistics.median(per_call(name, shape)) for shape in items) for name in configs}
    goals: dict[str, dict[str, dict[str, list[str]]]] = {}
    for name in configs:
        if name == "none":
            continue
        print()
        print(
            f"{LABELS[name]} ('{name}') against no indexes, per call: medians over paired samples; {name}/none ="
            " median of the per-sample ratios [bootstrap 95 % interval]; client = wall time at the client,"
            " server = pg_stat_statements execution + planning time; verdict client/server: ok when the interval is"
            " <= 1.10, OVER when it is entirely above, ? otherwise"
        )
        print(
            f"{'shape':44} {'w':>3} {'calls':>5} {'n':>3} {'none ms':>8} {name + ' ms':>8}"
            f" {'client ratio':>17} {'server ratio':>17} {'server us/call':>17}  {'plan':9} {'verdict':9}  note"
        )
        found: dict[str, dict[str, list[str]]] = {
            side: {"ok": [], "OVER": [], "?": []} for side in ("client", "server")
        }
        for k, shape in enumerate(items):
            med = {c: statistics.median(per_call(c, shape)) for c in ("none", name)}
            client = paired(per_call(name, shape), per_call("none", shape), seed=k)
            server = (
                paired(per_call(name, shape, True), per_call("none", shape, True), seed=k)
                if has_server(shape)
                else None
            )
            us = (
                (
                    f"{statistics.median(per_call('none', shape, True)) * 1e6:7.1f} ->"
                    f"{statistics.median(per_call(name, shape, True)) * 1e6:8.1f}"
                )
                if server
                else "-"
            )
            marks = {"client": verdict([client]), "server": verdict([server]) if server else "?"}
            for side, mark in marks.items():
                found[side][mark].append(shape.name)
            same = shape_plans[name][shape.name] == shape_plans["none"][shape.name]
            print(
                f"{shape.name:44} {shape.weight:3} {calls[shape.name]:5} {client.n:3} {med['none'] * 1000:8.3f}"
                f" {med[name] * 1000:8.3f} {client.text():>17} {server.text() if server else '-':>17} {us:>17}"
                f"  {'identical' if same else 'changed':9} {marks['client'] + '/' + marks['server']:9}  {shape.note}"
            )
        print(
            f"{'workload (sum of weight x median per call)':44} {'':3} {'':5} {'':3} {totals['none'] * 1000:8.1f}"
            f" {totals[name] * 1000:8.1f} {totals[name] / totals['none']:17.3f}"
        )
        goals[name] = found

    print()

    def reads(c: str, shape: Shape) -> float:
        return sum(x.reads or 0 for x in samples[c][shape.name]) / sum(x.calls for x in samples[c][shape.name])

    print(
        "blocks read from outside shared_buffers per call ("
        + " -> ".join(configs)
        + "), shapes with any: "
        + (
            "; ".join(
                f"{shape.name} " + " -> ".join(f"{reads(c, shape):.3f}" for c in configs)
                for shape in items
                if any(reads(c, shape) for c in configs)
            )
            or "none"
        )
    )
    print(
        f"indexes: hand {len(HAND)} ({sizes['hand'] / 2**20:.1f} MB real), advisor {len(result['indexes'])}"
        f" ({sizes['adv'] / 2**20:.1f} MB real, {result['storage_bytes'] / 2**20:.1f} MB HypoPG estimate)"
        + (
            f", advisor without the write bound {len(free['indexes'])} ({sizes['free'] / 2**20:.1f} MB real)"
            if "free" in sizes
            else ""
        )
    )
    for name in configs:
        if name in ("none", "hand"):
            continue
        print(f"{name} time / hand time: {totals[name] / totals['hand']:.2f} (goal <= 1.25)")
    for name, found in goals.items():
        for side in ("client", "server"):
            over, unclear = found[side]["OVER"], found[side]["?"]
            goal = "holds" if not over and not unclear else "does not hold" if over else "not shown"
            print(
                f"{name}: no shape more than 10 % slower than with no indexes, by {side} time: {goal}"
                f" ({len(found[side]['ok'])} of {len(items)} within; over: {', '.join(over) or 'none'};"
                f" undecided: {', '.join(unclear) or 'none'})"
            )

    with connect(dsn) as conn:
        many = distinct_statements(1000)
        started = time.perf_counter()
        big = advise(conn, Settings(), many)
        elapsed = time.perf_counter() - started
    print(
        f"1,000 distinct statements: {elapsed:.1f} s, {big['whatif_calls']} what-if calls"
        f" ({big['whatif_cache_hits']} cache hits), {big['planned']} planned, {len(big['indexes'])} indexes"
        f" (goal < 30 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
