"""CPU spent by the Redis sync per synced key, under a fixed pgbench -N write stream.

Usage (a sandbox's database; the script runs pgbench -i and CREATE EXTENSION itself):
    .venv/bin/python bench/sync_cpu.py --dsn "$ASYMM_DSN" --redis-url "$ASYMM_REDIS_URL" \\
        --variant before=/tmp/base/control --variant after=control

Why CPU and not TPS: on this 2-core machine the daemon, its PostgreSQL backends and redis-server
share the cores with the writers, so every CPU microsecond they spend per synced key is taken from
pgbench; CPU seconds of those processes (utime + stime from /proc) are far less noisy than TPS on a
shared machine, and they are what a change to the daemon can lower.

Each variant is a ``PYTHONPATH`` (a ``control`` directory of some checkout; empty: the installed
package) under which ``asymm daemon`` runs.  Rounds alternate the order of the variants.  Per round
and variant: start the daemon, wait until it holds the sync lock and the outbox is settled, measure
an idle window (no writes), then run ``pgbench -N --rate`` for a fixed time and wait until every
change is in Redis; report CPU of the daemon process (all threads), of its backends
(``application_name = 'asymm'``), of redis-server, and of all of PostgreSQL (live processes plus
what the postmaster reaped, i.e. also the pgbench backends), per 1,000 committed pgbench
transactions (each changes one key of ``pgbench_accounts``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

TICK = os.sysconf("SC_CLK_TCK")
LOCK_CLASSID, LOCK_OBJID = 0x6173796D, 6  # asymm.sync.engine.LOCK_KEY


def pgbench_bin() -> str:
    return shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"


def proc_cpu(pid: int, children: bool = False) -> float:
    """utime + stime (and cutime + cstime: reaped children) of a process, in seconds; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def pg_processes(postmaster: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(postmaster), "-o", "pid="], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@dataclass
class Snapshot:
    daemon: float
    backends: dict[int, float]
    redis: float
    postgres: float  # every postgres process, live or reaped


def snapshot(conn: psycopg.Connection[Any], daemon_pid: int, redis_pid: int, postmaster: int) -> Snapshot:
    pids = [int(p) for (p,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'asymm'")]
    live = sum(proc_cpu(p) for p in pg_processes(postmaster))
    return Snapshot(
        daemon=proc_cpu(daemon_pid),
        backends={p: proc_cpu(p) for p in pids},
        redis=proc_cpu(redis_pid),
        postgres=live + proc_cpu(postmaster, children=True),
    )


def settled(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM asymm.sync_outbox o, asymm.sync_state s"
        " WHERE o.xid >= s.position AND o.rel <> 0),"
        " (SELECT count(*) FROM asymm.sync_tables WHERE backfill_state <> 'done')"
    ).fetchone()
    return row == (0, 0)


def wait_for(predicate: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(what)
        time.sleep(0.005)
    return time.monotonic() - start


def sync_holder(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = %s AND objid = %s)",
        (LOCK_CLASSID, LOCK_OBJID),
    ).fetchone() == (True,)


def counters(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute("SELECT keys_applied, batches FROM asymm.sync_state").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def run_round(
    args: argparse.Namespace, conn: psycopg.Connection[Any], name: str, pythonpath: str, redis_pid: int, postmaster: int
) -> dict[str, float]:
    env = dict(os.environ)
    pythonpath, *settings = pythonpath.split(";")
    env.update(setting.split("=", 1) for setting in settings)
    if pythonpath:
        env["PYTHONPATH"] = str(Path(pythonpath).resolve())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from asymm.cli import main; main()",
            "daemon",
            "--dsn",
            args.dsn,
            "--redis-url",
            args.redis_url,
            "--http-port",
            "0",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: sync_holder(conn), 60, f"{name}: the daemon did not take the sync lock")
        wait_for(lambda: settled(conn), 600, f"{name}: the sync did not settle")
        time.sleep(1.0)  # startup work (first telemetry snapshots, epochs check) out of the windows
        idle0 = snapshot(conn, proc.pid, redis_pid, postmaster)
        time.sleep(args.idle_seconds)
        idle1 = snapshot(conn, proc.pid, redis_pid, postmaster)
        applied0, batches0 = counters(conn)
        s0 = snapshot(conn, proc.pid, redis_pid, postmaster)
        started = time.monotonic()
        out = subprocess.run(
            [
                pgbench_bin(),
                "-N",
                "-n",
                "-M",
                "prepared",
                "-c",
                str(args.clients),
                "-j",
                "2",
                "-R",
                str(args.rate),
                "-T",
                str(args.seconds),
                args.dsn,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        settle_s = wait_for(lambda: settled(conn), 600, f"{name}: the sync did not settle after pgbench")
        s1 = snapshot(conn, proc.pid, redis_pid, postmaster)
        elapsed = time.monotonic() - started
        applied1, batches1 = counters(conn)
        applied, batches = applied1 - applied0, batches1 - batches0
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    if "Traceback" in err:
        print(err, file=sys.stderr)
    match = re.search(r"number of transactions actually processed: (\d+)", out)
    tps = re.search(r"tps = ([\d.]+)", out)
    assert match and tps, out
    txs = int(match.group(1))
    common = set(s0.backends) & set(s1.backends)
    if set(s0.backends) != set(s1.backends):
        print(f"  ({name}: daemon backends changed during the window: {sorted(s0.backends)} -> {sorted(s1.backends)})")
    backends = sum(s1.backends[p] - s0.backends[p] for p in common) + sum(
        s1.backends[p] for p in set(s1.backends) - common
    )
    idle_backends = sum(idle1.backends.get(p, 0.0) - c for p, c in idle0.backends.items())
    per_k = 1000.0 / txs
    result = {
        "txs": txs,
        "tps": float(tps.group(1)),
        "applied": applied,
        "batches": batches,
        "elapsed_s": elapsed,
        "settle_s": settle_s,
        "daemon_ms": (s1.daemon - s0.daemon) * 1000 * per_k,
        "backends_ms": backends * 1000 * per_k,
        "redis_ms": (s1.redis - s0.redis) * 1000 * per_k,
        "postgres_all_ms": (s1.postgres - s0.postgres) * 1000 * per_k,
        "idle_ms_per_s": ((idle1.daemon - idle0.daemon) + idle_backends + (idle1.redis - idle0.redis))
        * 1000
        / args.idle_seconds,
    }
    result["sync_ms"] = result["daemon_ms"] + result["backends_ms"] + result["redis_ms"]
    # the same, less what the daemon costs when idle over the same time (telemetry, pulse, polling)
    result["sync_less_idle_ms"] = result["sync_ms"] - result["idle_ms_per_s"] * elapsed * per_k
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("ASYMM_DSN", ""))
    parser.add_argument("--redis-url", default=os.environ.get("ASYMM_REDIS_URL", ""))
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=PYTHONPATH[;VAR=VALUE...] (repeatable; an empty path runs the installed package;"
        " VAR=VALUE pairs go into the daemon's environment)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--scale", type=int, default=5)
    args = parser.parse_args()
    variants = [tuple(v.split("=", 1)) for v in args.variant] or [("installed", "")]
    conn = psycopg.connect(args.dsn, autocommit=True, application_name="asymm-bench")
    conn.execute("SET client_min_messages = warning")
    conn.execute("CREATE EXTENSION IF NOT EXISTS asymm CASCADE")
    subprocess.run([pgbench_bin(), "-i", "-q", "-s", str(args.scale), args.dsn], capture_output=True, check=True)
    conn.execute("SELECT asymm.track('pgbench_accounts')")
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    client.config_set("notify-keyspace-events", "")  # bench/sync.py's lag part turns them on: not here
    redis_pid = int(client.info("server")["process_id"])
    client.close()
    postmaster = int(
        Path(conn.execute("SHOW data_directory").fetchone()[0], "postmaster.pid")  # type: ignore[index]
        .read_text()
        .split()[0]
    )
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in variants}
    for i in range(args.rounds):
        for name, path in variants if i % 2 == 0 else list(reversed(variants)):
            res = run_round(args, conn, name, path, redis_pid, postmaster)
            results[name].append(res)
            print(
                f"round {i + 1} {name:>10}: {res['txs']} tx ({res['tps']:.0f} tx/s), applied {res['applied']:.0f}"
                f" in {res['batches']:.0f} batches ({res['applied'] / max(res['batches'], 1):.1f} keys/batch),"
                f" settled {res['settle_s'] * 1000:.0f} ms after pgbench; CPU ms per 1,000 keys: daemon"
                f" {res['daemon_ms']:.0f} + backends {res['backends_ms']:.0f} + redis {res['redis_ms']:.0f}"
                f" = {res['sync_ms']:.0f} ({res['sync_less_idle_ms']:.0f} less idle {res['idle_ms_per_s']:.1f} ms/s);"
                f" all postgres {res['postgres_all_ms']:.0f}",
                flush=True,
            )
    load_after = os.getloadavg()
    print(
        f"\nmedians over {args.rounds} rounds, pgbench -N -R {args.rate} -c {args.clients} -T {args.seconds},"
        f" scale {args.scale}; CPU ms per 1,000 synced keys"
    )
    cols = ["daemon_ms", "backends_ms", "redis_ms", "sync_ms", "sync_less_idle_ms", "idle_ms_per_s", "postgres_all_ms"]
    print(f"{'variant':>10}  " + "  ".join(f"{c:>17}" for c in cols))
    for name, rs in results.items():
        print(f"{name:>10}  " + "  ".join(f"{statistics.median(r[c] for r in rs):17.1f}" for c in cols))
    print(
        f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)},"
        f" after: {' '.join(f'{x:.2f}' for x in load_after)}"
    )


if __name__ == "__main__":
    main()
