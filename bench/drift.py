"""Schema drift costs: event-trigger overhead per DDL, baseline capture, drift diff, plan validation.

Usage: ``python bench/drift.py --dsn DSN [--tables N]`` against a sandbox (``asymm sandbox up``);
creates and drops its own databases.  Prints one table; ratios are within this run.

``--soak N [--length L] [--first SEED]``: issue #19's soak instead: N generated DDL sequences of L
mutations each (tests/harness/drift_trip.py, seeded: sequence k uses seed FIRST + k), each planned,
validated on a scratch copy, applied with psql and checked for leftover drift; prints the
failures by stage and the first lines of each.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

from asymm import drift
from asymm.db import with_dbname


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ddl_batch(conn: psycopg.Connection, prefix: str, n: int) -> float:  # type: ignore[type-arg]
    def run() -> None:
        for i in range(n):
            conn.execute(f"CREATE TABLE {prefix}_{i} (id int PRIMARY KEY, v text DEFAULT 'x')".encode())
            conn.execute(f"CREATE INDEX ON {prefix}_{i} (v)".encode())
            conn.execute(f"ALTER TABLE {prefix}_{i} ADD COLUMN w int".encode())

    return timed(run)


def soak(dsn_arg: str, count: int, length: int, first: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' generator
    from tests.harness.drift_trip import RandomChooser, RoundTripFailed, drift_database, generated_round_trip

    failures: collections.Counter[str] = collections.Counter()
    examples: dict[str, tuple[int, str]] = {}
    mutations = 0
    start = time.perf_counter()
    with (
        drift_database(dsn_arg or "dbname=postgres", "asymm_bench_drift_soak") as dsn,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        conn.execute("SET client_min_messages = warning")
        for seed in range(first, first + count):
            try:
                trip = generated_round_trip(dsn, conn, "soak", RandomChooser(seed), length)
                mutations += len(trip.applied)
            except RoundTripFailed as exc:
                headline = f"{exc.stage}: " + str(exc).split("\n", 1)[0].split(": ", 1)[1][:100]
                failures[headline] += 1
                examples.setdefault(headline, (seed, str(exc)))
    elapsed = time.perf_counter() - start
    print(f"{'sequences':<40} {count:>8}")
    print(f"{'mutations per sequence asked / ran':<40} {length:>8} / {mutations / max(count, 1):.1f}")
    print(f"{'failures':<40} {sum(failures.values()):>8}")
    print(f"{'seconds':<40} {elapsed:>8.0f}")
    for headline, n in failures.most_common():
        seed, text = examples[headline]
        print(f"\n{n} x {headline} (first: seed {seed})\n" + "\n".join(text.splitlines()[-12:]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", default="")
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--soak", type=int, default=0, help="run N generated DDL sequences instead")
    parser.add_argument("--length", type=int, default=15)
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args()
    if args.soak:
        soak(args.dsn, args.soak, args.length, args.first)
        return
    name = "asymm_bench_drift"
    with psycopg.connect(args.dsn or "dbname=postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = with_dbname(args.dsn or "dbname=postgres", name)
    rows = []
    n = args.tables
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("CREATE EXTENSION asymm CASCADE")
        conn.execute("ALTER EVENT TRIGGER asymm_drift_ddl_command_end DISABLE")
        conn.execute("ALTER EVENT TRIGGER asymm_drift_sql_drop DISABLE")
        conn.execute("ALTER EVENT TRIGGER asymm_drift_table_rewrite DISABLE")
        off = ddl_batch(conn, "off", n)
        conn.execute("ALTER EVENT TRIGGER asymm_drift_ddl_command_end ENABLE")
        conn.execute("ALTER EVENT TRIGGER asymm_drift_sql_drop ENABLE")
        conn.execute("ALTER EVENT TRIGGER asymm_drift_table_rewrite ENABLE")
        on = ddl_batch(conn, "on", n)
        rows.append((f"{3 * n} DDL statements, event triggers off", off, 1.0))
        rows.append((f"{3 * n} DDL statements, event triggers on", on, on / off))
        objects = drift.capture_baseline(conn, "bench")
        capture = timed(lambda: drift.capture_baseline(conn, "bench"))
        rows.append((f"asymm.baseline() ({objects} objects)", capture, None))
        clean = timed(lambda: drift.drift_items(conn, "bench"))
        rows.append(("asymm.drift(), no drift", clean, None))
        for i in range(0, n, 10):
            conn.execute(f"ALTER TABLE on_{i} DROP COLUMN w".encode())
            conn.execute(f"DROP INDEX on_{i}_v_idx".encode())
        dirty = timed(lambda: drift.drift_items(conn, "bench"))
        rows.append((f"asymm.drift(), {2 * len(range(0, n, 10))} items", dirty, None))
        steps = drift.plan(conn, "bench")
        result: list[drift.Validation] = []
        validate = timed(lambda: result.append(drift.validate_plan(conn, "bench", steps)))
        rows.append((f"plan validation on a scratch copy ({len(steps)} statements, ok={result[0].ok})", validate, None))
    with psycopg.connect(args.dsn or "dbname=postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    print(f"{'measurement':<62} {'seconds':>9} {'ratio':>7}")
    for label, seconds, ratio in rows:
        print(f"{label:<62} {seconds:>9.3f} {'' if ratio is None else f'{ratio:.2f}':>7}")


if __name__ == "__main__":
    main()
