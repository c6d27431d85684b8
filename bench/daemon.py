"""Daemon benchmark: idle CPU at the default 4.909 Hz, tick jitter, and leader takeover after SIGKILL.

Goals (issue 7): idle CPU at most 3 % of one core, tick lateness p99 at most
10 ms on an idle machine, takeover within two pulses.

Run against a sandbox (``scripts/with-sandbox.sh .venv/bin/python bench/daemon.py``): it creates a
scratch database with the extension, starts ``asymm daemon`` (with Redis when ASYMM_REDIS_URL is
set) and reads the process's CPU time from ``/proc/<pid>/stat`` (utime + stime) over the window;
the lateness quantiles come from the daemon's own ``/api/status`` (with the bearer token the
benchmark gives each daemon through ``ASYMM_HTTP_TOKEN``).  The PostgreSQL backends
serving the daemon are measured the same way and reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from asymm.db import resolve_dsn, with_dbname

ASYMM = str(Path(sys.executable).with_name("asymm"))
PERIOD = 0.2037
CLK_TCK = os.sysconf("SC_CLK_TCK")
TOKEN = secrets.token_urlsafe(32)  # the API needs a bearer token, also on loopback


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(port: int) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=2) as response:
        doc: dict[str, Any] = json.loads(response.read())
        return doc


def start(dsn: str, port: int, redis_url: str | None) -> subprocess.Popen[bytes]:
    args = [ASYMM, "daemon", "--dsn", dsn, "--http-port", str(port), "--log-level", "warning"]
    if redis_url:
        args += ["--redis-url", redis_url]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL, env={**os.environ, "ASYMM_HTTP_TOKEN": TOKEN})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            status(port)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("daemon did not start")


def backend_pids(dsn: str, exclude: int) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [
            int(r[0])
            for r in conn.execute(  # type: ignore[call-overload]
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'asymm' AND datname = current_database()"
                " AND pid <> %s",
                (exclude,),
            )
        ]


def idle_run(dsn: str, redis_url: str | None, seconds: float) -> dict[str, float]:
    port = free_port()
    proc = start(dsn, port, redis_url)
    try:
        time.sleep(3)  # warm up: imports done, first heartbeats written
        with psycopg.connect(dsn) as conn:
            me = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index,call-overload]
        backends = backend_pids(dsn, me)
        d0, b0, w0 = cpu_seconds(proc.pid), sum(cpu_seconds(p) for p in backends), time.monotonic()
        ticks0 = status(port)["pulse"]["ticks"]
        time.sleep(seconds)
        d1, b1, w1 = cpu_seconds(proc.pid), sum(cpu_seconds(p) for p in backends), time.monotonic()
        doc = status(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    wall = w1 - w0
    return {
        "wall_s": wall,
        "ticks": doc["pulse"]["ticks"] - ticks0,
        "daemon_cpu_pct": 100 * (d1 - d0) / wall,
        "backend_cpu_pct": 100 * (b1 - b0) / wall,
        "p50_ms": 1000 * doc["pulse"]["lateness_p50_s"],
        "p99_ms": 1000 * doc["pulse"]["lateness_p99_s"],
        "max_ms": 1000 * doc["pulse"]["lateness_max_s"],
        "skipped": doc["pulse"]["skipped"],
        "overruns": doc["pulse"]["overruns"],
    }


def failover_trial(dsn: str) -> float:
    ports = [free_port(), free_port()]
    procs = [start(dsn, port, None) for port in ports]
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            roles = [status(p)["leader"] for p in ports]
            if roles.count(True) == 1:
                break
            time.sleep(0.05)
        leader = roles.index(True)
        time.sleep(PERIOD * (2 + random.random()))  # kill at a random phase of the standby's poll
        killed = time.time()
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait()
        other = ports[1 - leader]
        while True:
            doc = status(other)
            if doc["leader"]:
                return float(doc["leader_since"]) - killed
            if time.time() - killed > 30:
                return float("inf")
            time.sleep(0.01)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="idle measurement window")
    parser.add_argument("--failovers", type=int, default=5)
    args = parser.parse_args()
    admin = resolve_dsn(None)
    name = f"asymm_bench_daemon_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = with_dbname(admin, name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION asymm CASCADE")
        idle = idle_run(dsn, os.environ.get("ASYMM_REDIS_URL"), args.seconds)
        takeovers = [failover_trial(dsn) for _ in range(args.failovers)]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    print(
        f"idle daemon at 4.909 Hz over {idle['wall_s']:.1f} s ({idle['ticks']} ticks, Redis "
        f"{'on' if os.environ.get('ASYMM_REDIS_URL') else 'off'})"
    )
    print(f"{'metric':<34} {'value':>10} {'goal':>10}")
    print(f"{'daemon CPU, % of one core':<34} {idle['daemon_cpu_pct']:>10.2f} {'<= 3':>10}")
    print(f"{'its PostgreSQL backends, % core':<34} {idle['backend_cpu_pct']:>10.2f} {'-':>10}")
    print(f"{'tick lateness p50, ms':<34} {idle['p50_ms']:>10.3f} {'-':>10}")
    print(f"{'tick lateness p99, ms':<34} {idle['p99_ms']:>10.3f} {'<= 10':>10}")
    print(f"{'tick lateness max, ms':<34} {idle['max_ms']:>10.3f} {'-':>10}")
    print(f"{'skipped ticks / overruns':<34} {idle['skipped']:>4} / {idle['overruns']:<3} {'0 / 0':>10}")
    pulses = sorted(t / PERIOD for t in takeovers)
    print(f"{'takeover after SIGKILL, pulses':<34} {'min ' + format(pulses[0], '.2f'):>10} {'<= 2':>10}")
    print(f"{'  (' + str(len(pulses)) + ' trials)':<34} {'max ' + format(pulses[-1], '.2f'):>10}")
    print("  all: " + ", ".join(f"{p:.2f}" for p in pulses))


if __name__ == "__main__":
    main()
