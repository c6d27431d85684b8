"""Reliability of the Redis sync under failures, each ending with a full PostgreSQL-vs-Redis
comparison that must find zero mismatches: the daemon SIGKILLed repeatedly during a write storm,
Redis restarted without persistence mid-stream, PostgreSQL restarted mid-stream."""

from __future__ import annotations

import signal
import time

import psycopg
import redis

from asymm.dev.sandbox import Sandbox
from tests.harness.sync_helpers import Storm, full_compare, make_items, settled, start_daemon, stop_daemon, wait_for


def _flush(sandbox: Sandbox) -> None:
    client = redis.Redis.from_url(sandbox.redis_url)
    client.flushdb()
    client.close()


def _finish(db: str, sandbox: Sandbox, storm: Storm) -> None:
    assert storm.commits > 50, "the storm did not write"
    assert wait_for(lambda: settled(db), timeout=60), "the sync did not catch up"
    result = full_compare(db, sandbox.redis_url)
    assert result.rows_compared > 0
    assert (result.missing, result.different, result.extra) == ([], [], [])


def test_daemon_sigkilled_repeatedly_during_a_write_storm(db: str, sandbox: Sandbox) -> None:
    _flush(sandbox)
    make_items(db, rows=200)
    proc = start_daemon(db, sandbox.redis_url)
    try:
        with Storm(db) as storm:
            for _ in range(5):
                time.sleep(0.6)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                proc = start_daemon(db, sandbox.redis_url)
            time.sleep(0.5)
        _finish(db, sandbox, storm)
    finally:
        stop_daemon(proc)


def test_redis_restarted_without_persistence_mid_stream(db: str, sandbox: Sandbox) -> None:
    _flush(sandbox)
    make_items(db, rows=200)
    proc = start_daemon(db, sandbox.redis_url)
    try:
        assert wait_for(lambda: settled(db))
        with Storm(db) as storm:
            time.sleep(1.0)
            sandbox.stop_redis()
            time.sleep(1.0)  # changes pile up in the outbox meanwhile
            sandbox.start_redis()
            time.sleep(1.0)
        _finish(db, sandbox, storm)
        with psycopg.connect(db) as conn:
            assert conn.execute("SELECT resyncs FROM asymm.sync_state").fetchone()[0] >= 1  # type: ignore[index]
    finally:
        err = stop_daemon(proc)
    assert "Traceback" not in err, err


def test_postgres_restarted_mid_stream(db: str, sandbox: Sandbox) -> None:
    _flush(sandbox)
    make_items(db, rows=200)
    proc = start_daemon(db, sandbox.redis_url)
    try:
        assert wait_for(lambda: settled(db))
        with Storm(db) as storm:
            time.sleep(1.0)
            sandbox.restart_postgres()
            time.sleep(1.5)
        _finish(db, sandbox, storm)
    finally:
        err = stop_daemon(proc)
    assert "Traceback" not in err, err
