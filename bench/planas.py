#!/usr/bin/env python3
"""What planning a statement as its author costs: asymm._explain_as against PREPARE + EXPLAIN EXECUTE.

Usage: ``.venv/bin/python bench/planas.py [--dsn DSN] [--rounds 7] [--calls 400]`` against a throwaway
server (``asymm sandbox up``); it creates (and drops) the database ``asymm_bench_planas``.

Until issue 15 the advisor PREPAREd each workload statement in its own session and EXPLAINed it
there, as the caller: code the statement's author planted (an IMMUTABLE function folded at plan
time) ran with the caller's rights.  Now every plan goes through asymm._explain_as, which parses,
analyses and plans the text as its author inside a security-restricted operation, each call anew.
This measures the price per plan, on the same connection, in interleaved rounds (A B A B ...), for
a one-table lookup and a three-table join, generic (no parameter values) and custom (with values),
and with a HypoPG hypothetical index present (the advisor's situation).  Three ways: *old*, PREPARE +
EXPLAIN EXECUTE + DEALLOCATE per plan; *kept*, the old best case, one EXPLAIN EXECUTE of a statement
PREPAREd once (a generic plan is then cached and not even re-planned, so "kept generic" is a lower
bound the advisor never reached: it re-PREPAREd after each hypothetical-index change); *new*, one
asymm._explain_as call.  Printed: median microseconds per plan and the ratios (median of rounds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from asymm.db import connect, resolve_dsn, with_dbname

DB = "asymm_bench_planas"
SCHEMA = """
CREATE EXTENSION IF NOT EXISTS asymm CASCADE;
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE public.customers (id int PRIMARY KEY, email text, country text);
CREATE TABLE public.orders (id int PRIMARY KEY, customer int REFERENCES public.customers, total numeric,
                            placed date);
CREATE TABLE public.items (order_id int REFERENCES public.orders, sku int, qty int);
INSERT INTO public.customers SELECT g, 'c' || g || '@x', (ARRAY['fr','de','us'])[1 + g % 3]
  FROM generate_series(1, 20000) g;
INSERT INTO public.orders SELECT g, 1 + g % 20000, g % 500, date '2024-01-01' + g % 700
  FROM generate_series(1, 100000) g;
INSERT INTO public.items SELECT 1 + g % 100000, g % 5000, 1 + g % 4 FROM generate_series(1, 200000) g;
ANALYZE;
"""
STATEMENTS = {
    "lookup": (
        "SELECT * FROM public.orders WHERE customer = $1 AND placed > $2",
        ["integer", "date"],
        ["42", "'2024-06-01'"],
    ),
    "join": (
        "SELECT c.country, sum(i.qty) FROM public.customers c JOIN public.orders o ON o.customer = c.id"
        " JOIN public.items i ON i.order_id = o.id WHERE c.email = $1 GROUP BY c.country",
        ["text"],
        ["'c7@x'"],
    ),
}


def old_way(conn: psycopg.Connection[Any], text: str, types: list[str], values: list[str] | None) -> None:
    """The advisor before: PREPARE in the caller's session, EXPLAIN EXECUTE, DEALLOCATE."""
    mode = "force_custom_plan" if values else "force_generic_plan"
    conn.execute(f"SET plan_cache_mode = {mode}")
    conn.execute(f"PREPARE bench_old ({', '.join(types)}) AS {text}")
    args = values if values else ["NULL"] * len(types)
    conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE bench_old ({', '.join(args)})").fetchone()
    conn.execute("DEALLOCATE bench_old")


def old_explain_only(conn: psycopg.Connection[Any], types: list[str], values: list[str] | None) -> None:
    """The advisor before, best case: the statement PREPAREd once (bench_kept), one EXPLAIN EXECUTE."""
    args = values if values else ["NULL"] * len(types)
    conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE bench_kept ({', '.join(args)})").fetchone()


def new_way(conn: psycopg.Connection[Any], text: str, types: list[str], values: list[str] | None) -> None:
    """Now: one call, planned as the author (here the caller itself) in a security-restricted operation."""
    conn.execute(
        "SELECT asymm._explain_as(current_user::regrole::oid, %s, %s, %s, false, NULL)", (text, types, values)
    ).fetchone()


def timed(fn: Callable[[], None], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=None, help="admin DSN (default: $ASYMM_DSN / PG* variables)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=400, help="plans per case per round")
    args = parser.parse_args()
    admin = resolve_dsn(args.dsn)
    with connect(admin) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    try:
        with psycopg.connect(with_dbname(admin, DB), autocommit=True) as conn:
            conn.execute(SCHEMA)
            conn.execute("SELECT * FROM public.hypopg_create_index('CREATE INDEX ON public.orders (customer)')")
            print(
                f"{'case':<16} {'old us':>7} {'kept us':>7} {'new us':>7} {'new/old':>8} {'new/kept':>8}"
                "  new/kept per round"
            )
            for name, (text, types, values) in STATEMENTS.items():
                for kind, vals in (("generic", None), ("custom", values)):
                    mode = "force_custom_plan" if vals else "force_generic_plan"
                    olds, kepts, news, vs_old, vs_kept = [], [], [], [], []
                    for _ in range(args.rounds):
                        o = timed(lambda t=text, ty=types, v=vals: old_way(conn, t, ty, v), args.calls)
                        conn.execute(f"SET plan_cache_mode = {mode}")
                        conn.execute(f"PREPARE bench_kept ({', '.join(types)}) AS {text}")
                        k = timed(lambda ty=types, v=vals: old_explain_only(conn, ty, v), args.calls)
                        conn.execute("DEALLOCATE bench_kept")
                        n = timed(lambda t=text, ty=types, v=vals: new_way(conn, t, ty, v), args.calls)
                        olds.append(o)
                        kepts.append(k)
                        news.append(n)
                        vs_old.append(n / o)
                        vs_kept.append(n / k)
                    print(
                        f"{name + ' ' + kind:<16} {statistics.median(olds):7.0f} {statistics.median(kepts):7.0f}"
                        f" {statistics.median(news):7.0f} {statistics.median(vs_old):8.2f}"
                        f" {statistics.median(vs_kept):8.2f}  {' '.join(f'{r:.2f}' for r in vs_kept)}"
                    )
    finally:
        with connect(admin) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))


if __name__ == "__main__":
    sys.exit(main())
