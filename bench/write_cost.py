#!/usr/bin/env python3
"""What one more index costs a single-row write: the calibration of the advisor's write bound.

Usage: ``.venv/bin/python bench/write_cost.py [--dsn DSN]`` against a throwaway server (``asymm
sandbox up``); it creates (and at the end drops) database ``asymm_bench_write_cost``.

Five copies of one table (200,000 rows, all in shared_buffers), with 0 to 4 extra btree indexes
on random-valued integer columns besides the primary key and ``(v)``.  Three statements run in
every copy, interleaved block by block (the copies' order cycles from block to block):
``INSERT`` of one row, an UPDATE by primary key that sets ``v`` (never HOT: ``v`` is indexed
everywhere) and one that sets ``note`` (HOT when the page has room; the extra indexes are only
opened).  Per call it reports the client's wall time and the server's execution time
(pg_stat_statements), and fits ``time = a + b x extra indexes``: ``b`` of the non-HOT statements
is what an index entry costs, ``a`` minus the server time is the per-statement cost outside the
executor (round trip, protocol, commit).  ``selection.Options.index_entry_ms`` and
``statement_overhead_ms`` come from these numbers.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import Any

import psycopg
from psycopg import sql

from asymm.db import resolve_dsn, with_dbname

DB = "asymm_bench_write_cost"
ROWS = 200_000
EXTRA = ["a", "b", "c", "d"]
STATEMENTS = {
    "insert": "INSERT INTO {t} (id, v, a, b, c, d) VALUES (%s, %s, %s, %s, %s, %s)",
    "update, not HOT": "UPDATE {t} SET v = v + 1 WHERE id = %s",
    "update, HOT": "UPDATE {t} SET note = %s WHERE id = %s",
}


def setup(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    for k in range(len(EXTRA) + 1):
        t = sql.Identifier(f"t{k}")
        # fillfactor 70: room on every page, so that the HOT update stays HOT
        conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v int NOT NULL, a int, b int, c int, d int,"
                             " note text) WITH (fillfactor = 70)").format(t))
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, g * 7919 %% 1000003, g * 31 %% 1000003, g * 131 %% 1000003,"
                             " g * 517 %% 1000003, g * 1031 %% 1000003, 'x' FROM generate_series(1, %s) g")
                     .format(t), (ROWS,))
        conn.execute(sql.SQL("CREATE INDEX ON {} (v)").format(t))
        for col in EXTRA[:k]:
            conn.execute(sql.SQL("CREATE INDEX ON {} ({})").format(t, sql.Identifier(col)))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(t))
    conn.execute("SELECT sum(pg_prewarm(c.oid)) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
                 " AND c.relkind IN ('r', 'i')")


def server(conn: psycopg.Connection[Any]) -> tuple[float, int]:
    row = conn.execute("SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(calls), 0)"
                       " FROM pg_stat_statements WHERE query ~ '^(INSERT|UPDATE) ' AND dbid ="
                       " (SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()
    assert row is not None
    return float(row[0]), int(row[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--calls", type=int, default=1000, help="calls per block")
    args = parser.parse_args()
    admin = resolve_dsn(args.dsn)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    dsn = with_dbname(admin, DB)
    try:
        with open("/proc/loadavg") as f:
            print(f"load average before: {' '.join(f.read().split()[:3])}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            setup(conn)
        run(dsn, args.samples, args.calls)
        with open("/proc/loadavg") as f:
            print(f"load average after: {' '.join(f.read().split()[:3])}")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
    return 0


def run(dsn: str, samples: int, calls: int) -> None:
    copies = list(range(len(EXTRA) + 1))
    # server times are read on a second connection; the statement filter leaves its own reads out
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as stats:
        conn.execute("SET pg_stat_statements.track_planning = off")
        next_id = {k: ROWS + 1 for k in copies}
        out: dict[str, dict[int, list[tuple[float, float]]]] = {s: {k: [] for k in copies} for s in STATEMENTS}
        rng = random.Random(1)
        for sample in range(samples + 1):  # the first one warms up
            for s_no, (label, text) in enumerate(STATEMENTS.items()):
                ids = [rng.randint(1, ROWS) for _ in range(calls)]
                order = copies[(sample + s_no) % len(copies):] + copies[:(sample + s_no) % len(copies)]
                if sample % 2:
                    order.reverse()
                for k in order:
                    query = text.format(t=f"t{k}")
                    params: list[tuple[Any, ...]]
                    if label == "insert":
                        params = [(next_id[k] + j, *(rng.randint(1, 1_000_000) for _ in range(5)))
                                  for j in range(calls)]
                        next_id[k] += calls
                    elif label == "update, HOT":
                        params = [(f"n{j % 7}", i) for j, i in enumerate(ids)]
                    else:
                        params = [(i,) for i in ids]
                    before = server(stats)
                    started = time.perf_counter()
                    for p in params:
                        conn.execute(query, p)
                    elapsed = time.perf_counter() - started
                    after = server(stats)
                    if sample and after[1] - before[1] == calls:
                        out[label][k].append((elapsed * 1000 / calls, (after[0] - before[0]) / calls))
    print(f"{samples} samples x {calls} calls per statement and copy; ms per call, median"
          f" (extra indexes besides the primary key and (v))")
    print(f"{'statement':18} {'':6}" + "".join(f" {k:>7}" for k in copies) + "   fit a + b x k: a, b (b / a)")
    for label in STATEMENTS:
        for side, pos in (("client", 0), ("server", 1)):
            meds = [statistics.median(x[pos] for x in out[label][k]) for k in copies]
            b, a = _fit(copies, meds)
            print(f"{label:18} {side:6}" + "".join(f" {m:7.4f}" for m in meds) + f"   {a:.4f}, {b:.4f} ({b / a:.3f})")
    overhead = [statistics.median(x[0] - x[1] for x in out[label][0]) for label in STATEMENTS]
    print("client - server per call with no extra index (outside the executor): "
          + ", ".join(f"{label} {o:.4f}" for label, o in zip(STATEMENTS, overhead, strict=True)) + " ms")


def _fit(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


if __name__ == "__main__":
    sys.exit(main())
