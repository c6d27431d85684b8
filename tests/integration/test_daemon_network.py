"""The daemon across a network drop between it and PostgreSQL (connections reset, new ones
refused for a while), not a server restart: it fences itself, then reconnects and leads again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import conninfo

from asymm.dev.sandbox import Sandbox
from tests.harness.tcp_proxy import TcpProxy
from tests.harness.waiting import wait_for


@pytest.fixture
def proxy(sandbox: Sandbox) -> Iterator[TcpProxy]:
    p = TcpProxy(sandbox.pg_port)
    yield p
    p.close()


def test_survives_a_network_drop(db: str, proxy: TcpProxy, start_daemon) -> None:  # type: ignore[no-untyped-def]
    via_proxy = conninfo.make_conninfo(db, host="127.0.0.1", port=str(proxy.port))
    daemon = start_daemon(via_proxy)
    assert wait_for(lambda: daemon.get("/readyz") == (200, "leader\n"), timeout=30)
    proxy.cut()
    assert wait_for(lambda: daemon.get("/readyz")[0] == 503, timeout=30)
    assert wait_for(lambda: daemon.status()["leader"] is False, timeout=10)
    assert daemon.get("/healthz")[0] == 200  # alive, just not ready
    time.sleep(2)  # deliberate: the outage lasts a while (the daemon keeps retrying meanwhile)
    proxy.restore()
    assert wait_for(lambda: daemon.get("/readyz") == (200, "leader\n"), timeout=60)
    with psycopg.connect(db) as conn:
        before = conn.execute("SELECT ticks FROM asymm.daemons").fetchone()
    assert wait_for(lambda: psycopg.connect(db).execute("SELECT ticks FROM asymm.daemons").fetchone() != before)
    assert daemon.status()["reconnects"] >= 1 and daemon.proc.poll() is None
    daemon.stop()
    assert daemon.proc.returncode == 0
