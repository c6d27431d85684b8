"""Schema drift, issue #19: a migration plan must bring the schema back.

Each scenario baselines a schema, runs DDL a real migration contains, and then checks the
whole round trip, not a substring of the plan: the plan validates on the scratch copy, applies to
the live database with psql's ON_ERROR_STOP, and leaves ``asymm.drift(NAME)`` empty.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from asymm import drift
from asymm.db import with_dbname
from asymm.drift.api import PlanStep, lock_timeout, render_sql
from asymm.drift.scratch import _pg_tool, tool_env

SETUP = """
CREATE TABLE {s}.t (id int PRIMARY KEY, a int NOT NULL, b text DEFAULT 'x', c int CONSTRAINT t_c_positive CHECK (c > 0),
                    v varchar(20), w varchar);
CREATE INDEX t_b ON {s}.t (b);
CREATE TABLE {s}.u (id int PRIMARY KEY, t_id int REFERENCES {s}.t (id));
"""


@pytest.fixture(scope="module")
def dsn(admin_dsn: str) -> Iterator[str]:
    name = f"asymm_drift_rt_{os.getpid()}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = with_dbname(admin_dsn, name)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("CREATE EXTENSION asymm CASCADE")
    try:
        yield target
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def apply_with_psql(dsn: str, conn: psycopg.Connection[Any], steps: list[PlanStep]) -> None:
    """What a DBA does with ``asymm drift NAME --sql``: psql -v ON_ERROR_STOP=1 -f plan.sql."""
    script = render_sql(steps, lock_timeout(conn), None)
    run = subprocess.run(
        [_pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn],
        input=script,
        capture_output=True,
        text=True,
        env=tool_env(conn),
    )
    assert run.returncode == 0, (run.stderr, script)


@dataclass
class RoundTrip:
    steps: list[PlanStep]
    rewrote_t: bool  # whether applying the plan gave table t a new relfilenode

    @property
    def statements(self) -> list[str]:
        return [st.statement for st in self.steps]

    def hazards_of(self, needle: str) -> list[str]:
        return [h for st in self.steps if needle in st.statement for h in st.hazards]


def round_trip(dsn: str, name: str, change: str, setup: str = SETUP) -> RoundTrip:
    """Baseline ``setup`` in its own schema, run ``change``, and check that the plan validates,
    applies and leaves no drift; returns the plan for the scenario's own checks."""
    s = f"rt_{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(s)))
        conn.execute(setup.format(s=s).encode())
        drift.capture_baseline(conn, name, [s])
        assert drift.drift_items(conn, name) == [], "a fresh baseline has no drift"
        for statement in change.format(s=s).split(";\n"):
            with contextlib.suppress(psycopg.errors.UniqueViolation):  # a failing concurrent build's own
                conn.execute(statement.encode())
        assert drift.drift_items(conn, name), "the change is drift"
        steps = drift.plan(conn, name)
        text = "\n".join(f"{st.phase}: {st.statement}" for st in steps)
        validation = drift.validate_plan(conn, name, steps)
        assert validation.ok, (validation.error, validation.failed_step, validation.remaining, text)
        relfilenode = "SELECT pg_relation_filenode(to_regclass(%s))"
        before = conn.execute(relfilenode, (f"{s}.t",)).fetchone()
        apply_with_psql(dsn, conn, steps)
        after = conn.execute(relfilenode, (f"{s}.t",)).fetchone()
        left = drift.drift_items(conn, name)
        assert left == [], (left, text)
        conn.execute("DELETE FROM asymm.drift_baselines WHERE name = %s", (name,))
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(s)))
    return RoundTrip(steps, before != after)


def statements(steps: list[PlanStep]) -> list[str]:
    return [st.statement for st in steps]


DUPLICATES = "INSERT INTO {s}.t (id, a) VALUES (1, 1), (2, 1);"  # a UNIQUE (a) build fails on these


# -- renames as a permutation ------------------------------------------------------------------


def test_a_column_swap_through_a_temporary_name_is_swapped_back(dsn: str) -> None:
    trip = round_trip(
        dsn,
        "swap_columns",
        "ALTER TABLE {s}.t RENAME COLUMN a TO tmp;\nALTER TABLE {s}.t RENAME COLUMN c TO a;\n"
        "ALTER TABLE {s}.t RENAME COLUMN tmp TO c",
    )
    # the CHECK on c printed `a > 0` meanwhile: renaming back is all it needs
    assert all("RENAME COLUMN" in st for st in trip.statements), trip.statements


def test_a_table_swap_is_swapped_back(dsn: str) -> None:
    round_trip(
        dsn,
        "swap_tables",
        "ALTER TABLE {s}.t RENAME TO tmp;\nALTER TABLE {s}.u RENAME TO t;\nALTER TABLE {s}.tmp RENAME TO u",
    )


def test_a_chain_of_renames_is_undone_from_its_free_end(dsn: str) -> None:
    # a -> b would collide with b until b -> c... in reverse: b goes back to a first
    trip = round_trip(dsn, "chain", "ALTER TABLE {s}.t RENAME COLUMN b TO d;\nALTER TABLE {s}.t RENAME COLUMN a TO b")
    assert all("RENAME COLUMN" in st for st in trip.statements), trip.statements  # t_b follows its column


def test_a_renamed_column_whose_name_was_reused_gets_it_back(dsn: str) -> None:
    trip = round_trip(
        dsn, "reused_name", "ALTER TABLE {s}.t RENAME COLUMN b TO b_old;\nALTER TABLE {s}.t ADD COLUMN b int"
    )
    assert any("DROP COLUMN" in st for st in trip.statements)


def test_an_index_swap_is_swapped_back(dsn: str) -> None:
    round_trip(
        dsn,
        "swap_indexes",
        "ALTER INDEX {s}.t_b RENAME TO tmp;\nALTER INDEX {s}.t_c RENAME TO t_b;\nALTER INDEX {s}.tmp RENAME TO t_c",
        setup=SETUP + "CREATE INDEX t_c ON {s}.t (c);",
    )


# -- constraints re-added NOT VALID ------------------------------------------------------------


def test_a_check_re_added_not_valid_is_validated_once(dsn: str) -> None:
    trip = round_trip(
        dsn,
        "not_valid",
        "ALTER TABLE {s}.t DROP CONSTRAINT t_c_positive;\n"
        "ALTER TABLE {s}.t ADD CONSTRAINT t_c_positive CHECK (c > 0) NOT VALID",
    )
    assert [st for st in trip.statements if "VALIDATE" in st] == [
        "ALTER TABLE rt_not_valid.t VALIDATE CONSTRAINT t_c_positive"
    ], trip.statements
    assert not any("DROP CONSTRAINT" in st for st in trip.statements), "the constraint never goes away"


# -- indexes -----------------------------------------------------------------------------------


def test_a_same_name_index_with_a_new_definition_is_built_before_the_old_one_goes(dsn: str) -> None:
    texts = round_trip(dsn, "index_def", "DROP INDEX {s}.t_b;\nCREATE INDEX t_b ON {s}.t (b, id)").statements
    create = next(i for i, st in enumerate(texts) if st.startswith("CREATE INDEX CONCURRENTLY"))
    drop = next(i for i, st in enumerate(texts) if st.startswith("DROP INDEX"))
    assert create < drop, texts


def test_an_invalid_leftover_of_a_failed_concurrent_build_is_reported_invalid_and_dropped(dsn: str) -> None:
    setup = SETUP + DUPLICATES
    s = "rt_invalid_left"
    with psycopg.connect(dsn, autocommit=True) as conn:
        trip = round_trip(dsn, "invalid_left", "CREATE UNIQUE INDEX CONCURRENTLY t_a_unique ON {s}.t (a)", setup)
        assert any(st.startswith("DROP INDEX") and "t_a_unique" in st for st in trip.statements)
        # the report, on the same change again
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(s)))
        conn.execute(setup.format(s=s).encode())
        drift.capture_baseline(conn, "invalid_left", [s])
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY t_a_unique ON {s}.t (a)".encode())
        (item,) = drift.drift_items(conn, "invalid_left")
        assert item["kind"] == "invalid" and item["severity"] != "cosmetic", item
        conn.execute("DELETE FROM asymm.drift_baselines WHERE name = 'invalid_left'")
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(s)))


def test_a_plan_touching_an_invalid_baseline_index_validates_on_scratch(dsn: str) -> None:
    """pg_dump leaves INVALID indexes out, so the scratch copy must get them another way."""
    setup = SETUP + DUPLICATES
    with psycopg.connect(dsn, autocommit=True) as conn:
        s = "rt_invalid_base"
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(s)))
        conn.execute(setup.format(s=s).encode())
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY t_a_unique ON {s}.t (a)".encode())
        drift.capture_baseline(conn, "invalid_base", [s])
        conn.execute(f"ALTER INDEX {s}.t_a_unique RENAME TO t_a_unique2".encode())
        steps = drift.plan(conn, "invalid_base")
        validation = drift.validate_plan(conn, "invalid_base", steps)
        assert validation.ok, (validation.error, statements(steps))
        apply_with_psql(dsn, conn, steps)
        assert drift.drift_items(conn, "invalid_base") == []
        conn.execute("DELETE FROM asymm.drift_baselines WHERE name = 'invalid_base'")
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(s)))


# -- hazards, checked against what PostgreSQL does: a rewrite gives the table a new relfilenode


@pytest.mark.parametrize(
    ("name", "change", "rewrite"),
    [
        ("varchar_to_text", "ALTER TABLE {s}.t ALTER COLUMN w TYPE text", False),  # back: text -> varchar
        ("limited_to_text", "ALTER TABLE {s}.t ALTER COLUMN v TYPE text", True),  # back: text -> varchar(20)
        ("varchar_shorter", "ALTER TABLE {s}.t ALTER COLUMN v TYPE varchar(10)", False),  # back: a longer one
        ("varchar_longer", "ALTER TABLE {s}.t ALTER COLUMN v TYPE varchar(40)", True),  # back: a shorter one
        ("int_to_bigint", "ALTER TABLE {s}.t ALTER COLUMN c TYPE bigint", True),
        ("numeric_limited", "ALTER TABLE {s}.t ALTER COLUMN n TYPE numeric(12,2)", False),  # back: numeric
    ],
)
def test_a_type_change_back_is_called_a_rewrite_exactly_when_it_is_one(
    dsn: str, name: str, change: str, rewrite: bool
) -> None:
    trip = round_trip(dsn, name, change, SETUP + "ALTER TABLE {s}.t ADD COLUMN n numeric;")
    assert trip.rewrote_t is rewrite, trip.steps
    assert ("table rewrite" in trip.hazards_of(" TYPE ")) is rewrite, trip.steps


@pytest.mark.parametrize(
    ("name", "column", "rewrite"),
    [
        ("volatile_default", "r double precision DEFAULT random()", True),
        ("serial", "r serial", True),
        ("stable_default", "r timestamptz DEFAULT now()", False),
        ("constant_default", "r text DEFAULT 'x'", False),
        ("identity", "r int GENERATED ALWAYS AS IDENTITY", True),
        ("generated", "r int GENERATED ALWAYS AS (a * 2) STORED", True),
    ],
)
def test_re_adding_a_dropped_column_is_called_a_rewrite_exactly_when_it_is_one(
    dsn: str, name: str, column: str, rewrite: bool
) -> None:
    setup = SETUP + f"ALTER TABLE {{s}}.t ADD COLUMN {column}; INSERT INTO {{s}}.t (id, a) VALUES (1, 1);"  # noqa: S608
    trip = round_trip(dsn, name, "ALTER TABLE {s}.t DROP COLUMN r", setup)
    assert trip.rewrote_t is rewrite, trip.steps
    assert ("table rewrite" in trip.hazards_of("ADD COLUMN r")) is rewrite, trip.steps
