"""Schema drift costs: event-trigger overhead per DDL, baseline capture, drift diff, plan validation.

Usage: ``python bench/drift.py --dsn DSN [--tables N]`` against a sandbox (``asymm sandbox up``);
creates and drops its own databases.  Prints one table; ratios are within this run.
"""

from __future__ import annotations

import argparse
import time

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", default="")
    parser.add_argument("--tables", type=int, default=200)
    args = parser.parse_args()
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
