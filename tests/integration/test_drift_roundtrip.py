"""Schema drift, issue #19: a migration plan must bring the schema back.

Each scenario baselines a schema, runs DDL a real migration contains, and then checks the
whole round trip, not a substring of the plan: the plan validates on the scratch copy, applies to
the live database with psql's ON_ERROR_STOP, and leaves ``asymm.drift(NAME)`` empty.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from asymm import drift
from tests.harness.drift_trip import (
    ROLE,
    RoundTrip,
    RoundTripFailed,
    apply_with_psql,
    check_plan,
    drift_database,
    forget,
    fresh_schemas,
)

SETUP = """
CREATE TABLE {s}.t (id int PRIMARY KEY, a int NOT NULL, b text DEFAULT 'x', c int CONSTRAINT t_c_positive CHECK (c > 0),
                    v varchar(20), w varchar);
CREATE INDEX t_b ON {s}.t (b);
CREATE TABLE {s}.u (id int PRIMARY KEY, t_id int REFERENCES {s}.t (id));
"""


@pytest.fixture(scope="module")
def dsn(admin_dsn: str) -> Iterator[str]:
    with drift_database(admin_dsn, f"asymm_drift_rt_{os.getpid()}") as target:
        yield target


def round_trip(dsn: str, name: str, change: str, setup: str = SETUP, schemas: list[str] | None = None) -> RoundTrip:
    """Baseline ``setup`` in its own schema, run ``change``, and check that the plan validates,
    applies and leaves no drift; returns the plan for the scenario's own checks."""
    s = f"rt_{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_schemas(conn, [s])
        conn.execute(setup.format(s=s).encode())
        drift.capture_baseline(conn, name, [s, *(schemas or [])])
        assert drift.drift_items(conn, name) == [], "a fresh baseline has no drift"
        for statement in change.format(s=s).split(";\n"):
            with contextlib.suppress(psycopg.errors.UniqueViolation):  # a failing concurrent build's own
                conn.execute(statement.encode())
        assert drift.drift_items(conn, name), "the change is drift"
        trip = check_plan(dsn, conn, name, table=f"{s}.t")
        forget(conn, name, [s, *(schemas or [])])
    return trip


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


@pytest.mark.parametrize("how", ["redefined", "dropped"])
def test_a_unique_index_over_duplicates_stops_the_plan_before_any_build(dsn: str, how: str) -> None:
    """The pre-check fails first, with a hint: no INVALID leftover, the current index untouched."""
    s = f"rt_unique_{how}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_schemas(conn, [s])
        conn.execute((SETUP + "CREATE UNIQUE INDEX t_a_u ON {s}.t (a) WHERE a > 0;").format(s=s).encode())
        drift.capture_baseline(conn, f"unique_{how}", [s])
        conn.execute(f"DROP INDEX {s}.t_a_u".encode())
        if how == "redefined":
            conn.execute(f"CREATE INDEX t_a_u ON {s}.t (a)".encode())
        conn.execute(DUPLICATES.format(s=s).encode())
        steps = drift.plan(conn, f"unique_{how}")
        check = next(st for st in steps if st.statement.startswith("DO "))
        assert check.step < min(st.step for st in steps if "CREATE UNIQUE INDEX" in st.statement), steps
        assert drift.validate_plan(conn, f"unique_{how}", steps).ok  # the scratch copy has no rows
        with pytest.raises(RoundTripFailed, match="duplicate keys"):
            apply_with_psql(dsn, conn, steps)
        indexes = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = %s::regclass ORDER BY 1",
            (f"{s}.t",),
        ).fetchall()
        forget(conn, f"unique_{how}", [s])
    expected = [("t_a_u", True)] if how == "redefined" else []
    assert indexes == [*expected, ("t_b", True), ("t_pkey", True)], indexes


def test_a_name_holding_the_pre_checks_dollar_quote_cannot_end_it_early(dsn: str) -> None:
    """A role names its table so that the DO body would end inside the name and run the rest as the
    plan's applier: the pre-check picks a quote the name does not hold."""
    hostile = '"x$asymm_check$ END; $asymm_check$; DROP TABLE {s}.u; --"'
    setup = SETUP + f"CREATE TABLE {{s}}.{hostile} (a int); CREATE UNIQUE INDEX h_a ON {{s}}.{hostile} (a);"
    trip = round_trip(dsn, "dollar_quote", "DROP INDEX {s}.h_a", setup)
    (check,) = [st for st in trip.statements if st.startswith("DO ")]
    assert check.startswith("DO $asymm_check_$ "), check


def test_an_invalid_leftover_of_a_failed_concurrent_build_is_reported_invalid_and_dropped(dsn: str) -> None:
    setup = SETUP + DUPLICATES
    s = "rt_invalid_left"
    with psycopg.connect(dsn, autocommit=True) as conn:
        trip = round_trip(dsn, "invalid_left", "CREATE UNIQUE INDEX CONCURRENTLY t_a_unique ON {s}.t (a)", setup)
        assert any(st.startswith("DROP INDEX") and "t_a_unique" in st for st in trip.statements)
        # the report, on the same change again
        fresh_schemas(conn, [s])
        conn.execute(setup.format(s=s).encode())
        drift.capture_baseline(conn, "invalid_left", [s])
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY t_a_unique ON {s}.t (a)".encode())
        (item,) = drift.drift_items(conn, "invalid_left")
        assert item["kind"] == "invalid" and item["severity"] != "cosmetic", item
        forget(conn, "invalid_left", [s])


def test_a_plan_touching_an_invalid_baseline_index_validates_on_scratch(dsn: str) -> None:
    """pg_dump leaves INVALID indexes out, so the scratch copy must get them another way."""
    setup = SETUP + DUPLICATES
    with psycopg.connect(dsn, autocommit=True) as conn:
        s = "rt_invalid_base"
        fresh_schemas(conn, [s])
        conn.execute(setup.format(s=s).encode())
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY t_a_unique ON {s}.t (a)".encode())
        drift.capture_baseline(conn, "invalid_base", [s])
        conn.execute(f"ALTER INDEX {s}.t_a_unique RENAME TO t_a_unique2".encode())
        check_plan(dsn, conn, "invalid_base")
        forget(conn, "invalid_base", [s])


# -- views and partitions ----------------------------------------------------------------------

VIEWS = (
    "CREATE VIEW {s}.v AS SELECT id, a, b FROM {s}.t;\n"
    "CREATE VIEW {s}.v2 AS SELECT id, a FROM {s}.v WHERE b IS NOT NULL;\nGRANT SELECT ON {s}.v2 TO PUBLIC"
)
STACKED = SETUP + VIEWS + ";"


def test_a_column_rename_under_stacked_views_re_creates_no_view(dsn: str) -> None:
    trip = round_trip(dsn, "stacked_rename", "ALTER TABLE {s}.t RENAME COLUMN a TO a2", STACKED)
    assert trip.statements == ["ALTER TABLE rt_stacked_rename.t RENAME COLUMN a2 TO a"], trip.statements


def test_a_table_rename_under_stacked_views_re_creates_no_view(dsn: str) -> None:
    trip = round_trip(dsn, "stacked_table", "ALTER TABLE {s}.t RENAME TO t2", STACKED)
    assert trip.statements == ["ALTER TABLE rt_stacked_table.t2 RENAME TO t"], trip.statements


def test_a_type_change_under_stacked_views_re_creates_them_in_order(dsn: str) -> None:
    change = "DROP VIEW {s}.v CASCADE;\nALTER TABLE {s}.t ALTER COLUMN a TYPE bigint;\n" + VIEWS
    trip = round_trip(dsn, "stacked_type", change, STACKED)
    texts = trip.statements
    assert texts.index("ALTER TABLE rt_stacked_type.t ALTER COLUMN a TYPE integer USING a::integer") < next(
        i for i, st in enumerate(texts) if st.startswith("CREATE VIEW rt_stacked_type.v ")
    ), texts
    assert next(i for i, st in enumerate(texts) if st.startswith("CREATE VIEW rt_stacked_type.v ")) < next(
        i for i, st in enumerate(texts) if st.startswith("CREATE VIEW rt_stacked_type.v2 ")
    ), texts


def test_a_changed_view_under_another_is_re_created_with_it(dsn: str) -> None:
    change = (
        "DROP VIEW {s}.v CASCADE;\nCREATE VIEW {s}.v AS SELECT id, a, b, c FROM {s}.t;\n"
        "CREATE VIEW {s}.v2 AS SELECT id, a FROM {s}.v WHERE b IS NOT NULL;\nGRANT SELECT ON {s}.v2 TO PUBLIC"
    )
    round_trip(dsn, "stacked_changed", change, STACKED)


PARTITIONED = (
    SETUP
    + """
CREATE TABLE {s}.p (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE {s}.p1 PARTITION OF {s}.p FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE INDEX p_at ON {s}.p (at);
"""
)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("detached", "ALTER TABLE {s}.p DETACH PARTITION {s}.p1"),
        ("detached_grown", "ALTER TABLE {s}.p DETACH PARTITION {s}.p1;\nALTER TABLE {s}.p1 ADD COLUMN extra int"),
        ("index_dropped", "DROP INDEX {s}.p_at"),
        ("new_partition", "CREATE TABLE {s}.p2 PARTITION OF {s}.p FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')"),
        (
            "index_swapped_with_partitions",
            "ALTER TABLE {s}.p DETACH PARTITION {s}.p1;\nALTER INDEX {s}.t_b RENAME TO swap;\n"
            "ALTER INDEX {s}.p1_at_idx RENAME TO t_b;\nALTER INDEX {s}.swap RENAME TO p1_at_idx;\n"
            "ALTER TABLE {s}.p ATTACH PARTITION {s}.p1 FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')",
        ),
    ],
)
def test_partition_changes_converge_in_one_round(dsn: str, name: str, change: str) -> None:
    round_trip(dsn, name, change, PARTITIONED)


def test_temporary_objects_are_never_logged(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        (before,) = conn.execute("SELECT coalesce(max(id), 0) FROM asymm.ddl_log").fetchone() or (0,)
        for statement in (
            "CREATE TEMP TABLE scratchpad (i int)",
            "CREATE INDEX ON scratchpad (i)",
            "ALTER TABLE scratchpad ALTER COLUMN i TYPE bigint",  # a rewrite
            "DROP TABLE scratchpad",
        ):
            conn.execute(statement.encode())
        rows = conn.execute("SELECT command_tag, object_identity FROM asymm.ddl_log WHERE id > %s", (before,))
        assert rows.fetchall() == []


# -- privileges ----------------------------------------------------------------------------------


def test_an_owner_change_is_undone_without_false_grants(dsn: str) -> None:
    """ALTER TABLE ... OWNER TO moves the owner's implicit privileges: they are no grant to undo."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'drift_rt_owner'").fetchone():
            conn.execute("CREATE ROLE drift_rt_owner")
    trip = round_trip(dsn, "owner", "ALTER TABLE {s}.t OWNER TO drift_rt_owner;\nGRANT SELECT ON {s}.t TO PUBLIC")
    assert trip.statements == [
        "ALTER TABLE rt_owner.t OWNER TO postgres",
        "REVOKE SELECT ON TABLE rt_owner.t FROM PUBLIC",
    ], trip.statements


POLICED = (
    SETUP
    + """
ALTER TABLE {s}.t ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON {s}.t FOR SELECT TO PUBLIC USING (a > 0);
CREATE POLICY writers ON {s}.t AS RESTRICTIVE FOR UPDATE USING (c IS NOT NULL) WITH CHECK (c > 0);
"""
)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("rls_off", "ALTER TABLE {s}.t DISABLE ROW LEVEL SECURITY"),
        ("rls_forced", "ALTER TABLE {s}.t FORCE ROW LEVEL SECURITY"),
        ("policy_dropped", "DROP POLICY own_rows ON {s}.t"),
        ("policy_added", "CREATE POLICY everything ON {s}.t USING (true)"),
        ("policy_renamed", "ALTER POLICY own_rows ON {s}.t RENAME TO own"),
        ("policy_changed", "ALTER POLICY own_rows ON {s}.t USING (a > 1)"),
        ("policy_column_renamed", "ALTER TABLE {s}.t RENAME COLUMN a TO a2"),
        (
            "policy_swap",
            "ALTER POLICY own_rows ON {s}.t RENAME TO x;\nALTER POLICY writers ON {s}.t RENAME TO own_rows;\n"
            "ALTER POLICY x ON {s}.t RENAME TO writers",
        ),
        ("policed_table_dropped", "DROP TABLE {s}.t CASCADE"),
    ],
)
def test_row_security_and_policies_come_back(dsn: str, name: str, change: str) -> None:
    trip = round_trip(dsn, name, change, POLICED)
    if name == "policy_column_renamed":  # the policy follows its column: renaming back is all it needs
        assert trip.statements == ["ALTER TABLE rt_policy_column_renamed.t RENAME COLUMN a2 TO a"], trip.statements


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


# -- moves -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "change", "extra"),
    [
        # SET SCHEMA back would meet the name another table took meanwhile
        ("move_away", "ALTER TABLE {s}.t SET SCHEMA rt_move_away_x;\nALTER TABLE {s}.u RENAME TO t", ""),
        # the index travels with its table, under a name the first schema holds
        (
            "move_idx",
            "ALTER TABLE {s}.t SET SCHEMA rt_move_idx_x;\nALTER INDEX rt_move_idx_x.t_b RENAME TO u_t",
            "CREATE INDEX u_t ON {s}.u (t_id);",
        ),
        # a sequence owned by the table moves with it: moving it on its own is refused
        (
            "move_owned_seq",
            "ALTER TABLE {s}.t SET SCHEMA rt_move_owned_seq_x",
            "CREATE SEQUENCE {s}.t_seq OWNED BY {s}.t.id;",
        ),
    ],
)
def test_a_table_moved_away_comes_back_past_names_taken_meanwhile(dsn: str, name: str, change: str, extra: str) -> None:
    """Shrunk from the soak."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_schemas(conn, [f"rt_{name}_x"])
    trip = round_trip(dsn, name, change, SETUP + extra, schemas=[f"rt_{name}_x"])
    assert any(f"SET SCHEMA rt_{name}" in st for st in trip.statements), trip.statements
    assert name != "move_idx" or any("INDEX" in st and "RENAME TO asymm_move" in st for st in trip.statements)


def test_a_partition_rebound_under_a_renamed_parent_comes_back(dsn: str) -> None:
    round_trip(
        dsn,
        "rebound",
        "ALTER TABLE {s}.p DETACH PARTITION {s}.p1;\n"
        "ALTER TABLE {s}.p ATTACH PARTITION {s}.p1 FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');\n"
        "ALTER TABLE {s}.p RENAME TO p_renamed",
        PARTITIONED,
    )


def test_a_changed_constraint_is_replaced_without_a_moment_with_less(dsn: str) -> None:
    """The new definition is added and validated first, under a temporary name: if the rows
    violate it, the plan stops with the current constraint still in place."""
    change = (
        "ALTER TABLE {s}.t DROP CONSTRAINT t_c_positive;\nALTER TABLE {s}.t ADD CONSTRAINT t_c_positive CHECK (c > -5)"
    )
    texts = round_trip(dsn, "check_changed", change).statements
    added = next(i for i, st in enumerate(texts) if "ADD CONSTRAINT t_c_positive_asymm_new" in st)
    dropped = next(i for i, st in enumerate(texts) if "DROP CONSTRAINT t_c_positive" in st)
    assert added < dropped, texts
    with psycopg.connect(dsn, autocommit=True) as conn:  # rows that violate the baseline's CHECK
        s = "rt_check_violated"
        fresh_schemas(conn, [s])
        conn.execute(SETUP.format(s=s).encode())
        drift.capture_baseline(conn, "check_violated", [s])
        conn.execute(change.format(s=s).split(";\n")[0].encode())
        conn.execute(change.format(s=s).split(";\n")[1].encode())
        conn.execute(sql.SQL("INSERT INTO {}.t (id, a, c) VALUES (1, 1, -1)").format(sql.Identifier(s)))
        steps = drift.plan(conn, "check_violated")
        with pytest.raises(RoundTripFailed):
            apply_with_psql(dsn, conn, steps)
        left = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
            (f"{s}.t",),
        ).fetchall()
        assert ("CHECK ((c > '-5'::integer))",) in left, left  # what the table had stays
        forget(conn, "check_violated", [s])


GENERATED = SETUP + "ALTER TABLE {s}.t ADD COLUMN g bigint GENERATED ALWAYS AS (c * 2) STORED;"


@pytest.mark.parametrize(
    ("name", "change"),
    [
        # shrunk from the soak: the generated column comes back after its source's type
        ("generated_dropped_retyped", "ALTER TABLE {s}.t DROP COLUMN g;\nALTER TABLE {s}.t ALTER COLUMN c TYPE bigint"),
        # ... and one that exists again is dropped and added back around the type change
        (
            "generated_readded_retyped",
            "ALTER TABLE {s}.t DROP COLUMN g;\nALTER TABLE {s}.t ALTER COLUMN c TYPE bigint;\n"
            "ALTER TABLE {s}.t ADD COLUMN g bigint GENERATED ALWAYS AS (c * 2) STORED",
        ),
    ],
)
def test_a_generated_column_and_the_type_of_its_source_come_back(dsn: str, name: str, change: str) -> None:
    round_trip(dsn, name, change, GENERATED)


# -- types, extensions and default privileges ----------------------------------------------------

TYPED = """
CREATE TYPE {s}.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN {s}.posint AS int CONSTRAINT posint_positive CHECK (VALUE > 0);
CREATE TYPE {s}.pair AS (l int, r text);
CREATE TABLE {s}.t (id int PRIMARY KEY, m {s}.mood DEFAULT 'ok', ms {s}.mood[], q {s}.posint, p {s}.pair);
CREATE VIEW {s}.v AS SELECT id, m FROM {s}.t;
INSERT INTO {s}.t VALUES (1, 'sad', '{{sad}}', 3, (1, 'a'));
"""


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("enum_value_added", "ALTER TYPE {s}.mood ADD VALUE 'meh' BEFORE 'ok'"),
        ("enum_value_renamed", "ALTER TYPE {s}.mood RENAME VALUE 'ok' TO 'fine'"),
        # the columns the plan creates again must get the rebuilt type, not the one it drops
        ("enum_value_added_table_dropped", "ALTER TYPE {s}.mood ADD VALUE 'meh';\nDROP TABLE {s}.t CASCADE"),
        ("enum_value_added_column_dropped", "ALTER TYPE {s}.mood ADD VALUE 'meh';\nALTER TABLE {s}.t DROP COLUMN ms"),
        (
            "enum_value_lost",  # the usual way to remove a value: a new type, the columns moved over
            "CREATE TYPE {s}.mood2 AS ENUM ('sad', 'happy');\n"
            "DROP VIEW {s}.v;\n"
            "ALTER TABLE {s}.t ALTER COLUMN m DROP DEFAULT;\n"
            "ALTER TABLE {s}.t ALTER COLUMN m TYPE {s}.mood2 USING m::text::{s}.mood2;\n"
            "ALTER TABLE {s}.t ALTER COLUMN ms TYPE {s}.mood2[] USING ms::text[]::{s}.mood2[];\n"
            "DROP TYPE {s}.mood;\nALTER TYPE {s}.mood2 RENAME TO mood;\n"
            "CREATE VIEW {s}.v AS SELECT id, m FROM {s}.t",
        ),
        ("type_renamed", "ALTER TYPE {s}.mood RENAME TO feeling"),
        (
            "type_swap",
            "ALTER TYPE {s}.mood RENAME TO x;\nALTER TYPE {s}.pair RENAME TO mood;\nALTER TYPE {s}.x RENAME TO pair",
        ),
        ("type_dropped", "DROP TYPE {s}.pair CASCADE"),
        (
            "type_added",
            "CREATE TYPE {s}.extra AS ENUM ('a');\nCREATE DOMAIN {s}.short AS text CHECK (length(VALUE) < 9)",
        ),
        ("domain_check_dropped", "ALTER DOMAIN {s}.posint DROP CONSTRAINT posint_positive"),
        ("domain_check_added", "ALTER DOMAIN {s}.posint ADD CONSTRAINT small CHECK (VALUE < 100) NOT VALID"),
        ("domain_default_and_not_null", "ALTER DOMAIN {s}.posint SET DEFAULT 1;\nALTER DOMAIN {s}.posint SET NOT NULL"),
        ("attribute_added", "ALTER TYPE {s}.pair ADD ATTRIBUTE z numeric"),
        ("attribute_dropped", "ALTER TYPE {s}.pair DROP ATTRIBUTE l"),
        (
            "type_owner_and_grant",
            f"ALTER TYPE {{s}}.mood OWNER TO {ROLE};\nREVOKE USAGE ON TYPE {{s}}.pair FROM PUBLIC",
        ),
    ],
)
def test_enums_domains_and_composite_types_come_back(dsn: str, name: str, change: str) -> None:
    trip = round_trip(dsn, name, change, TYPED)
    if name == "enum_value_added":  # PostgreSQL cannot drop a value: the baseline type is rebuilt beside it
        assert any("_asymm_old" in st for st in trip.statements), trip.statements
        assert trip.hazards_of("TYPE rt_enum_value_added.mood USING"), trip.statements
    if name == "enum_value_lost":
        assert "ALTER TYPE rt_enum_value_lost.mood ADD VALUE 'ok' AFTER 'sad'" in trip.statements, trip.statements


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("table_name_taken_by_type", "DROP TABLE {s}.u;\nCREATE TYPE {s}.u AS ENUM ('x')"),
        ("type_name_taken_by_table", "DROP TYPE {s}.pair CASCADE;\nCREATE TABLE {s}.pair (id int)"),
        ("view_name_taken_by_sequence", "DROP VIEW {s}.v;\nCREATE SEQUENCE {s}.v"),
        (  # shrunk from the soak: new tables dropped in name order, one referencing the other
            "new_tables_referencing",
            "CREATE TABLE {s}.a_t (id int PRIMARY KEY);\n"
            "CREATE TABLE {s}.z_t (id int PRIMARY KEY);\n"
            "ALTER TABLE {s}.z_t ADD FOREIGN KEY (id) REFERENCES {s}.a_t (id) NOT VALID",
        ),
    ],
)
def test_a_name_taken_by_another_kind_of_object_is_freed_before_the_create(dsn: str, name: str, change: str) -> None:
    """Shrunk from the soak: the baseline object is created again while the new one of another kind
    (dropped at the end of the plan) still holds its name."""
    round_trip(dsn, name, change, TYPED + "CREATE TABLE {s}.u (id int);")


def test_a_type_moved_to_another_schema_comes_back(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_schemas(conn, ["rt_type_move_x"])
    trip = round_trip(
        dsn, "type_move", "ALTER TYPE {s}.pair SET SCHEMA rt_type_move_x", TYPED, schemas=["rt_type_move_x"]
    )
    assert any("SET SCHEMA rt_type_move" in st for st in trip.statements), trip.statements


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("extension_added", "CREATE EXTENSION citext WITH SCHEMA {s}"),
        ("default_privileges_granted", f"ALTER DEFAULT PRIVILEGES IN SCHEMA {{s}} GRANT SELECT ON TABLES TO {ROLE}"),
        ("default_privileges_revoked", f"ALTER DEFAULT PRIVILEGES IN SCHEMA {{s}} REVOKE USAGE ON TYPES FROM {ROLE}"),
    ],
)
def test_extensions_and_default_privileges_come_back(dsn: str, name: str, change: str) -> None:
    setup = TYPED + f"ALTER DEFAULT PRIVILEGES IN SCHEMA {{s}} GRANT USAGE ON TYPES TO {ROLE};"
    trip = round_trip(dsn, name, change, setup)
    assert trip.statements, "the change needs a plan"


def test_an_extension_version_change_plans_the_update_back_with_its_hazard(dsn: str) -> None:
    """pg_trgm 1.5 -> 1.6 has an update script, 1.6 -> 1.5 none: the plan says the step will fail."""
    s = "rt_ext_version"
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_schemas(conn, [s])
        conn.execute(f"CREATE EXTENSION pg_trgm WITH SCHEMA {s} VERSION '1.5'".encode())
        drift.capture_baseline(conn, "ext_version", [s])
        conn.execute(b"ALTER EXTENSION pg_trgm UPDATE TO '1.6'")
        items = [i for i in drift.drift_items(conn, "ext_version") if i["object_type"] == "extension"]
        forget(conn, "ext_version", [s])
    assert [(i["property"], i["old_value"], i["new_value"]) for i in items] == [("version", "1.5", "1.6")], items
    (step,) = items[0]["plan"]
    assert step["sql"] == "ALTER EXTENSION pg_trgm UPDATE TO '1.5'"
    assert any("no update path from 1.6 to 1.5" in h for h in step["hazards"]), step


# -- attribution ------------------------------------------------------------------------------------


def test_each_item_names_the_ddl_that_caused_it_not_the_tables_latest(dsn: str) -> None:
    """Three statements on one table by two roles: each item carries its own statement and role."""
    s = "rt_attribution"
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_schemas(conn, [s])
        conn.execute(SETUP.format(s=s).encode())
        conn.execute(f"GRANT ALL ON SCHEMA {s} TO {ROLE}; ALTER TABLE {s}.t OWNER TO {ROLE}".encode())
        drift.capture_baseline(conn, "attribution", [s])
        me = conn.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
        conn.execute(f"SET ROLE {ROLE}".encode())
        conn.execute(f"ALTER TABLE {s}.t ADD COLUMN extra int".encode())
        conn.execute(b"RESET ROLE")
        conn.execute(f"CREATE INDEX t_a ON {s}.t (a)".encode())
        conn.execute(f"ALTER TABLE {s}.t ALTER COLUMN c TYPE bigint".encode())
        found = {
            (i["object_type"], i["identity"].rsplit(".", 1)[-1]): (i["who"], i["statement"])
            for i in drift.drift_items(conn, "attribution")
        }
        forget(conn, "attribution", [s])
    assert found[("column", "extra")] == (ROLE, f"ALTER TABLE {s}.t ADD COLUMN extra int"), found
    assert found[("index", "t_a")] == (me, f"CREATE INDEX t_a ON {s}.t (a)"), found
    assert found[("column", "c")] == (me, f"ALTER TABLE {s}.t ALTER COLUMN c TYPE bigint"), found


# -- shrunk from the soak on random baselines -------------------------------------------------------


def test_a_disabled_trigger_created_again_is_disabled_again(dsn: str) -> None:
    setup = SETUP + (
        "CREATE FUNCTION {s}.f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';"
        "CREATE TRIGGER tg BEFORE UPDATE ON {s}.u FOR EACH ROW EXECUTE FUNCTION {s}.f();"
        "ALTER TABLE {s}.u DISABLE TRIGGER tg;"
    )
    trip = round_trip(dsn, "disabled_trigger", "DROP TABLE {s}.u", setup)
    assert "ALTER TABLE rt_disabled_trigger.u DISABLE TRIGGER tg" in trip.statements, trip.statements


def test_a_constraint_validated_since_the_baseline_is_no_drift(dsn: str) -> None:
    """A plan cannot un-validate a constraint, and no DBA wants it to."""
    s = "rt_validated_since"
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_schemas(conn, [s])
        conn.execute((SETUP + "ALTER TABLE {s}.u ADD CONSTRAINT u_id CHECK (id > 0) NOT VALID;").format(s=s).encode())
        drift.capture_baseline(conn, "validated_since", [s])
        conn.execute(f"ALTER TABLE {s}.u VALIDATE CONSTRAINT u_id".encode())
        left = drift.drift_items(conn, "validated_since")
        forget(conn, "validated_since", [s])
    assert left == [], left


def test_an_extension_moved_to_another_schema_comes_back(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_schemas(conn, ["rt_ext_move_x"])
    trip = round_trip(
        dsn,
        "ext_move",
        "ALTER EXTENSION citext SET SCHEMA rt_ext_move_x",
        SETUP + "CREATE EXTENSION citext WITH SCHEMA {s};",
        schemas=["rt_ext_move_x"],
    )
    assert trip.statements == ["ALTER EXTENSION citext SET SCHEMA rt_ext_move"], trip.statements
