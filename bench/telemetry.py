"""Telemetry benchmark: the cost of one snapshot tick, and history storage per day.

Setup: a fresh database with 5,000 distinct statements in pg_stat_statements (100 tables x 50
columns, ``SELECT cN FROM tM WHERE id = $1``), 500 of them active between ticks.
Measured in the same run (client-side wall time over a local socket, and the server backend's
CPU time from /proc/<pid>/schedstat, medians of the ticks):

* the floor: ``SELECT count(*) FROM pg_stat_statements(false)`` (reading the view);
* one ``asymm.snapshot()`` tick with 500 moved entries, and a quiet tick (nothing moved);
* storage: bytes per raw sample row (heap + BRIN, measured), extrapolated to 500 active
  statements at 4.909 Hz for a day; the per-minute rollup likewise at 500 x 1440 rows/day.

Usage: ``python bench/telemetry.py`` against ASYMM_DSN / PG* (an asymm sandbox); goal: tick <= 3x
the floor and <= 15 ms.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import psycopg
from psycopg import sql

from asymm.db import connect, resolve_dsn, with_dbname

TABLES, COLUMNS, ACTIVE, TICKS, HZ = 100, 50, 500, 40, 4.909


def backend_cpu_ms(pid: int) -> float:
    """CPU time the server process has used (Linux schedstat, ns): less sensitive than wall time
    to other jobs on a shared machine, so the ratio is also given in CPU time."""
    with open(f"/proc/{pid}/schedstat") as handle:
        return int(handle.read().split()[0]) / 1e6


def timed(conn: psycopg.Connection[tuple[object, ...]], query: str, pid: int) -> tuple[float, float]:
    """(wall ms, CPU ms of the backend) of one statement."""
    cpu_before = backend_cpu_ms(pid)
    started = time.perf_counter()
    conn.execute(query).fetchall()
    return (time.perf_counter() - started) * 1000, backend_cpu_ms(pid) - cpu_before


def main() -> None:
    admin = resolve_dsn(None)
    name = "asymm_bench_telemetry"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = with_dbname(admin, name)
    try:
        run(dsn)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run(dsn: str) -> None:
    statements = [
        f"SELECT c{c} FROM t{t} WHERE id = $1"  # noqa: S608 (our own identifiers)
        for t in range(TABLES)
        for c in range(COLUMNS)
    ]
    with connect(dsn) as ctl, connect(dsn, observed=True, application_name="bench") as app:
        dev_sql = os.environ.get("ASYMM_BENCH_INSTALL_SQL")  # developing: load sources, not the extension
        if dev_sql:
            ctl.execute(Path(dev_sql).read_text())  # type: ignore[call-overload]
        else:
            ctl.execute("CREATE EXTENSION asymm CASCADE")
        cols = ", ".join(f"c{c} int" for c in range(COLUMNS))
        for t in range(TABLES):
            ctl.execute(f"CREATE TABLE t{t} (id int PRIMARY KEY, {cols})")
        ctl.execute("SELECT pg_stat_statements_reset()")
        with app.pipeline():
            for text in statements:
                app.execute(text.replace("$1", "%s"), (1,), prepare=False)
        entries = ctl.execute("SELECT count(*) FROM pg_stat_statements(false)").fetchone()[0]  # type: ignore[index]
        ctl.execute("SELECT asymm.snapshot()")  # baseline
        ctl.execute("SELECT asymm.snapshot()")  # texts of the statements new since the baseline

        pid = int(ctl.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index,call-overload]
        floor, tick, quiet, written = [], [], [], []
        floor_cpu, tick_cpu, quiet_cpu = [], [], []
        for i in range(TICKS):
            active = statements[(i * ACTIVE) % len(statements) :][:ACTIVE]
            with app.pipeline():
                for text in active:
                    app.execute(text.replace("$1", "%s"), (i,), prepare=False)
            wall, cpu = timed(ctl, "SELECT count(*) FROM pg_stat_statements(false)", pid)
            floor.append(wall)
            floor_cpu.append(cpu)
            cpu_before = backend_cpu_ms(pid)
            started = time.perf_counter()
            result = ctl.execute("SELECT asymm.snapshot()").fetchone()[0]  # type: ignore[index]
            tick.append((time.perf_counter() - started) * 1000)
            tick_cpu.append(backend_cpu_ms(pid) - cpu_before)
            written.append(result["written"])  # type: ignore[index]
            wall, cpu = timed(ctl, "SELECT asymm.snapshot()", pid)
            quiet.append(wall)
            quiet_cpu.append(cpu)

        raw_rows, raw_bytes = ctl.execute(
            "SELECT count(*), (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits"
            "                  WHERE inhparent = 'asymm.query_stats'::regclass) FROM asymm.query_stats"
        ).fetchone()  # type: ignore[misc]
        # per-minute rollup rows: synthesise a day's worth for 500 statements, then measure
        ctl.execute("""INSERT INTO asymm.query_stats_minute
                       SELECT date_trunc('minute', now()) - m * interval '1 minute', q, 300, 12.5, 300, 900, 3,
                              0.2, 295, 1, 10
                         FROM generate_series(0, 1439) m, generate_series(1, 500) q
                        WHERE date_trunc('minute', now()) - m * interval '1 minute' >= date_trunc('day', now())""")
        minute_rows, minute_bytes = ctl.execute(
            "SELECT count(*), (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits"
            " WHERE inhparent = 'asymm.query_stats_minute'::regclass)"
            " FROM asymm.query_stats_minute"
        ).fetchone()  # type: ignore[misc]
        text_bytes = ctl.execute(
            "SELECT pg_total_relation_size('asymm.queries') + pg_total_relation_size('asymm.query_counters')"
        ).fetchone()[0]  # type: ignore[index]

    med = statistics.median
    p95 = lambda xs: sorted(xs)[int(0.95 * (len(xs) - 1))]  # noqa: E731
    raw_per_row = float(raw_bytes) / float(raw_rows)
    minute_per_row = float(minute_bytes) / max(float(minute_rows), 1.0)
    raw_day = raw_per_row * ACTIVE * HZ * 86400 / 1e6
    minute_day = minute_per_row * ACTIVE * 1440 / 1e6
    print(
        f"pg_stat_statements entries: {entries}; active per tick: {ACTIVE}; ticks: {TICKS}; "
        f"rows written per tick (median): {med(written)}"
    )
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"{'measure':<52} {'median ms':>10} {'p95 ms':>8} {'CPU ms':>8}")
    label = "floor: SELECT count(*) FROM pg_stat_statements(false)"
    print(f"{label:<52} {med(floor):>10.2f} {p95(floor):>8.2f} {med(floor_cpu):>8.2f}")
    print(f"{'snapshot tick, 500 moved':<52} {med(tick):>10.2f} {p95(tick):>8.2f} {med(tick_cpu):>8.2f}")
    print(f"{'snapshot tick, nothing moved':<52} {med(quiet):>10.2f} {p95(quiet):>8.2f} {med(quiet_cpu):>8.2f}")
    print(
        f"ratio tick/floor (medians): {med(tick) / med(floor):.2f}x wall, "
        f"{med(tick_cpu) / med(floor_cpu):.2f}x backend CPU  (goal <= 3x and <= 15 ms)"
    )
    print(
        f"raw sample: {raw_per_row:.1f} bytes/row (heap+BRIN) -> {raw_day:,.0f} MB/day "
        f"for {ACTIVE} active statements at {HZ} Hz"
    )
    print(
        f"per-minute rollup: {minute_per_row:.1f} bytes/row -> {minute_day:,.1f} MB/day "
        f"(30 days: {30 * minute_day:,.0f} MB)"
    )
    print(f"query texts + last counters for {entries} entries: {float(text_bytes) / 1e6:.2f} MB (once, not per day)")


if __name__ == "__main__":
    main()
