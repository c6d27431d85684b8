"""asymm.baseline() refuses a schema list that would capture nothing, and keeps the old baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors

ASYMM = str(Path(sys.executable).with_name("asymm"))
Conn = psycopg.Connection[tuple[Any, ...]]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ASYMM, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def drifted(conn: Conn) -> Conn:
    """Baseline ``b`` of schema app, then a column added: drift exists."""
    conn.execute("CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY)")
    conn.execute("SELECT asymm.baseline('b', ARRAY['app'])")
    conn.execute("ALTER TABLE app.t ADD COLUMN note text")
    assert drift_count(conn) == 1
    return conn


def drift_count(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM asymm.drift('b')").fetchone()
    assert row is not None
    return int(row[0])


def stored(conn: Conn) -> tuple[Any, ...] | None:
    return conn.execute("SELECT schemas, snapshot, captured_at FROM asymm.drift_baselines WHERE name = 'b'").fetchone()


@pytest.mark.parametrize(
    ("schemas", "error"),
    [
        (["nope"], errors.InvalidSchemaName),
        (["app", "Nope"], errors.InvalidSchemaName),
        ([], errors.InvalidParameterValue),
        ([None], errors.InvalidParameterValue),
        ([""], errors.InvalidParameterValue),
        (["app", "app"], errors.InvalidParameterValue),
        (["pg_catalog"], errors.InvalidParameterValue),
        (["information_schema"], errors.InvalidParameterValue),
        (["asymm"], errors.InvalidParameterValue),
        (["pg_toast"], errors.InvalidParameterValue),
    ],
)
def test_a_schema_list_that_captures_nothing_is_refused_and_the_old_baseline_kept(
    drifted: Conn, schemas: list[str | None], error: type[psycopg.Error]
) -> None:
    before = stored(drifted)
    with pytest.raises(error) as refused:
        drifted.execute("SELECT asymm.baseline('b', %s::text[])", (schemas,))
    assert refused.value.diag.message_hint
    assert stored(drifted) == before
    assert drift_count(drifted) == 1  # the earlier drift is still reported


def test_null_and_existing_schemas_still_work(drifted: Conn) -> None:
    assert drifted.execute("SELECT asymm.baseline('all', NULL) > 0").fetchone() == (True,)
    assert drifted.execute("SELECT asymm.baseline('b', ARRAY['app', 'public']) > 0").fetchone() == (True,)
    assert drift_count(drifted) == 0


def test_accept_after_the_schema_was_dropped(drifted: Conn) -> None:
    drifted.execute("CREATE SCHEMA more")
    drifted.execute("SELECT asymm.baseline('b', ARRAY['app', 'more'])")
    drifted.execute("DROP SCHEMA more")
    assert drifted.execute("SELECT asymm.drift_accept('b') > 0").fetchone() == (True,)
    assert stored(drifted)[0] == ["app"]  # type: ignore[index]
    drifted.execute("DROP SCHEMA app CASCADE")
    with pytest.raises(errors.InvalidSchemaName):
        drifted.execute("SELECT asymm.drift_accept('b')")


def test_cli_baseline_of_a_missing_schema_fails_in_one_line_and_drift_still_reports(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY)")
    assert run("baseline", "b", "--schema", "app", "--dsn", db).returncode == 0
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("ALTER TABLE app.t ADD COLUMN note text")
    out = run("baseline", "b", "--schema", "no_such_schema", "--dsn", db)
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert 'schema "no_such_schema" does not exist' in lines[0] and "hint:" in lines[0]
    assert "CONTEXT" not in out.stderr and "PL/pgSQL" not in out.stderr and "Traceback" not in out.stderr
    assert run("drift", "b", "--dsn", db).returncode == 3
