"""The daemon process against the real server: identity, heartbeat, clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from asymm.dev.sandbox import Sandbox
from tests.harness.waiting import wait_for

ASYMM = str(Path(sys.executable).with_name("asymm"))


def daemon_rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT ticks, stopped_at FROM asymm.daemons").fetchall()


def test_daemon_registers_hides_its_statements_and_stops_on_sigterm(db: str, sandbox: Sandbox) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    proc = subprocess.Popen(
        [ASYMM, "daemon", "--dsn", db, "--redis-url", sandbox.redis_url, "--period", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: any(int(r[0]) > 0 for r in daemon_rows(db))), "no heartbeat"  # type: ignore[call-overload]
        with psycopg.connect(db) as conn:
            names = {
                r[0]
                for r in conn.execute(
                    "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
                )
            }
            assert "asymm" in names
            own = conn.execute(
                "SELECT count(*) FROM pg_stat_statements WHERE query ~ '^(INSERT INTO|UPDATE) asymm\\.daemons'"
            ).fetchone()
            assert own == (0,)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    rows = daemon_rows(db)
    assert len(rows) == 1 and rows[0][1] is not None


def test_daemon_with_a_tick_limit_ends_by_itself(db: str) -> None:
    out = subprocess.run(
        [ASYMM, "daemon", "--dsn", db, "--period", "0.02", "--ticks", "10"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert daemon_rows(db)[0][0] == 10


def test_daemon_without_the_extension_fails_cleanly(make_db) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [ASYMM, "daemon", "--dsn", make_db(extension=False), "--ticks", "1"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1
    assert "CREATE EXTENSION asymm" in out.stderr and "Traceback" not in out.stderr
