"""Redis sync benchmark: capture cost, commit-to-Redis lag, sync throughput.

Usage (against any database of a PostgreSQL where asymm is installed, and a Redis; the script
runs CREATE EXTENSION IF NOT EXISTS asymm CASCADE itself):
    .venv/bin/python bench/sync.py --dsn "$ASYMM_DSN" --redis-url "$ASYMM_REDIS_URL"

Measures, in one run:
* pgbench simple-update (-N) TPS with pgbench_accounts tracked vs untracked (capture triggers
  enabled vs disabled, interleaved rounds alternating which goes first, the daemon running in both
  variants; medians, per-round ratios and the load average are printed), and the sync's CPU
  per synced change (daemon, its backends and redis-server, less the same in the untracked rounds);
* a 200,000-row INSERT ... SELECT into a tracked vs an untracked table (daemon stopped: capture cost only);
* commit-to-Redis lag p50/p99 at 1,000 single-row transactions/s (pgbench --rate; Redis keyspace
  notifications timestamp the arrival of each write);
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
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import redis
from sync_cpu import proc_cpu  # (bench/ is the script's directory, on sys.path)

ASYMM = str(Path(sys.executable).with_name("asymm"))


def pgbench_bin() -> str:
    return shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"


def settled(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM asymm.sync_outbox o, asymm.sync_state s"
        " WHERE o.xid >= s.position AND o.rel <> 0),"
        " (SELECT count(*) FROM asymm.sync_tables WHERE backfill_state <> 'done')"
    ).fetchone()
    return row == (0, 0)


def wait_settled(conn: psycopg.Connection[Any], timeout: float = 600) -> float:
    start = time.monotonic()
    while not settled(conn):
        if time.monotonic() - start > timeout:
            raise TimeoutError("sync did not settle")
        time.sleep(0.01)
    return time.monotonic() - start


def start_daemon(dsn: str, redis_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [ASYMM, "daemon", "--dsn", dsn, "--redis-url", redis_url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def pgbench_tps(dsn: str, seconds: int, clients: int) -> float:
    out = subprocess.run(
        [pgbench_bin(), "-N", "-M", "prepared", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), dsn],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def sync_cpu_s(conn: psycopg.Connection[Any], daemon_pid: int, redis_pid: int) -> dict[int, float]:
    """CPU seconds so far of the daemon, its PostgreSQL backends and redis-server, by pid."""
    pids = [int(p) for (p,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'asymm'")]
    return {pid: proc_cpu(pid) for pid in [daemon_pid, redis_pid, *pids]}


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def keys_applied(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT keys_applied FROM asymm.sync_state").fetchone()
    return int(row[0]) if row else 0


def bench_pgbench(
    dsn: str, conn: psycopg.Connection[Any], rounds: int, seconds: int, clients: int, daemon_pid: int, redis_pid: int
) -> dict[str, Any]:
    """Interleaved rounds: this 2-core machine is shared, so load drifts by 2x within minutes; only
    rounds run back to back (alternating which variant goes first) give a usable ratio.  The daemon
    runs in both variants; with the triggers disabled it simply has nothing to do.

    The sync's CPU per synced change: CPU of the daemon, its backends and redis-server during a
    tracked round (pgbench, then until every change is in Redis) less the same processes' CPU during
    the untracked round beside it (the daemon's other tasks), over the keys the sync applied."""
    subprocess.run([pgbench_bin(), "-i", "-q", "-s", "5", dsn], capture_output=True, check=True)
    conn.execute("SELECT asymm.track('pgbench_accounts')")
    wait_settled(conn)
    tracked: list[float] = []
    untracked: list[float] = []
    cpu: dict[str, list[float]] = {"tracked": [], "untracked": []}
    keys: list[int] = []
    for i in range(rounds):
        for variant in ("untracked", "tracked") if i % 2 == 0 else ("tracked", "untracked"):
            action = "ENABLE" if variant == "tracked" else "DISABLE"
            conn.execute(f"ALTER TABLE pgbench_accounts {action} TRIGGER USER")
            before, keys_before = sync_cpu_s(conn, daemon_pid, redis_pid), keys_applied(conn)
            (tracked if variant == "tracked" else untracked).append(pgbench_tps(dsn, seconds, clients))
            wait_settled(conn)
            cpu[variant].append(cpu_between(before, sync_cpu_s(conn, daemon_pid, redis_pid)))
            if variant == "tracked":
                keys.append(keys_applied(conn) - keys_before)
    conn.execute("ALTER TABLE pgbench_accounts ENABLE TRIGGER USER")
    ratios = [t / u for t, u in zip(tracked, untracked, strict=True)]
    per_key_us = [(t - u) / k * 1e6 for t, u, k in zip(cpu["tracked"], cpu["untracked"], keys, strict=True) if k]
    return {
        "untracked_tps": statistics.median(untracked),
        "tracked_tps": statistics.median(tracked),
        "untracked": untracked,
        "tracked": tracked,
        "ratios": ratios,
        "cpu_per_key_us": per_key_us,
    }


def bench_bulk(dsn: str, redis_url: str, conn: psycopg.Connection[Any], rows: int, reps: int) -> dict[str, float]:
    for name in ("bulk_plain", "bulk_tracked"):
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, a int, b text, c timestamptz)")
    conn.execute("SELECT asymm.track('bulk_tracked')")
    daemon = start_daemon(dsn, redis_url)
    wait_settled(conn)
    stop_daemon(daemon)  # capture cost alone: nothing else competes for the CPU
    times: dict[str, list[float]] = {"bulk_plain": [], "bulk_tracked": []}
    for i in range(reps):  # alternating which goes first: the disk's pace drifts on a shared machine
        for name in ("bulk_plain", "bulk_tracked") if i % 2 == 0 else ("bulk_tracked", "bulk_plain"):
            conn.execute(f"TRUNCATE {name}")
            started = time.perf_counter()
            conn.execute(
                f"INSERT INTO {name} SELECT g, g %% 1000, md5(g::text), now()"  # noqa: S608
                " FROM generate_series(1, %s) g",
                (rows,),
            )
            times[name].append(time.perf_counter() - started)
    # throughput: the last tracked insert's rows, from commit to the last key in Redis
    daemon = start_daemon(dsn, redis_url)
    try:
        conn.execute("SELECT asymm.sync_backfill('bulk_tracked')")  # start from a known state
        wait_settled(conn)
        conn.execute("TRUNCATE bulk_tracked")
        wait_settled(conn)
        conn.execute(
            "INSERT INTO bulk_tracked SELECT g, g %% 1000, md5(g::text), now() FROM generate_series(1, %s) g", (rows,)
        )
        sync_s = wait_settled(conn)
    finally:
        stop_daemon(daemon)
    return {
        "plain_s": statistics.median(times["bulk_plain"]),
        "tracked_s": statistics.median(times["bulk_tracked"]),
        "sync_rows_per_s": rows / sync_s,
        "sync_s": sync_s,
    }


def bench_lag(dsn: str, redis_url: str, conn: psycopg.Connection[Any], rate: float, seconds: int) -> dict[str, float]:
    """pgbench --rate drives the writes (a Python writer could not reach 1,000 tx/s here); each
    UPDATE stores clock_timestamp() in the row, and a keyspace-notification listener timestamps the
    value's arrival in Redis (same host, same clock; all notifications at hand are timestamped before
    any value is read back).  A value overwritten before the worker got to
    it never reaches Redis, so it has no sample."""
    conn.execute("DROP TABLE IF EXISTS lagtest")
    conn.execute("CREATE TABLE lagtest (id int PRIMARY KEY, ts float8 NOT NULL)")
    conn.execute("INSERT INTO lagtest SELECT g, 0 FROM generate_series(0, 9999) g")
    conn.execute("SELECT asymm.track('lagtest')")
    client = redis.Redis.from_url(redis_url)
    previous_events = client.config_get("notify-keyspace-events").get("notify-keyspace-events", "")
    client.config_set("notify-keyspace-events", "Kh")
    daemon = start_daemon(dsn, redis_url)
    lags: list[float] = []
    stop = threading.Event()

    def listen() -> None:
        sub = redis.Redis.from_url(redis_url)
        pubsub = sub.pubsub()
        pubsub.psubscribe("__keyspace@*__:asymm:{public.lagtest}:*")
        reader = redis.Redis.from_url(redis_url)
        seen: set[float] = set()
        while not stop.is_set():
            # Timestamp every notification already here before reading any value: a batch's keys
            # arrive together, and an HGET round trip per key would add to the later ones' lag.
            arrived: list[tuple[float, str]] = []
            msg = pubsub.get_message(timeout=0.1)
            while msg:
                if msg["type"] == "pmessage":
                    arrived.append((time.time(), msg["channel"].decode().split("__:", 1)[1]))
                msg = pubsub.get_message(timeout=0)
            for now, key in arrived:
                data = reader.hget(key, "d")
                if data:
                    ts = float(json.loads(data)["ts"])
                    if ts > 0 and ts not in seen:
                        seen.add(ts)
                        lags.append(max(0.0, now - ts) * 1000)
        pubsub.close()

    # mkstemp, not a name derived from the pid: another local user could have planted that path.
    fd, script_name = tempfile.mkstemp(prefix="asymm-bench-lag-", suffix=".sql")
    os.close(fd)
    script = Path(script_name)
    script.write_text(
        "\\set id random(0, 9999)\nUPDATE lagtest SET ts = extract(epoch FROM clock_timestamp()) WHERE id = :id;\n"
    )
    try:
        wait_settled(conn)
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(0.3)
        out = subprocess.run(
            [
                pgbench_bin(),
                "-n",
                "-M",
                "prepared",
                "-c",
                "2",
                "-j",
                "2",
                "-R",
                str(rate),
                "-T",
                str(seconds),
                "-f",
                str(script),
                dsn,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        match = re.search(r"tps = ([\d.]+)", out)
        assert match, out
        wait_settled(conn)
        time.sleep(0.3)
        stop.set()
        listener.join(timeout=5)
    finally:
        script.unlink(missing_ok=True)
        stop_daemon(daemon)
        # Back off: a keyspace event per write would cost Redis CPU in the parts measured after this one.
        client.config_set("notify-keyspace-events", previous_events)
        client.close()
    lags.sort()
    return {
        "tx_per_s": float(match.group(1)),
        "samples": len(lags),
        "p50_ms": lags[len(lags) // 2],
        "p99_ms": lags[int(len(lags) * 0.99)],
        "max_ms": lags[-1],
    }


def spread(values: list[float]) -> str:
    return f"{min(values):.0f}..{max(values):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("ASYMM_DSN", ""))
    parser.add_argument("--redis-url", default=os.environ.get("ASYMM_REDIS_URL", ""))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--bulk-reps", type=int, default=7)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: bulk,lag,pgbench")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    conn = psycopg.connect(args.dsn, autocommit=True)
    conn.execute("SET client_min_messages = warning")
    conn.execute("CREATE EXTENSION IF NOT EXISTS asymm CASCADE")
    redis.Redis.from_url(args.redis_url).flushdb()
    load_before = os.getloadavg()
    rows: list[tuple[str, str, str]] = []
    if "bulk" not in skip:
        bulk = bench_bulk(args.dsn, args.redis_url, conn, args.rows, reps=args.bulk_reps)
        rows += [
            (
                f"INSERT ... SELECT {args.rows} rows untracked / tracked",
                f"{bulk['plain_s']:.3f} s / {bulk['tracked_s']:.3f} s",
                f"{bulk['tracked_s'] / bulk['plain_s']:.2f}x (target <= 1.5x)",
            ),
            (
                f"sync throughput ({args.rows} rows, commit to last key)",
                f"{bulk['sync_rows_per_s']:.0f} rows/s",
                f"{bulk['sync_s']:.2f} s (target >= 20,000 rows/s)",
            ),
        ]
    if "lag" not in skip:
        lag = bench_lag(args.dsn, args.redis_url, conn, rate=args.rate, seconds=10)
        rows.append(
            (
                f"lag at {lag['tx_per_s']:.0f} tx/s ({lag['samples']} samples) p50 / p99 / max",
                f"{lag['p50_ms']:.1f} / {lag['p99_ms']:.1f} / {lag['max_ms']:.1f} ms",
                "target p50 <= 10, p99 <= 100 ms",
            )
        )
    if "pgbench" not in skip:
        daemon = start_daemon(args.dsn, args.redis_url)
        try:
            redis_pid = int(redis.Redis.from_url(args.redis_url).info("server")["process_id"])
            pgb = bench_pgbench(args.dsn, conn, args.rounds, args.seconds, args.clients, daemon.pid, redis_pid)
        finally:
            stop_daemon(daemon)
        rows.append(
            (
                f"pgbench -N TPS untracked / tracked (median, {args.rounds} x {args.seconds} s interleaved)",
                f"{pgb['untracked_tps']:.0f} / {pgb['tracked_tps']:.0f}",
                f"{pgb['tracked_tps'] / pgb['untracked_tps'] * 100:.1f} % (target >= 95 %)",
            )
        )
        rows.append(
            (
                "  spread: untracked / tracked TPS (min..max)",
                f"{spread(pgb['untracked'])} / {spread(pgb['tracked'])}",
                "per-round ratios "
                + " ".join(f"{r * 100:.0f}" for r in pgb["ratios"])
                + f" %, median {statistics.median(pgb['ratios']) * 100:.1f} %",
            )
        )
        if pgb["cpu_per_key_us"]:
            rows.append(
                (
                    "  sync CPU per synced change (daemon + its backends + redis, less idle)",
                    f"{statistics.median(pgb['cpu_per_key_us']):.1f} us",
                    "per round " + " ".join(f"{c:.0f}" for c in pgb["cpu_per_key_us"]) + " us",
                )
            )
    load_after = os.getloadavg()
    durability = conn.execute(
        "SELECT string_agg(name || ' = ' || setting, ', ' ORDER BY name) FROM pg_settings"
        " WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')"
    ).fetchone()
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'result':<28}  ratio / target")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:<28}  {note}")
    print(f"server durability: {durability[0] if durability else '?'}")
    print(
        f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)},"
        f" after: {' '.join(f'{x:.2f}' for x in load_after)}"
    )


if __name__ == "__main__":
    main()
