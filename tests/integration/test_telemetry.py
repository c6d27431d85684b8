"""Telemetry: snapshot deltas (resets, evictions), retention, reports, duplicates, index health."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from asymm import telemetry
from asymm.app import make_daemon
from asymm.daemon.service import DaemonConfig
from asymm.db import connect
from asymm.dev.sandbox import Sandbox

Conn = psycopg.Connection[tuple[object, ...]]
ASYMM = str(Path(sys.executable).with_name("asymm"))


@pytest.fixture
def ctl(db: str) -> Iterator[Conn]:
    """asymm's own connection: hidden from pg_stat_statements, like the daemon's."""
    with connect(db) as conn:
        yield conn


@pytest.fixture
def app(db: str) -> Iterator[Conn]:
    """A workload connection, recorded by pg_stat_statements."""
    with connect(db, observed=True, application_name="app") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, v int)")
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 50) g ON CONFLICT DO NOTHING")
        yield conn


MARKER = "SELECT count(*) AS telemetry_probe FROM items WHERE v > %s"


def run_probe(app: Conn, times: int) -> None:
    for i in range(times):
        app.execute(MARKER, (i,))


def probe_history(ctl: Conn) -> list[tuple[int, float]]:
    return [
        (int(r[0]), float(r[1]))  # type: ignore[arg-type]
        for r in ctl.execute(
            "SELECT s.calls, s.total_ms FROM asymm.query_stats s JOIN asymm.queries q USING (dbid, userid, queryid)"
            " WHERE q.query LIKE '%telemetry_probe%' ORDER BY s.sampled_at"
        ).fetchall()
    ]


def probe_queryid(ctl: Conn) -> int:
    row = ctl.execute("SELECT queryid FROM asymm.queries WHERE query LIKE '%telemetry_probe%'").fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


def test_snapshot_writes_only_what_moved_and_stores_text_once(ctl: Conn, app: Conn) -> None:
    first = telemetry.snapshot(ctl)
    assert first["baseline"] is True and first["written"] == 0
    run_probe(app, 5)
    second = telemetry.snapshot(ctl)
    assert second["written"] >= 1
    assert probe_history(ctl) == [(5, pytest.approx(probe_history(ctl)[0][1]))]
    quiet = telemetry.snapshot(ctl)
    assert quiet["written"] == 0 and quiet["moved"] == 0, "nothing ran, nothing is written"
    run_probe(app, 3)
    telemetry.snapshot(ctl)
    assert [c for c, _ in probe_history(ctl)] == [5, 3]
    assert ctl.execute("SELECT count(*) FROM asymm.queries WHERE query LIKE '%telemetry_probe%'").fetchone() == (1,)


def test_full_reset_gives_no_negative_or_doubled_delta(ctl: Conn, app: Conn) -> None:
    telemetry.snapshot(ctl)
    run_probe(app, 5)
    telemetry.snapshot(ctl)
    ctl.execute("SELECT public.pg_stat_statements_reset()")
    run_probe(app, 2)
    result = telemetry.snapshot(ctl)
    assert result["reset"] is True
    history = probe_history(ctl)
    assert [c for c, _ in history] == [5, 2]
    assert all(c > 0 and ms >= 0 for c, ms in history)
    assert ctl.execute("SELECT resets_seen FROM asymm.telemetry_state").fetchone() == (1,)


def test_evicted_entry_recreated_between_snapshots_restarts_from_zero(ctl: Conn, app: Conn) -> None:
    """Eviction simulated by removing exactly one entry (stats_reset does not move, as in an eviction)."""
    telemetry.snapshot(ctl)
    run_probe(app, 5)
    telemetry.snapshot(ctl)
    qid = probe_queryid(ctl)
    remove = (
        "SELECT public.pg_stat_statements_reset(0,"
        " (SELECT oid FROM pg_database WHERE datname = current_database()), %s)"
    )
    # removed and re-created with fewer calls before the next snapshot: counters went down
    ctl.execute(remove, (qid,))
    run_probe(app, 2)
    result = telemetry.snapshot(ctl)
    assert result["reset"] is False and result["restarted"] == 1
    # removed, seen gone by a snapshot, then re-created with more calls than before
    ctl.execute(remove, (qid,))
    assert telemetry.snapshot(ctl)["gone"] >= 1
    run_probe(app, 8)
    telemetry.snapshot(ctl)
    assert [c for c, _ in probe_history(ctl)] == [5, 2, 8]


def test_real_evictions_never_double_or_go_negative(db: str, sandbox: Sandbox) -> None:
    """pg_stat_statements.max at its minimum (100) and a flood of distinct statements: real
    evictions (dealloc), snapshots in between; every recorded delta is exact or absent."""
    admin = sandbox.dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET pg_stat_statements.max = 100")
    sandbox.restart_postgres()
    try:
        with connect(db) as ctl, connect(db, observed=True, application_name="app") as app:
            app.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, v int)")
            telemetry.snapshot(ctl)
            run_probe(app, 5)
            telemetry.snapshot(ctl)
            results = []
            for batch in range(8):  # 400 distinct statements into a 100-entry table
                for i in range(1, 51):  # v + v + ... : distinct shapes (constants and aliases would not be)
                    terms = " + ".join(["v"] * (batch * 50 + i))  # our own text, no input
                    app.execute(f"SELECT {terms} AS flood FROM items LIMIT 0")  # noqa: S608
                results.append(telemetry.snapshot(ctl))
            run_probe(app, 3)
            results.append(telemetry.snapshot(ctl))
            evicted = sum(int(r["dealloc"]) for r in results)  # type: ignore[call-overload]
            assert evicted > 0, "the flood must have made pg_stat_statements evict entries"
            assert sum(int(r["gone"]) for r in results) > 0  # type: ignore[call-overload]
            assert ctl.execute("SELECT deallocs_seen FROM asymm.telemetry_state").fetchone() == (evicted,)
            assert sum(c for c, _ in probe_history(ctl)) == 8, "5 then 3 calls, whether evicted or not"
            bad = ctl.execute(
                "SELECT count(*) FROM asymm.query_stats WHERE calls < 0 OR total_ms < 0"
                " OR rows < 0 OR shared_blks_hit < 0 OR shared_blks_read < 0"
            ).fetchone()
            assert bad == (0,)
            flood = ctl.execute(
                "SELECT q.query, sum(s.calls) FROM asymm.query_stats s"
                " JOIN asymm.queries q USING (dbid, userid, queryid)"
                " WHERE q.query LIKE '%flood%' GROUP BY q.query"
            ).fetchall()
            assert flood and all(calls == 1 for _, calls in flood), "each flood statement ran once"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET pg_stat_statements.max")
        sandbox.restart_postgres()


def test_snapshots_from_several_sessions_and_rollbacks_stay_exact(db: str, app: Conn) -> None:
    """The diff keeps a per-session copy of the last counters: it must notice when another session
    took the last snapshot, or when its own last snapshot was rolled back."""
    with connect(db) as one, connect(db) as two:
        telemetry.snapshot(one)
        run_probe(app, 2)
        telemetry.snapshot(one)
        run_probe(app, 3)
        telemetry.snapshot(two)  # another session moves the counters on
        run_probe(app, 4)
        telemetry.snapshot(one)  # must not count the 3 again
        run_probe(app, 5)
        with one.transaction(force_rollback=True):
            one.execute("SELECT asymm.snapshot()")  # seen, then rolled back
        run_probe(app, 6)
        telemetry.snapshot(one)  # 5 + 6 since the last committed snapshot
        assert [c for c, _ in probe_history(one)] == [2, 3, 4, 11]


def test_slow_query_appears_in_reports_and_lowers_smoothness(ctl: Conn, app: Conn) -> None:
    telemetry.snapshot(ctl)
    for _ in range(3):
        run_probe(app, 10)
        telemetry.snapshot(ctl)
    assert ctl.execute("SELECT asymm.smoothness('1 hour')").fetchone() == (1.0,), "steady and fast"
    app.execute("SELECT pg_sleep(0.15)")
    telemetry.snapshot(ctl)
    slow = ctl.execute("SELECT query, slow_calls, calls FROM asymm.slow_queries(100, '1 hour')").fetchall()
    assert [(q, s, c) for q, s, c in slow if "pg_sleep" in str(q)] == [("SELECT pg_sleep($1)", 1, 1)]
    assert not ctl.execute("SELECT 1 FROM asymm.slow_queries(200, '1 hour')").fetchall()
    smooth = ctl.execute("SELECT asymm.smoothness('1 hour')").fetchone()[0]  # type: ignore[index]
    assert 0.0 <= smooth < 1.0  # type: ignore[operator]
    report = {
        str(r[0]): (r[1], r[2])
        for r in ctl.execute("SELECT query, calls, mean_ms FROM asymm.query_report('1 hour')").fetchall()
    }
    assert report["SELECT pg_sleep($1)"][0] == 1 and report["SELECT pg_sleep($1)"][1] >= 150  # type: ignore[operator]
    assert any("telemetry_probe" in q and calls == 30 for q, (calls, _) in report.items())


def test_own_statements_and_the_daemon_are_not_reported(db: str, ctl: Conn, app: Conn) -> None:
    telemetry.snapshot(ctl)
    app.execute("SELECT asymm.version()")  # asymm's own function, even from an observed session
    run_probe(app, 1)
    telemetry.snapshot(ctl)
    daemon = make_daemon(DaemonConfig(dsn=db, period=0.05, max_ticks=6))
    daemon.run()
    assert ctl.execute("SELECT snapshots FROM asymm.telemetry_state").fetchone()[0] >= 6  # type: ignore[index,operator]
    reported = [str(r[0]) for r in ctl.execute("SELECT query FROM asymm.query_report('1 hour')").fetchall()]
    assert any("telemetry_probe" in q for q in reported)
    assert not [q for q in reported if "asymm" in q], reported


def test_retention_rolls_up_then_drops_whole_partitions(ctl: Conn) -> None:
    telemetry.snapshot(ctl)  # creates the current partitions and the watermarks
    ctl.execute("""
        CREATE TABLE asymm.query_stats_old PARTITION OF asymm.query_stats
           FOR VALUES FROM (date_trunc('hour', now()) - interval '5 days')
                        TO (date_trunc('hour', now()) - interval '5 days' + interval '1 hour');
        CREATE TABLE asymm.query_stats_minute_old PARTITION OF asymm.query_stats_minute
           FOR VALUES FROM (date_trunc('hour', now()) - interval '6 days')
                        TO (date_trunc('hour', now()) - interval '4 days');
        INSERT INTO asymm.query_stats
        SELECT date_trunc('hour', now()) - interval '5 days' + g * interval '200 ms', 42, 2, 4.0, 2, 1, 0, 1, 10
          FROM generate_series(0, 599) g;  -- two minutes of samples, 300 per minute
        UPDATE asymm.telemetry_state SET raw_floor = date_trunc('hour', now()) - interval '5 days',
                                         rolled_up_until = date_trunc('hour', now()) - interval '5 days';
    """)
    result = telemetry.retention(ctl, max_minutes=100000)
    assert "query_stats_old" in result["dropped_partitions"]
    assert ctl.execute("SELECT to_regclass('asymm.query_stats_old')").fetchone() == (None,)
    minutes = ctl.execute(
        "SELECT calls, total_ms, samples, max_mean_ms FROM asymm.query_stats_minute WHERE queryid = 42 ORDER BY minute"
    ).fetchall()
    assert minutes == [(600, 1200.0, 300, 2.0), (600, 1200.0, 300, 2.0)]
    history = ctl.execute("SELECT sum(calls) FROM asymm.query_history('6 days') WHERE queryid = 42").fetchone()
    assert history == (1200,)
    ctl.execute("SELECT asymm.set_setting('telemetry.rollup_retention', '1 day')")
    result = telemetry.retention(ctl)
    assert "query_stats_minute_old" in result["dropped_partitions"]
    assert ctl.execute("SELECT count(*) FROM asymm.query_stats_minute WHERE queryid = 42").fetchone() == (0,)
    current = ctl.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'asymm.query_stats'::regclass").fetchone()
    assert current[0] >= 3  # type: ignore[index,operator]  # default + current hour + ahead


def test_find_duplicates_groups_exactly(conn: Conn) -> None:
    conn.execute("CREATE TABLE people (id serial PRIMARY KEY, name text, city text, age int)")
    conn.execute("""INSERT INTO people (name, city, age) VALUES
        ('ann', 'oslo', 30), ('ann', 'oslo', 30), ('ann', 'oslo', 30),
        ('bob', NULL, 40), ('bob', NULL, 40), ('bob', '', 40),
        ('cy', 'rome', 20), ('ann', 'oslo', 31)""")
    groups = conn.execute(
        "SELECT copies, row_values, cardinality(ctids) FROM asymm.find_duplicates('people')"
    ).fetchall()
    assert groups == [
        (3, {"name": "ann", "city": "oslo", "age": 30}, 3),
        (2, {"name": "bob", "city": None, "age": 40}, 2),
    ]
    by_name = conn.execute("SELECT copies FROM asymm.find_duplicates('people', '{name}')").fetchall()
    assert by_name == [(4,), (3,)]
    expected_hash = conn.execute("SELECT encode(sha256(convert_to(ROW('cy'::text)::text, 'UTF8')), 'hex')").fetchone()
    hashes = conn.execute("SELECT row_hash FROM asymm.find_duplicates('people', '{name}')").fetchall()
    assert expected_hash not in hashes
    with pytest.raises(psycopg.errors.UndefinedColumn) as bad:
        conn.execute("SELECT * FROM asymm.find_duplicates('people', '{name,nope}')")
    assert "id, name, city, age" in (bad.value.diag.message_hint or "")
    conn.execute("SELECT asymm.record_state('{people}')")
    conn.execute("INSERT INTO people (name) VALUES ('dan'), ('eve'), ('eve')")
    report = conn.execute(
        "SELECT row_count, distinct_states, duplicate_rows, distinct_growth FROM asymm.state_report('{people}')"
    ).fetchone()
    assert report == (11, 7, 4, 2)


def test_index_health_reports_each_category(conn: Conn) -> None:
    conn.execute("""
        CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE);
        CREATE TABLE orders (id int PRIMARY KEY, customer int, placed date, note text,
                             parent_id int REFERENCES parent(id));
        CREATE INDEX orders_customer ON orders (customer);
        CREATE INDEX orders_customer_copy ON orders (customer);
        CREATE INDEX orders_customer_placed ON orders (customer, placed);
        CREATE INDEX orders_note ON orders (note);
        INSERT INTO orders SELECT g, g % 10, date '2026-01-01' + g, 'n', NULL FROM generate_series(1, 100) g;
        INSERT INTO orders VALUES (101, 1, NULL, 'n', NULL);
    """)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY orders_note_unique ON orders (note)")
    found = {(r[0], r[1]) for r in conn.execute("SELECT category, index_name FROM asymm.index_health()").fetchall()}
    assert ("invalid", "orders_note_unique") in found
    assert ("duplicate", "orders_customer_copy") in found
    assert ("duplicate", "orders_customer") not in found, "the first of two identical indexes is kept"
    assert ("prefix_redundant", "orders_customer") in found
    assert ("unused", "orders_note") in found
    reported = {name for _, name in found}
    assert not reported & {"orders_pkey", "parent_pkey", "parent_code_key"}, "constraint indexes stay"
    size, statement = conn.execute(
        "SELECT index_size_bytes, drop_statement FROM asymm.index_health() WHERE index_name = 'orders_customer_copy'"
    ).fetchone()  # type: ignore[misc]
    assert size > 0 and statement == "DROP INDEX CONCURRENTLY public.orders_customer_copy;"
    conn.execute(statement)
    assert conn.execute("SELECT to_regclass('orders_customer_copy')").fetchone() == (None,)


def test_cli_top_health_duplicates(db: str, ctl: Conn, app: Conn) -> None:
    telemetry.snapshot(ctl)
    run_probe(app, 4)
    app.execute("CREATE TABLE dup (a int, b text); INSERT INTO dup VALUES (1, 'x'), (1, 'x'), (2, 'y')")
    app.execute("CREATE INDEX dup_a ON dup (a)")
    telemetry.snapshot(ctl)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ASYMM, *args, "--dsn", db], capture_output=True, text=True, timeout=60)

    top = cli("top", "--json", "--since", "1 hour")
    assert top.returncode == 0, top.stderr
    doc = json.loads(top.stdout)
    assert 0 <= doc["smoothness"] <= 1
    assert any("telemetry_probe" in q["query"] and q["calls"] == 4 for q in doc["queries"])
    assert cli("top").returncode == 0
    health = json.loads(cli("health", "--json").stdout)
    assert {"category": "unused", "index_name": "dup_a"}.items() <= next(
        i for i in health["indexes"] if i["index_name"] == "dup_a"
    ).items()
    dups = json.loads(cli("duplicates", "dup", "--json").stdout)
    assert dups["duplicate_rows"] == 1 and dups["groups"][0]["row_values"] == {"a": 1, "b": "x"}
    assert "1 duplicate groups" in cli("duplicates", "dup", "--columns", "a").stdout
    missing = cli("duplicates", "no_such_table")
    assert missing.returncode == 1 and missing.stderr.strip() == "Error: no such table: no_such_table"
