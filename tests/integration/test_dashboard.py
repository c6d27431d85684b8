"""The web dashboard: its JSON API against a real daemon, and the page in headless Chromium.

The browser test needs Debian's ``chromium`` (``make deps`` installs it) and the npm-built
``static/vendor`` files (``make dashboard``); it saves ``tests/artifacts/dashboard.png``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from asymm.app import make_daemon
from asymm.daemon.http import STATIC_DIR
from asymm.daemon.service import DaemonConfig
from asymm.db import connect
from asymm.dev.sandbox import Sandbox
from tests.harness.browser import Browser, chromium_path

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TOKEN = "dashboard-test-token-0123456789abcdef"  # the API needs one, also on loopback

SCHEMA = """
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL);
CREATE TABLE moves (id bigserial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts, amount int NOT NULL);
CREATE INDEX moves_account ON moves (account_id);
CREATE VIEW balances AS SELECT a.id, a.owner, a.balance + coalesce(sum(m.amount), 0) AS balance
  FROM accounts a LEFT JOIN moves m ON m.account_id = a.id GROUP BY a.id;
INSERT INTO accounts SELECT g, 'owner ' || g, 100 FROM generate_series(1, 2000) g;
CREATE TABLE ledger (id int PRIMARY KEY, account_id int NOT NULL, kind text NOT NULL, amount int NOT NULL);
INSERT INTO ledger SELECT g, 1 + g % 2000, (ARRAY['in','out','fee'])[1 + g % 3], g % 500
  FROM generate_series(1, 30000) g;
CREATE EXTENSION IF NOT EXISTS hypopg;
ANALYZE;
"""
ADVISED_QUERY = "SELECT sum(amount) FROM ledger WHERE account_id = %s"


def advisor_round(db: str) -> dict[str, Any]:
    """A real index advisor run on a small workload: advise, apply (CONCURRENTLY), re-run, verify."""
    from asymm.advisor.advise import advise, store
    from asymm.advisor.apply import apply_result
    from asymm.advisor.verify import verify

    def workload() -> None:
        with connect(db, observed=True) as conn:
            for i in range(60):
                conn.execute(ADVISED_QUERY, (1 + i * 7 % 2000,))

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    workload()
    with connect(db) as conn:
        result = advise(conn)
        store(conn, result)
        apply_result(conn, result)
    workload()
    with connect(db) as conn:
        return {"advise": result, "verify": verify(conn)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=20) as resp:
        return json.load(resp)


@pytest.fixture
def live(db: str, sandbox: Sandbox) -> Iterator[tuple[str, str]]:
    """A daemon (HTTP on a free port) over a database with a small workload running."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("SELECT asymm.track('accounts')")
        conn.execute("SELECT asymm.baseline('t')")
        conn.execute("ALTER TABLE moves ADD COLUMN note text")  # a drift event
    advisor = advisor_round(db)
    assert [i["applied"] for i in advisor["advise"]["indexes"]] == ["yes"], advisor["advise"]
    port = _free_port()
    daemon = make_daemon(
        DaemonConfig(dsn=db, redis_url=sandbox.redis_url, http_port=port, period=0.1, http_token=TOKEN)
    )
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    stop = threading.Event()

    def workload() -> None:
        with connect(db, observed=True) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                conn.execute("SELECT owner, balance FROM accounts WHERE id = %s", (1 + n % 2000,))
                conn.execute("INSERT INTO moves (account_id, amount) VALUES (%s, %s)", (1 + n % 2000, n % 7))
                if n % 20 == 0:
                    conn.execute("SELECT * FROM balances WHERE owner = %s", (f"owner {n % 2000}",))
                time.sleep(0.002)

    worker = threading.Thread(target=workload, daemon=True)
    worker.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            data = _get(base + "/api/dashboard?minutes=1")
            if data["series"].get("points") and len(data["series"]["points"]) >= 2:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the dashboard API never showed telemetry")
        time.sleep(0.5)
    try:
        yield base, db
    finally:
        stop.set()
        worker.join(10)
        daemon.stop_event.set()
        thread.join(20)


def test_dashboard_api(live: tuple[str, str]) -> None:
    base, _db = live
    data = _get(base + "/api/dashboard?minutes=5")
    assert data["daemon"]["leader"] is True
    assert set(data["daemon"]["regimes"]["target"]) == {"exploration", "optimization", "stabilization"}
    assert all(p["calls_per_s"] > 0 for p in data["series"]["points"])
    assert any(p["mean_ms"] is not None for p in data["series"]["points"])
    assert 0 <= data["smoothness"]["value"] <= 1
    assert "score" in data["coherence"]
    suggestions = data["suggestions"]
    assert suggestions["installed"] is True and suggestions["hypopg"] is True
    assert "deduplication" in suggestions["size_note"]
    [item] = suggestions["items"]
    assert item["definition"].startswith("CREATE INDEX") and "ledger" in item["definition"]
    assert item["table_name"] == "public.ledger" and item["columns"] == ["account_id"]
    assert item["status"] == "applied" and item["estimated_benefit"] > 0 and item["size_bytes"] > 0
    assert item["calls_since"] >= 60 and item["mean_before_ms"] > 0 and item["mean_after_ms"] > 0
    # judged (at least advisor.verify_min_calls = 20 calls since), by the default 5 % rule
    paid_off = item["mean_after_ms"] <= item["mean_before_ms"] * (1 - 0.05)
    assert item["verdict"] == ("paid_off" if paid_off else "no_gain"), item
    assert any(e["command_tag"] == "ALTER TABLE" for e in data["drift"]["ddl"])
    assert data["drift"]["baselines"] == 1
    assert [t["table"] for t in data["cache"]["sync"]["tables"]] == ["public.accounts"]
    assert data["cache"]["redis"]["keys"] >= 1
    graph = _get(base + "/api/graph?fresh=1")
    ids = {n["id"] for n in graph["nodes"]}
    assert {
        "table:public.accounts",
        "table:public.moves",
        "view:public.balances",
        "index:public.moves_account",
        "cache:public.accounts",
    } <= ids
    queries = [n for n in graph["nodes"] if n["kind"] == "query"]
    assert queries and all(isinstance(q["queryid"], str) for q in queries)
    assert any(q["recent_calls"] > 0 for q in queries)
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        _get(base + "/api/dashboard?minutes=5", token=None)
    assert anonymous.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as bad:
        _get(base + "/api/dashboard?minutes=0")
    assert bad.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as escape:
        _get(base + "/static/../http.py")
    assert escape.value.code == 404


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (make deps installs it)")
def test_dashboard_in_headless_chromium(live: tuple[str, str]) -> None:
    assert (STATIC_DIR / "vendor" / "three.module.js").is_file(), "run `make dashboard` (npm) first"
    base, _db = live
    browser = Browser()
    try:
        browser.goto(base + f"/?minutes=1#token={TOKEN}")
        browser.wait_for("window.__asymm && window.__asymm.polls >= 2 && window.__asymm.graph.nodes.length > 0", 60)
        browser.wait_for("(window.__asymm.charts['chart-throughput'] || 0) >= 2", 30)
        browser.pump(1.5)  # a few animation frames of the graph
        state = browser.evaluate(
            "JSON.stringify({charts: window.__asymm.charts, nodes: window.__asymm.graph.nodes,"
            " webgl: window.__asymm.graph.webgl, errors: window.__asymm.errors,"
            " canvases: document.querySelectorAll('#graph canvas').length,"
            " suggestions: document.getElementById('suggestions').textContent,"
            " slow: document.getElementById('slow').textContent,"
            " cache: document.getElementById('cache').textContent})"
        )
        browser.screenshot(ARTIFACTS / "dashboard.png")
    finally:
        browser.close()
    data = json.loads(state)
    assert browser.console_errors == [], browser.console_errors
    assert data["errors"] == []
    assert data["charts"]["chart-throughput"] >= 2 and data["charts"]["chart-latency"] >= 2
    assert {"table:public.accounts", "table:public.moves", "view:public.balances", "cache:public.accounts"} <= set(
        data["nodes"]
    )
    assert data["webgl"] is True and data["canvases"] == 1
    assert "tracked tables" in data["cache"].lower()
    suggestions = data["suggestions"]
    assert "CREATE INDEX" in suggestions and "ledger" in suggestions, suggestions
    assert "applied" in suggestions and "deduplication" in suggestions
    assert any(v in suggestions for v in ("paid off", "no gain", "insufficient data"))
    assert "→" in suggestions and " ms" in suggestions
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
