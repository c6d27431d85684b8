"""Index advisor, issue #18's defect class "expression key carrying a constant lost to normalization":
pg_stat_statements shows ``payload->>$2 = $1``; the grammar constant (``'session'``) is sampled from
pg_stat_activity into asymm.query_constants, never a compared value, and put back before analysis
(real PostgreSQL + HypoPG)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from asymm.advisor.advise import Settings, advise
from asymm.advisor.constants import match, sample_constants, substitute
from asymm.db import connect

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE events (id int PRIMARY KEY, kind text NOT NULL, occurred_at timestamp NOT NULL, payload jsonb NOT NULL);
INSERT INTO events SELECT g, (ARRAY['view','click','buy'])[1 + g % 3], timestamp '2026-01-01' + g * interval '7 s',
       jsonb_build_object('session', 's' || (g / 4), 'type', (ARRAY['a','b','c'])[1 + g % 3])
  FROM generate_series(1, 60000) g;
"""
SESSION_KEY = "(payload OPERATOR(pg_catalog.->>) 'session')"


@pytest.fixture
def dsn(make_db: Callable[..., str]) -> str:
    dsn = make_db()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("VACUUM ANALYZE")
        conn.execute("SELECT public.pg_stat_statements_reset()")
    return dsn


@pytest.fixture
def aconn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(dsn, pin=False) as conn:
        yield conn


def stored(conn: psycopg.Connection[Any]) -> list[dict[str, str]]:
    return [dict(r[0]) for r in conn.execute("SELECT constants FROM asymm.query_constants ORDER BY queryid")]


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def test_query_id_is_visible(aconn: psycopg.Connection[Any], dsn: str) -> None:
    """The sampler matches by pg_stat_activity.query_id: compute_query_id gives one here."""
    assert aconn.execute("SHOW compute_query_id").fetchone() in (("auto",), ("on",))
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SELECT count(*) FROM events WHERE id = 1")
        pid = other.info.backend_pid
        row = aconn.execute("SELECT query_id FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    assert row is not None and row[0] is not None


def test_sampled_jsonb_key_gives_the_expression_index(aconn: psycopg.Connection[Any], dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as app:  # the application: stays idle, its last query visible
        for i in range(200):
            app.execute("SELECT id, kind FROM events WHERE payload->>'session' = %s", (f"s{i * 37}",))
        without = advise(aconn, Settings())  # what main proposes: the key was normalized away
        assert not any(SESSION_KEY in i["definition"] for i in without["indexes"])
        result = sample_constants(aconn)
    assert result["stored"] == 1
    assert stored(aconn) == [{"2": "'session'"}]  # the key only; the compared session ids never
    advice = advise(aconn, Settings())
    definitions = [i["definition"] for i in advice["indexes"]]
    assert any(SESSION_KEY in d for d in definitions), definitions
    # a second run stores nothing new: the statement has its constants
    assert sample_constants(aconn)["seen"] == 0


def test_date_trunc_unit_and_group_by_ordinal(aconn: psycopg.Connection[Any], dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as app:
        app.execute(
            "SELECT payload->>'type', count(*) FROM events WHERE date_trunc('day', occurred_at) = %s"
            " AND kind IN ('view', 'buy') GROUP BY 1 ORDER BY 2 DESC LIMIT 3",
            ("2026-01-02",),
        )
        aconn.execute(
            "SELECT asymm.snapshot()"
        )  # the telemetry records the text: read there, not from pg_stat_statements
        assert aconn.execute("SELECT count(*) FROM asymm.queries WHERE query LIKE '%date_trunc($%'").fetchone() == (1,)
        sample_constants(aconn)
    (constants,) = stored(aconn)
    assert sorted(constants.values()) == ["'day'", "'type'"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=10),
    values=st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10), min_size=3, max_size=3
    ),
    number=st.integers(-(2**31), 2**31 - 1),
    limit=st.integers(0, 1000),
    unit=st.sampled_from(["day", "hour", "week"]),
)
def test_compared_values_are_never_stored(
    aconn: psycopg.Connection[Any],
    dsn: str,
    key: str,
    values: list[str],
    number: int,
    limit: int,
    unit: str,
) -> None:
    aconn.execute("DELETE FROM asymm.query_constants")
    compared = [lit("v:" + v) for v in values]  # marked apart from the key, so that equality means a leak
    text = (
        f"SELECT id FROM events WHERE payload->>{lit('k:' + key)} = {compared[0]} AND id > {number}"  # noqa: S608
        f" AND kind IN ({compared[1]}, {compared[2]}) ORDER BY date_trunc({lit(unit)}, occurred_at) LIMIT {limit}"
    )
    with psycopg.connect(dsn, autocommit=True) as app:
        app.execute(text.encode())
        sample_constants(aconn)
    rows = stored(aconn)
    assert len(rows) == 1
    assert sorted(rows[0].values()) == sorted([lit("k:" + key), lit(unit)])
    assert not set(rows[0].values()) & {*compared, str(number), str(limit)}


def test_trees_that_do_not_match_store_nothing(aconn: psycopg.Connection[Any], dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as app:
        # two statements in one query string: pg_stat_activity shows both, the entry is the last one
        app.execute("SELECT 1; SELECT id FROM events WHERE payload->>'session' = 's1'")
        assert sample_constants(aconn)["stored"] == 0
        # a text longer than track_activity_query_size: pg_stat_activity shows it truncated
        app.execute(f"SELECT id FROM events WHERE payload->>'type' = 'a' AND kind <> {lit('x' * 1500)}")  # noqa: S608
        assert sample_constants(aconn)["stored"] == 0
    assert stored(aconn) == []
    # the parallel walk refuses a raw text of another shape, whatever constants it has
    assert (
        match("SELECT id FROM events WHERE payload->'session' = 1", "SELECT id FROM events WHERE payload->>$1 = $2")
        == {}
    )


def test_substitute_only_puts_back_literals() -> None:
    query = "SELECT id FROM events WHERE payload->>$2 = $1"
    assert substitute(query, {2: "'it''s'"}) == "SELECT id FROM events WHERE payload ->> 'it''s' = $1"
    # anything but one literal is ignored: no stored text is pasted into SQL
    assert substitute(query, {2: "'a' || current_user"}) == query
    assert substitute(query, {2: "'a'); DROP TABLE events; --"}) == query
    # the compared value's parameter is not a grammar position: never replaced
    assert substitute(query, {1: "'x'"}) == query


def test_bench_feed_samples_the_events_workload(make_db: Callable[..., str]) -> None:
    """bench/advisor.py's feed stores the events workload's payload->> keys (a dry run at a small scale)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    try:
        import advisor as bench  # type: ignore[import-not-found]
        from advisor_workloads import events  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    dsn = make_db()
    wl = events.WORKLOAD
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute(wl.schema(0.01))
        conn.execute("VACUUM ANALYZE")
        conn.execute("SELECT public.pg_stat_statements_reset()")
    shapes = [s for s in wl.shapes(0.01) if "payload->>" in s.sql]
    assert shapes
    _, count = bench.feed_shapes(dsn, [_small(s) for s in shapes])
    assert count == len(shapes)
    with psycopg.connect(dsn, autocommit=True) as conn:
        keys = {v for (doc,) in conn.execute("SELECT constants FROM asymm.query_constants") for v in doc.values()}
    assert "'session'" in keys and "'type'" in keys
    assert json.dumps(sorted(keys))  # literals only, printable


def _small(shape: Any) -> Any:
    from dataclasses import replace

    return replace(shape, weight=min(shape.weight, 5))


def test_only_owner_and_daemon_roles_read_the_constants(aconn: psycopg.Connection[Any]) -> None:
    suffix = aconn.info.dbname
    reader, daemon = f"{suffix}_reader", f"{suffix}_daemon"
    aconn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(reader)))
    aconn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(daemon)))
    try:
        aconn.execute("SELECT asymm.grant_reader(%s::regrole)", (reader,))
        aconn.execute("SELECT asymm.grant_daemon(%s::regrole)", (daemon,))
        rows = aconn.execute(
            "SELECT r, has_table_privilege(r, 'asymm.query_constants', 'SELECT'),"
            "       has_table_privilege(r, 'asymm.query_constants', 'INSERT')"
            "  FROM unnest(ARRAY[%s, %s, 'public']) r ORDER BY r",
            (reader, daemon),
        ).fetchall()
        by_role = {r: (s, i) for r, s, i in rows}
        assert by_role[daemon] == (True, True)
        assert by_role[reader] == (False, False)
        assert by_role["public"] == (False, False)
    finally:
        aconn.execute("SELECT asymm.revoke_daemon(%s::regrole)", (daemon,))
        for role in (reader, daemon):
            aconn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            aconn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


class _Ctx:
    """The daemon as the constants task sees it: only its connection is used."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def conn(self) -> psycopg.Connection[Any]:
        return self._conn


def test_daemon_task_samples_each_statement_once(aconn: psycopg.Connection[Any], dsn: str) -> None:
    from asymm.advisor.feature import AdvisorFeature
    from asymm.daemon.feature import TaskContext

    feature = AdvisorFeature()
    tasks = {t.name: t for t in feature.tasks(cast(TaskContext, _Ctx(aconn)))}
    sampler = tasks["advisor-constants"]
    with psycopg.connect(dsn, autocommit=True) as app:
        app.execute("SELECT id FROM events WHERE payload->>'session' = 's1'")
        sampler.run(cast(Any, None))
        app.execute("SELECT id FROM events WHERE id = 1")  # no grammar constant: tried once, not again
        sampler.run(cast(Any, None))
        assert feature.constants is not None and feature.constants.tried
        sampler.run(cast(Any, None))
    assert stored(aconn) == [{"1": "'session'"}]
    assert (feature.status() or {})["constants_stored"] == 1
