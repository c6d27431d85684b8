"""Argument checks of the SQL API: one focused test per defect the fuzzer (tests/integration/test_sql_fuzz.py)
found.  Each bad argument must give a clean ERROR: a proper SQLSTATE (not an internal error, not
an uncaught PL/Python exception), a one-line message of reasonable length, a HINT; never a hang.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

LONG = "x" * 100_000


def _error(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(query, params)  # type: ignore[arg-type]
    return caught.value


def _assert_clean(exc: psycopg.Error, sqlstate: str) -> str:
    """The error has the expected SQLSTATE, a hint, and a short one-line message; returns it."""
    message = exc.diag.message_primary or ""
    assert exc.sqlstate == sqlstate, (exc.sqlstate, message)
    assert "\n" not in message and len(message) <= 300, message[:400]
    assert "Error:" not in message and "Traceback" not in message, message
    assert exc.diag.message_hint, message
    return message


@pytest.fixture
def tables(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute("CREATE TABLE chk (id int PRIMARY KEY, v text)")
    conn.execute("INSERT INTO chk VALUES (1, 'a'), (2, 'a')")
    return conn


# --- asymm._annotate_object / asymm._address_of: pg_identify_object_as_address() fails with
# XX000 "unrecognized object class" on a class id it does not know, and names system columns.


@pytest.mark.parametrize("classid", [0, 2619])  # no catalog; pg_statistic, not an object class
def test_annotate_object_refuses_an_unknown_object_class(conn: psycopg.Connection[Any], classid: int) -> None:
    exc = _error(conn, "SELECT asymm._annotate_object(%s, 1, 0, 'x', 'local', 'Balance', 'O(1)', '{}')", (classid,))
    _assert_clean(exc, "22023")
    exc = _error(conn, "SELECT asymm._address_of(%s, 1, 0)", (classid,))
    _assert_clean(exc, "22023")


def test_annotate_object_refuses_a_system_column(tables: psycopg.Connection[Any]) -> None:
    """objsubid -1 is ctid: it was annotated (an annotation no view could resolve)."""
    exc = _error(
        tables,
        "SELECT asymm._annotate_object('pg_class'::regclass, 'chk'::regclass, -1,"
        " 'x', 'local', 'Balance', 'O(1)', '{}')",
    )
    _assert_clean(exc, "22023")
    assert tables.execute("SELECT count(*) FROM asymm.annotation_entries").fetchone() == (0,)
    exc = _error(tables, "SELECT asymm._address_of('pg_proc'::regclass, 'now()'::regprocedure, 5)")
    _assert_clean(exc, "22023")


# --- annotation validation (PL/Python): a two-dimensional lineage, or a malformed entry, raised
# a Python TypeError/AttributeError (SQLSTATE 38000) instead of naming the field.


def test_annotate_with_a_two_dimensional_lineage_names_the_field(tables: psycopg.Connection[Any]) -> None:
    for call in (
        "SELECT asymm.annotate('chk', 'x', 'local', 'Balance', 'O(1)', '{{create,query},{update,delete}}')",
        "SELECT asymm.annotate('chk'::regclass, 'x', 'local', 'Balance', 'O(1)', '{{create},{query}}')",
    ):
        message = _assert_clean(_error(tables, call), "22023")
        assert "lineage" in message and "one-dimensional" in message


@pytest.mark.parametrize(
    "entry",
    [
        None,
        "[]",
        "5",
        '"x"',
        '{"symbol": "a", "scope": "local", "regime": "Balance",'
        ' "cost": "O(1)", "source": "user", "lineage": "abc", "confidence": 1}',
        '{"symbol": "a", "scope": "local", "regime": "Balance", "cost": "O(1)",'
        ' "source": "user", "lineage": [], "confidence": 1, "evidence": "x"}',
        '{"symbol": "a", "scope": "local", "regime": "Balance", "cost": "O(1)",'
        ' "source": "user", "lineage": [], "confidence": 1, "evidence": 1,'
        ' "target_type": "table", "target_names": 5}',
        "[" * 5000 + "]" * 5000,
    ],
)
def test_annotation_problem_reports_a_malformed_entry(conn: psycopg.Connection[Any], entry: str | None) -> None:
    row = conn.execute("SELECT asymm._annotation_problem(%s::jsonb)", (entry,)).fetchone()
    assert row is not None and row[0] is not None and len(row[0]) == 3, row


def test_annotation_messages_show_at_most_a_part_of_a_huge_value(tables: psycopg.Connection[Any]) -> None:
    for call in (
        "SELECT asymm.annotate('chk'::regclass, %s, 'local', 'Balance', 'O(1)', '{}')",
        "SELECT asymm.annotate('chk'::regclass, 'x', %s, 'Balance', 'O(1)', '{}')",
        "SELECT asymm.annotate('chk'::regclass, 'x', 'local', 'Balance', 'O(1)', ARRAY[%s])",
    ):
        _assert_clean(_error(tables, call, (LONG,)), "22023")


# --- asymm.plan_cost_class(): anything but a plan raised a Python exception (SQLSTATE 38000).


@pytest.mark.parametrize(
    "plan",
    [
        "[1]",
        '{"Plans": 5}',
        '{"Plans": [1]}',
        '{"Node Type": 5}',
        '"x"',
        '{"Node Type": "Nested Loop", "Plans": [' * 3000 + "{}" + "]}" * 3000,
    ],
)
def test_plan_cost_class_refuses_what_is_not_a_plan(conn: psycopg.Connection[Any], plan: str) -> None:
    message = _assert_clean(_error(conn, "SELECT asymm.plan_cost_class(%s::jsonb)", (plan,)), "22023")
    assert message.startswith("invalid plan")


def test_plan_cost_class_still_classifies_plans(tables: psycopg.Connection[Any]) -> None:
    row = tables.execute(
        "SELECT asymm.plan_cost_class(asymm.generic_plan('SELECT * FROM chk WHERE id = $1'))"
        " ->> 'cost', asymm.plan_cost_class('{}') ->> 'cost'"
    ).fetchone()
    assert row == ("O(log n)", "O(1)")


# --- asymm._drift_compare(): a NULL snapshot raised a Python TypeError (SQLSTATE 38000).


def test_drift_compare_of_a_null_snapshot_is_null(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        "SELECT asymm._drift_compare(NULL, '[]', true), asymm._drift_compare('[]', NULL, false)"
    ).fetchone()
    assert row == (None, None)


# --- Messages that echoed a whole argument: 100k characters, or several lines.


@pytest.mark.parametrize(
    "call",
    [
        "SELECT asymm.setting(%s)",
        "SELECT asymm.reset_setting(%s)",
        "SELECT asymm.setting_check(%s, 'x')",
        "SELECT asymm.drift_accept(%s)",
        "SELECT * FROM asymm.drift_plan(%s)",
        "SELECT asymm.drift_sql(%s)",
        "SELECT asymm.annotate('chk'::regclass, %s, 'x', 'local', 'Balance', 'O(1)', '{}')",
        "SELECT asymm.resolve('chk'::regclass, %s)",
        "SELECT asymm.annotate(%s::text, 'x', 'local', 'Balance', 'O(1)', '{}')",
        "SELECT * FROM asymm.find_duplicates('chk', ARRAY[%s])",
        "SELECT asymm.track('chk', ARRAY[%s])",
    ],
)
@pytest.mark.parametrize("value", [LONG, "two\nlines"])
def test_messages_echo_arguments_on_one_short_line(tables: psycopg.Connection[Any], call: str, value: str) -> None:
    exc = _error(tables, call, (value,))
    assert exc.sqlstate in ("42704", "42703", "22023"), exc.sqlstate
    _assert_clean(exc, exc.sqlstate)


def test_a_short_name_is_still_shown_whole(conn: psycopg.Connection[Any]) -> None:
    message = _assert_clean(_error(conn, "SELECT asymm.setting('no.such.setting')"), "42704")
    assert message == 'unknown asymm setting "no.such.setting"'


# --- asymm.track(): a NULL sensitive column was accepted (and stored).


def test_track_refuses_a_null_sensitive_column(tables: psycopg.Connection[Any]) -> None:
    message = _assert_clean(_error(tables, "SELECT asymm.track('chk', '{v,NULL}')"), "42703")
    assert "NULL" in message
    assert tables.execute("SELECT count(*) FROM asymm.sync_tables").fetchone() == (0,)


# --- asymm.ensure_telemetry_partitions(): a far horizon created one partition per hour until the
# statement was cancelled (1000 years: 8.8 million CREATE TABLE).


@pytest.mark.parametrize("ahead", ["1000 years", "32 days"])
def test_ensure_telemetry_partitions_refuses_a_far_horizon(conn: psycopg.Connection[Any], ahead: str) -> None:
    conn.execute("SET statement_timeout = '20s'")
    started = time.monotonic()
    message = _assert_clean(_error(conn, "SELECT asymm.ensure_telemetry_partitions(%s::interval)", (ahead,)), "22023")
    assert time.monotonic() - started < 5
    assert "31 days" in message


def test_ensure_telemetry_partitions_accepts_a_week(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute("SELECT asymm.ensure_telemetry_partitions('7 days')").fetchone()
    assert row is not None and row[0] is not None  # (a count of what was created: never negative)
    covered = conn.execute(
        "SELECT raw_partitions_until >= now() + interval '7 days',"
        "       minute_partitions_until >= now() + interval '7 days'"
        "  FROM asymm.telemetry_state"
    ).fetchone()
    assert covered == (True, True), "the week is not covered by partitions"
    again = conn.execute("SELECT asymm.ensure_telemetry_partitions('7 days')").fetchone()
    assert again == (0,), "a second call created partitions again"


# --- asymm._pgss_changes() (C): the schema name it was given was printed inside the message.


def test_pgss_changes_keeps_an_odd_schema_name_out_of_the_message(conn: psycopg.Connection[Any]) -> None:
    exc = _error(conn, "SELECT * FROM asymm._pgss_changes(%s, 0, false, NULL, NULL)", ("two\nlines" + "x" * 10_000,))
    message = _assert_clean(exc, "42883")
    assert "pg_stat_statements" in message and "two" not in message
