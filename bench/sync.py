"""Redis sync benchmark: capture cost, commit-to-Redis lag, sync throughput.

Usage (against a database that has the asymm extension, and a Redis):
    .venv/bin/python bench/sync.py --dsn "$ASYMM_DSN" --redis-url "$ASYMM_REDIS_URL"

Measures, in one run:
* pgbench simple-update (-N) TPS with pgbench_accounts tracked vs untracked (capture triggers
  enabled vs disabled, alternating rounds, the daemon running throughout);
* a 200,000-row INSERT ... SELECT into a tracked vs an untracked table (daemon stopped: capture cost only);
* commit-to-Redis lag p50/p99 at ~1,000 single-row transactions/s (Redis keyspace notifications
  timestamp the arrival of each write);
* sync throughput: rows/s from the commit of the 200k-row INSERT to the last key in Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import redis

ASYMM = str(Path(sys.executable).with_name("asymm"))


def pgbench_bin() -> str:
    return shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"


def settled(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT (SELECT count(*) FROM asymm.sync_outbox o, asymm.sync_state s"
                       " WHERE o.xid >= s.position AND o.rel <> 0),"
                       " (SELECT count(*) FROM asymm.sync_tables WHERE backfill_state <> 'done')").fetchone()
    return row == (0, 0)


def wait_settled(conn: psycopg.Connection[Any], timeout: float = 600) -> float:
    start = time.monotonic()
    while not settled(conn):
        if time.monotonic() - start > timeout:
            raise TimeoutError("sync did not settle")
        time.sleep(0.01)
    return time.monotonic() - start


def start_daemon(dsn: str, redis_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([ASYMM, "daemon", "--dsn", dsn, "--redis-url", redis_url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def pgbench_tps(dsn: str, seconds: int, clients: int) -> float:
    out = subprocess.run([pgbench_bin(), "-N", "-M", "prepared", "-n", "-c", str(clients), "-j", "2",
                          "-T", str(seconds), dsn], capture_output=True, text=True, check=True).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def bench_pgbench(dsn: str, conn: psycopg.Connection[Any], rounds: int, seconds: int, clients: int) -> dict[str, float]:
    subprocess.run([pgbench_bin(), "-i", "-q", "-s", "5", dsn], capture_output=True, check=True)
    conn.execute("SELECT asymm.track('pgbench_accounts')")
    wait_settled(conn)
    tracked, untracked = [], []
    for _ in range(rounds):
        conn.execute("ALTER TABLE pgbench_accounts DISABLE TRIGGER USER")
        untracked.append(pgbench_tps(dsn, seconds, clients))
        conn.execute("ALTER TABLE pgbench_accounts ENABLE TRIGGER USER")
        tracked.append(pgbench_tps(dsn, seconds, clients))
        wait_settled(conn)
    return {"untracked_tps": statistics.median(untracked), "tracked_tps": statistics.median(tracked)}


def bench_bulk(dsn: str, redis_url: str, conn: psycopg.Connection[Any], rows: int, reps: int) -> dict[str, float]:
    for name in ("bulk_plain", "bulk_tracked"):
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, a int, b text, c timestamptz)")
    conn.execute("SELECT asymm.track('bulk_tracked')")
    daemon = start_daemon(dsn, redis_url)
    wait_settled(conn)
    stop_daemon(daemon)  # capture cost alone: nothing else competes for the CPU
    times: dict[str, list[float]] = {"bulk_plain": [], "bulk_tracked": []}
    for _ in range(reps):
        for name in ("bulk_plain", "bulk_tracked"):
            conn.execute(f"TRUNCATE {name}")
            started = time.perf_counter()
            conn.execute(f"INSERT INTO {name} SELECT g, g %% 1000, md5(g::text), now()"  # noqa: S608
                         " FROM generate_series(1, %s) g", (rows,))
            times[name].append(time.perf_counter() - started)
    # throughput: the last tracked insert's rows, from commit to the last key in Redis
    daemon = start_daemon(dsn, redis_url)
    try:
        conn.execute("SELECT asymm.sync_backfill('bulk_tracked')")  # start from a known state
        wait_settled(conn)
        conn.execute("TRUNCATE bulk_tracked")
        wait_settled(conn)
        conn.execute("INSERT INTO bulk_tracked SELECT g, g %% 1000, md5(g::text), now() FROM generate_series(1, %s) g",
                     (rows,))
        sync_s = wait_settled(conn)
    finally:
        stop_daemon(daemon)
    return {"plain_s": statistics.median(times["bulk_plain"]), "tracked_s": statistics.median(times["bulk_tracked"]),
            "sync_rows_per_s": rows / sync_s, "sync_s": sync_s}


def bench_lag(dsn: str, redis_url: str, conn: psycopg.Connection[Any], rate: float, seconds: float) -> dict[str, float]:
    conn.execute("DROP TABLE IF EXISTS lagtest")
    conn.execute("CREATE TABLE lagtest (id int PRIMARY KEY, seq bigint NOT NULL)")
    conn.execute("INSERT INTO lagtest SELECT g, 0 FROM generate_series(0, 99) g")
    conn.execute("SELECT asymm.track('lagtest')")
    client = redis.Redis.from_url(redis_url)
    client.config_set("notify-keyspace-events", "Kh")
    daemon = start_daemon(dsn, redis_url)
    seen: dict[int, float] = {}
    committed: dict[int, float] = {}
    stop = threading.Event()

    def listen() -> None:
        sub = redis.Redis.from_url(redis_url)
        pubsub = sub.pubsub()
        pubsub.psubscribe("__keyspace@*__:asymm:{public.lagtest}:*")
        reader = redis.Redis.from_url(redis_url)
        while not stop.is_set():
            msg = pubsub.get_message(timeout=0.1)
            if not msg or msg["type"] != "pmessage":
                continue
            now = time.monotonic()
            key = msg["channel"].decode().split("__:", 1)[1]
            data = reader.hget(key, "d")
            if data:
                seq = int(json.loads(data)["seq"])
                seen.setdefault(seq, now)
        pubsub.close()

    try:
        wait_settled(conn)
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(0.3)
        writer = psycopg.connect(dsn, autocommit=True)
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            n += 1
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            writer.execute("UPDATE lagtest SET seq = %s WHERE id = %s", (n, n % 100))
            committed[n] = time.monotonic()
        elapsed = time.monotonic() - start
        wait_settled(conn)
        time.sleep(0.3)
        stop.set()
        listener.join(timeout=5)
        writer.close()
    finally:
        stop_daemon(daemon)
        client.close()
    # a key overwritten before the worker got to it shows only its last value: those are skipped
    lags = sorted(max(0.0, seen[s] - committed[s]) * 1000 for s in committed if s in seen)
    return {"tx_per_s": n / elapsed, "samples": len(lags),
            "p50_ms": lags[len(lags) // 2], "p99_ms": lags[int(len(lags) * 0.99)], "max_ms": lags[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("ASYMM_DSN", ""))
    parser.add_argument("--redis-url", default=os.environ.get("ASYMM_REDIS_URL", ""))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    conn = psycopg.connect(args.dsn, autocommit=True)
    redis.Redis.from_url(args.redis_url).flushdb()
    bulk = bench_bulk(args.dsn, args.redis_url, conn, args.rows, reps=3)
    lag = bench_lag(args.dsn, args.redis_url, conn, rate=1000, seconds=6)
    daemon = start_daemon(args.dsn, args.redis_url)
    try:
        pgb = bench_pgbench(args.dsn, conn, args.rounds, args.seconds, args.clients)
    finally:
        stop_daemon(daemon)
    rows = [
        ("pgbench -N TPS untracked / tracked", f"{pgb['untracked_tps']:.0f} / {pgb['tracked_tps']:.0f}",
         f"{pgb['tracked_tps'] / pgb['untracked_tps'] * 100:.1f} % (target >= 95 %)"),
        (f"INSERT ... SELECT {args.rows} rows untracked / tracked",
         f"{bulk['plain_s']:.3f} s / {bulk['tracked_s']:.3f} s",
         f"{bulk['tracked_s'] / bulk['plain_s']:.2f}x (target <= 1.5x)"),
        (f"lag at {lag['tx_per_s']:.0f} tx/s ({lag['samples']} samples) p50 / p99 / max",
         f"{lag['p50_ms']:.1f} / {lag['p99_ms']:.1f} / {lag['max_ms']:.1f} ms", "target p50 <= 10, p99 <= 100 ms"),
        (f"sync throughput ({args.rows} rows, commit to last key)", f"{bulk['sync_rows_per_s']:.0f} rows/s",
         f"{bulk['sync_s']:.2f} s (target >= 20,000 rows/s)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'result':<28}  ratio / target")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:<28}  {note}")


if __name__ == "__main__":
    main()
