"""Webhook notifications raised by the daemon's areas: a new slow query and new drift."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from asymm.dev.sandbox import Sandbox
from tests.harness.waiting import wait_for
from tests.harness.webhook import Receiver

ASYMM = str(Path(sys.executable).with_name("asymm"))


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver(fail=0)
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def start_daemon(db: str, hook: Receiver, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ASYMM, "daemon", "--dsn", db, "--period", "0.05", "--http-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ASYMM_NOTIFY_URLS": hook.url},
    )


def stop_daemon(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.communicate(timeout=20)


@pytest.fixture
def daemon(db: str, hook: Receiver) -> Iterator[subprocess.Popen[str]]:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT asymm.set_setting('drift.reconcile_every', '0.2 s')")
    proc = start_daemon(db, hook)
    yield proc
    stop_daemon(proc)


def events(hook: Receiver, name: str) -> list[dict[str, Any]]:
    return [body for body in hook.bodies if body.get("event") == name]


def test_a_new_slow_query_is_sent_once(db: str, hook: Receiver, daemon: subprocess.Popen[str]) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        assert wait_for(
            lambda: (conn.execute("SELECT snapshots FROM asymm.telemetry_state").fetchone() or (0,))[0] > 0
        ), "no snapshot"
        conn.execute("SELECT pg_sleep(0.15)")
        assert wait_for(lambda: events(hook, "slow_query")), daemon.stderr
        conn.execute("SELECT pg_sleep(0.15)")  # still slow: no second notification
        time.sleep(6)  # deliberate: more than one slow-alert pass (every 5 s) must go by without a second one
    sent = events(hook, "slow_query")
    assert len(sent) == 1
    assert "pg_sleep" in str(sent[0])


def test_new_drift_is_sent(db: str, hook: Receiver, daemon: subprocess.Popen[str]) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, note text)")
        conn.execute("SELECT asymm.baseline('prod')")
        conn.execute("ALTER TABLE accounts DROP COLUMN note")
    assert wait_for(lambda: events(hook, "drift")), "no drift notification"
    body = str(events(hook, "drift")[0])
    assert "accounts" in body and "removed" in body


def test_sync_lag_over_the_threshold_is_sent_once(db: str, hook: Receiver, sandbox: Sandbox) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
        conn.execute("SELECT asymm.track('accounts')")
        conn.execute("SELECT asymm.set_setting('sync.lag_alert_ms', '1500')")
    proc = start_daemon(db, hook, "--redis-url", sandbox.redis_url)
    try:
        with psycopg.connect(db, autocommit=True) as conn:
            assert wait_for(lambda: conn.execute("SELECT lag_at FROM asymm.sync_state").fetchone()[0], 30)
            assert events(hook, "sync_lag") == []  # a healthy cache: no alert
            sandbox.stop_redis()
            try:
                assert wait_for(lambda: events(hook, "sync_lag"), 30), "no sync_lag notification"
                time.sleep(2)  # the outage goes on: still one notification
            finally:
                sandbox.start_redis()
    finally:
        stop_daemon(proc)
    [sent] = events(hook, "sync_lag")
    assert sent["data"]["lag_ms"] > 1500 and sent["data"]["threshold_ms"] == 1500
