#!/usr/bin/env python3
"""What one more index costs a single-row write: the calibration of the advisor's write bound.

Usage: ``.venv/bin/python bench/write_cost.py [--dsn DSN]`` against a throwaway server (``asymm
sandbox up``); it creates (and at the end drops) database ``asymm_bench_write_cost``.

Five copies of one table (200,000 rows, all in shared_buffers), with 0 to 4 extra btree indexes
on random-valued integer columns besides the primary key and ``(v)``.  With ``--methods
btree,brin``, four more copies with 1 to 4 extra BRIN indexes (default ``pages_per_range``) on
columns that grow with the physical order, as an append-only timestamp does (inserts bring the
next values): what a BRIN costs a written row is not a btree entry.  A row whose value its block
range's summary already covers costs a revmap lookup and no write; one beyond it widens the
summary in place; one on pages past the last summarized range costs nothing until VACUUM
summarizes them (``--brin-summarize`` summarizes before every block, so that every inserted row
widens a summary: the worst case).  ``--fillfactor 100`` makes the pages full, as in a freshly loaded table: a
non-HOT update then moves the row version to another page (in the pre-issue-18 ``bench/advisor.py``'s ``orders``
it does).  Three statements run in
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


def copies_for(methods: list[str]) -> list[tuple[str, str, int]]:
    """(table, method, extra indexes): one copy with none, then 1..4 extra per method."""
    out = [("t0", methods[0], 0)]
    for method in methods:
        prefix = "t" if method == "btree" else method[0]
        out += [(f"{prefix}{k}", method, k) for k in range(1, len(EXTRA) + 1)]
    return out


def setup(conn: psycopg.Connection[Any], copies: list[tuple[str, str, int]], fillfactor: int) -> None:
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    for name, method, k in copies:
        t = sql.Identifier(name)
        # fillfactor 70 (default): room on every page, so that the HOT update stays HOT
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id int PRIMARY KEY, v int NOT NULL, a int, b int, c int, d int,"
                " note text) WITH (fillfactor = {})"
            ).format(t, sql.Literal(fillfactor))
        )
        if method == "brin":  # a..d grow with the physical order (an append-only timestamp)
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} SELECT g, g * 7919 %% 1000003, g, 2 * g, 3 * g, 4 * g, 'x'"
                    " FROM generate_series(1, %s) g"
                ).format(t),
                (ROWS,),
            )
        else:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} SELECT g, g * 7919 %% 1000003, g * 31 %% 1000003,"
                    " g * 131 %% 1000003, g * 517 %% 1000003, g * 1031 %% 1000003, 'x'"
                    " FROM generate_series(1, %s) g"
                ).format(t),
                (ROWS,),
            )
        conn.execute(sql.SQL("CREATE INDEX ON {} (v)").format(t))
        for col in EXTRA[:k]:
            conn.execute(sql.SQL("CREATE INDEX ON {} USING {} ({})").format(t, sql.SQL(method), sql.Identifier(col)))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(t))
    conn.execute(
        "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
        " AND c.relkind IN ('r', 'i')"
    )


def server(conn: psycopg.Connection[Any]) -> tuple[float, int]:
    row = conn.execute(
        "SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(calls), 0)"
        " FROM pg_stat_statements WHERE query ~ '^(INSERT|UPDATE) ' AND dbid ="
        " (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    assert row is not None
    return float(row[0]), int(row[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--calls", type=int, default=1000, help="calls per block")
    parser.add_argument("--methods", default="btree", help="comma-separated: btree, brin (extra index methods)")
    parser.add_argument("--fillfactor", type=int, default=70, help="of every copy (100: full pages)")
    parser.add_argument(
        "--brin-summarize",
        action="store_true",
        help="summarize new BRIN ranges before every block: each row then lands in a"
        " summarized range, and an inserted one widens its summary (the worst case)",
    )
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or set(methods) - {"btree", "brin"}:
        parser.error("--methods: btree and/or brin")
    copies = copies_for(methods)
    admin = resolve_dsn(args.dsn)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    dsn = with_dbname(admin, DB)
    try:
        with open("/proc/loadavg") as f:
            print(f"load average before: {' '.join(f.read().split()[:3])}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            setup(conn, copies, args.fillfactor)
        print(
            f"fillfactor {args.fillfactor}; extra index methods: {', '.join(methods)}"
            + ("; new BRIN ranges summarized before every block" if args.brin_summarize else "")
        )
        run(dsn, copies, args.samples, args.calls, args.brin_summarize)
        with open("/proc/loadavg") as f:
            print(f"load average after: {' '.join(f.read().split()[:3])}")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
    return 0


def run(dsn: str, copy_list: list[tuple[str, str, int]], samples: int, calls: int, summarize: bool = False) -> None:
    copies = list(range(len(copy_list)))
    # server times are read on a second connection; the statement filter leaves its own reads out
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as stats:
        conn.execute("SET pg_stat_statements.track_planning = off")
        next_id = {k: ROWS + 1 for k in copies}
        out: dict[str, dict[int, list[tuple[float, float]]]] = {s: {k: [] for k in copies} for s in STATEMENTS}
        rng = random.Random(1)
        for sample in range(samples + 1):  # the first one warms up
            for s_no, (label, text) in enumerate(STATEMENTS.items()):
                ids = [rng.randint(1, ROWS) for _ in range(calls)]
                order = copies[(sample + s_no) % len(copies) :] + copies[: (sample + s_no) % len(copies)]
                if sample % 2:
                    order.reverse()
                for k in order:
                    name, method, _ = copy_list[k]
                    query = text.format(t=name)
                    params: list[tuple[Any, ...]]
                    if label == "insert" and method == "brin":  # the next values of a..d
                        params = [
                            (next_id[k] + j, rng.randint(1, 1_000_000), *((m + 1) * (next_id[k] + j) for m in range(4)))
                            for j in range(calls)
                        ]
                        next_id[k] += calls
                    elif label == "insert":
                        params = [
                            (next_id[k] + j, *(rng.randint(1, 1_000_000) for _ in range(5))) for j in range(calls)
                        ]
                        next_id[k] += calls
                    elif label == "update, HOT":
                        params = [(f"n{j % 7}", i) for j, i in enumerate(ids)]
                    else:
                        params = [(i,) for i in ids]
                    if summarize and method == "brin":  # the rows to come land in a summarized range
                        stats.execute(
                            sql.SQL(
                                "SELECT brin_summarize_new_values(i.indexrelid) FROM pg_index i"
                                " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am"
                                " ON am.oid = c.relam WHERE am.amname = 'brin'"
                                " AND i.indrelid = {}::regclass"
                            ).format(sql.Literal(name))
                        )
                    before = server(stats)
                    started = time.perf_counter()
                    for p in params:
                        conn.execute(query, p)
                    elapsed = time.perf_counter() - started
                    after = server(stats)
                    if sample and after[1] - before[1] == calls:
                        out[label][k].append((elapsed * 1000 / calls, (after[0] - before[0]) / calls))
    print(
        f"{samples} samples x {calls} calls per statement and copy; ms per call, median"
        f" (extra indexes besides the primary key and (v))"
    )
    methods = list(dict.fromkeys(method for _, method, _ in copy_list))
    for method in methods:
        # the copy with no extra index, then this method's copies with 1..4
        group = [0] + [k for k in copies if copy_list[k][1] == method and copy_list[k][2] > 0]
        extras = [copy_list[k][2] for k in group]
        print(
            f"{method + ' ' + 'statement':24} {'':6}"
            + "".join(f" {e:>7}" for e in extras)
            + "   fit a + b x k: a, b (b / a)"
        )
        for label in STATEMENTS:
            for side, pos in (("client", 0), ("server", 1)):
                meds = [statistics.median(x[pos] for x in out[label][k]) for k in group]
                b, a = _fit(extras, meds)
                print(
                    f"{label:24} {side:6}" + "".join(f" {m:7.4f}" for m in meds) + f"   {a:.4f}, {b:.4f} ({b / a:.3f})"
                )
    overhead = [statistics.median(x[0] - x[1] for x in out[label][0]) for label in STATEMENTS]
    print(
        "client - server per call with no extra index (outside the executor): "
        + ", ".join(f"{label} {o:.4f}" for label, o in zip(STATEMENTS, overhead, strict=True))
        + " ms"
    )


def _fit(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


if __name__ == "__main__":
    sys.exit(main())
