"""Index advisor, two defect classes (real PostgreSQL + HypoPG): a normalized constant used in
arithmetic must be typed so the statement is planned wherever it stands (VALUES, SET, a target
list, ON CONFLICT, WHERE), and a LIMIT answered by walking an index while filtering is costed at
the whole walk, not at the fraction the planner hopes for."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asymm.advisor.advise import Settings, advise
from asymm.advisor.workload import Statement
from asymm.db import connect

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE tasks (id bigserial PRIMARY KEY, tenant_id int NOT NULL, project_id int NOT NULL, title text NOT NULL,
                    status text NOT NULL, due_on date, created_at timestamptz NOT NULL, done_at timestamp,
                    effort numeric NOT NULL DEFAULT 1, UNIQUE (tenant_id, title));
INSERT INTO tasks (tenant_id, project_id, title, status, due_on, created_at, done_at, effort)
SELECT 1 + g % 100, 1 + g % 700, 'task ' || g, (ARRAY['open','done','late'])[1 + g % 3],
       date '2026-01-01' + g % 400, timestamptz '2025-01-01' + g * interval '5 min',
       timestamp '2025-02-01' + g * interval '5 min', g % 13
  FROM generate_series(1, 20000) g;
CREATE TABLE events (id bigint PRIMARY KEY, occurred_at timestamptz NOT NULL, payload jsonb NOT NULL, pad text);
-- 200k events in time order; the 'audit' kind is rare and only among the oldest 1,000
INSERT INTO events SELECT g, timestamptz '2025-01-01' + g * interval '1 min',
       CASE WHEN g <= 1000 AND g % 5 = 0 THEN '{"kind": "audit"}'::jsonb
            ELSE jsonb_build_object('kind', 'k' || g % 50, 'n', g) END, repeat('p', 40)
  FROM generate_series(1, 200000) g;
"""


@pytest.fixture
def dsn(make_db: Callable[..., str]) -> str:
    dsn = make_db()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("VACUUM ANALYZE")
    return dsn


@pytest.fixture
def aconn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(dsn, pin=False) as conn:
        yield conn


def stmt(query: str, calls: int = 1000) -> Statement:
    return Statement(abs(hash(query)) % 2**62, query, calls, calls * 1.0, calls)


# -- 1. a normalized constant in arithmetic ---------------------------------------------------

# pg_stat_statements texts: every constant is $n, numbered in order (and with gaps where a
# constant was folded, as $5 and $6 here)
NORMALIZED = [
    "INSERT INTO tasks (tenant_id, project_id, title, status, due_on, created_at) "
    "VALUES ($1, $2, $3, $4, current_date + $7, now())",
    "INSERT INTO tasks (tenant_id, project_id, title, status, due_on, created_at) "
    "VALUES ($1, $2, $3, $4, current_date + $5, now() - $6)",
    "INSERT INTO tasks (tenant_id, project_id, title, status, due_on, created_at, done_at) "
    "VALUES ($1, $2, $3, $4, current_date + $5, now(), localtimestamp - $6), ($7, $8, $9, $10, $11, now(), NULL)",
    "UPDATE tasks SET due_on = due_on + $1, done_at = done_at + $2 WHERE tenant_id = $3 AND id = $4",
    "UPDATE tasks SET due_on = current_date + $1 WHERE tenant_id = $2 AND created_at < now() - $3",
    "INSERT INTO tasks (tenant_id, project_id, title, status, due_on, created_at) "
    "SELECT tenant_id, project_id, title || $1, status, due_on + $2, created_at + $3 FROM tasks WHERE id = $4",
    "INSERT INTO tasks (tenant_id, project_id, title, status, due_on, created_at) VALUES ($1, $2, $3, $4, $5, now()) "
    "ON CONFLICT (tenant_id, title) DO UPDATE SET due_on = excluded.due_on + $6, created_at = tasks.created_at - $7",
    "INSERT INTO tasks (tenant_id, project_id, title, status, created_at) VALUES ($1, $2, $3, $4, now()) "
    "RETURNING id, created_at + $5",
    "UPDATE tasks SET effort = tasks.effort * $1 + $2 FROM tasks AS t2 "
    "WHERE t2.id = tasks.id AND t2.due_on > current_date - $3",
    "SELECT id FROM tasks WHERE tenant_id = $1 AND due_on < current_date + $2 AND done_at > localtimestamp - $3",
    "SELECT id FROM tasks WHERE $1 - due_on > $2 AND due_on < current_date + $3 AND $4 - created_at > $5",
]


def test_every_normalized_statement_with_parameter_arithmetic_is_planned(aconn: psycopg.Connection[Any]) -> None:
    workload = [stmt(q) for q in NORMALIZED]
    result = advise(aconn, Settings(), workload)
    assert result["skipped"] == [], [s["reason"] for s in result["skipped"]]
    assert result["planned"] == len(workload)


# where a parameter in arithmetic may stand, with the column it fills
DATE_OFFSETS = ["current_date + {p}", "due_on + {p}", "{p} + due_on", "due_on - {p}"]
TIME_OFFSETS = ["now() - {p}", "created_at + {p}", "current_timestamp - {p}", "{p} + now()"]
NUMBER_OFFSETS = ["effort * {p}", "effort + {p}", "{p} * effort / {p2}"]


@st.composite
def arithmetic_statement(draw: st.DrawFn) -> str:
    """One statement with a parameter in arithmetic in a drawn position (numbered as normalization does).

    Built from the fixed fragments above only (hence the S608 waivers): a text handed to the
    advisor as pg_stat_statements would, never executed.
    """
    date_expr = draw(st.sampled_from(DATE_OFFSETS))
    time_expr = draw(st.sampled_from(TIME_OFFSETS))
    number_expr = draw(st.sampled_from(NUMBER_OFFSETS))
    position = draw(st.sampled_from(["values", "set", "select", "conflict", "where", "returning"]))
    counter = iter(range(1, 100))

    def fill(template: str) -> str:
        return template.format(p=f"${next(counter)}", p2=f"${next(counter)}")

    if position == "values":
        d = fill(date_expr.replace("due_on", "current_date"))
        t = fill(time_expr.replace("created_at", "now()"))
        return (
            f"INSERT INTO tasks (tenant_id, project_id, title, status, due_on, created_at) "  # noqa: S608
            f"VALUES (${next(counter)}, ${next(counter)}, ${next(counter)}, ${next(counter)}, {d}, {t})"
        )
    if position == "set":
        d, t, n = fill(date_expr), fill(time_expr), fill(number_expr)
        return f"UPDATE tasks SET due_on = {d}, created_at = {t}, effort = {n} WHERE id = ${next(counter)}"  # noqa: S608
    if position == "select":
        d, t = fill(date_expr), fill(time_expr)
        return (
            "INSERT INTO tasks (tenant_id, project_id, title, status, due_on, created_at) "  # noqa: S608
            f"SELECT tenant_id, project_id, title, status, {d}, {t} FROM tasks WHERE id = ${next(counter)}"
        )
    if position == "conflict":
        head = ", ".join(f"${next(counter)}" for _ in range(4))
        d = fill(date_expr.replace("due_on", "excluded.due_on"))
        t = fill(time_expr.replace("created_at", "tasks.created_at"))
        return (
            f"INSERT INTO tasks (tenant_id, project_id, title, status, created_at) VALUES ({head}, now()) "  # noqa: S608
            f"ON CONFLICT (tenant_id, title) DO UPDATE SET due_on = {d}, created_at = {t}"
        )
    if position == "returning":
        head = ", ".join(f"${next(counter)}" for _ in range(4))
        d, t = fill(date_expr), fill(time_expr)
        return (
            f"INSERT INTO tasks (tenant_id, project_id, title, status, due_on, created_at) "  # noqa: S608
            f"VALUES ({head}, current_date, now()) RETURNING {d}, {t}"
        )
    d, t, n = fill(date_expr), fill(time_expr), fill(number_expr)
    return f"SELECT id FROM tasks WHERE due_on < {d} AND created_at > {t} AND effort >= {n}"  # noqa: S608


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queries=st.lists(arithmetic_statement(), min_size=1, max_size=3, unique=True))
def test_a_parameter_in_arithmetic_is_typed_in_any_position(aconn: psycopg.Connection[Any], queries: list[str]) -> None:
    result = advise(aconn, Settings(), [stmt(q) for q in queries])
    assert result["skipped"] == [], [(s["query"], s["reason"]) for s in result["skipped"]]
    assert result["planned"] == len(queries)


# -- 3. a fragile LIMIT plan -------------------------------------------------------------------

RARE = "SELECT * FROM events WHERE payload @> $1 ORDER BY occurred_at DESC LIMIT 50"


def test_a_limit_walking_the_sort_index_past_rare_rows_is_not_sold_as_a_gain(aconn: psycopg.Connection[Any]) -> None:
    """The planner assumes the 'audit' rows are spread evenly, so a backward walk of (occurred_at)
    would stop after a fraction of the index; they are all at the old end, so it reads it all."""
    stmt_ = stmt(RARE)
    result = advise(aconn, Settings(), [stmt_])
    on_time = [i for i in result["indexes"] if i["columns"][0].split()[0] == "occurred_at"]
    slower = {s["queryid"] for s in result["slower_statements"]}
    assert not on_time or stmt_.queryid in slower, (result["indexes"], result["slower_statements"])
    # and the real execution agrees: the walk along an index on occurred_at is slower than no index
    conn = aconn
    conn.execute("CREATE INDEX events_at ON events (occurred_at)")
    with_index = _buffers(conn, RARE.replace("$1", '\'{"kind": "audit"}\''))
    conn.execute("DROP INDEX events_at")
    without = _buffers(conn, RARE.replace("$1", '\'{"kind": "audit"}\''))
    assert with_index > without


def _buffers(conn: psycopg.Connection[Any], query: str) -> int:
    """Shared buffers the statement touches when it runs (hits + reads): what the walk costs."""
    row = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}").fetchone()
    assert row is not None
    plan = row[0][0]["Plan"]
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])
