"""The extension as a DBA meets it: install, comments, privileges, upgrade, dump/restore, drop."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from asymm.dev.sandbox import Sandbox
from tests.harness.catalog import definitions, object_set

REPO = Path(__file__).resolve().parents[2]
GUARD = '\\echo Use "CREATE EXTENSION asymm" to load this file. \\quit'


def sharedir() -> Path:
    out = subprocess.run(["pg_config", "--sharedir"], capture_output=True, text=True, check=True).stdout
    return Path(out.strip()) / "extension"


def test_create_extension_cascade_in_a_plain_database(make_db: Callable[..., str]) -> None:
    dsn = make_db(extension=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION asymm CASCADE")
        installed = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
        assert {"asymm", "plpython3u", "pg_stat_statements"} <= installed
        member = conn.execute(
            "SELECT 1 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid"
            " WHERE e.extname = 'asymm' AND d.classid = 'pg_namespace'::regclass"
            "   AND d.objid = 'asymm'::regnamespace AND d.deptype = 'e'"
        ).fetchone()
        assert member == (1,), "schema asymm must belong to the extension"
        assert conn.execute("SELECT to_regproc('asymm.status') IS NOT NULL").fetchone() == (True,)
        status = conn.execute("SELECT asymm.status()").fetchone()[0]  # type: ignore[index]
        assert status["pg_stat_statements_loaded"] is True
        assert status["plpython"].startswith("3.")
        assert (
            status["version"]
            == conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'asymm'").fetchone()[0]  # type: ignore[index]
        )


def test_drop_extension_leaves_nothing_behind(make_db: Callable[..., str]) -> None:
    dsn = make_db(extension=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION plpython3u")
        conn.execute("CREATE EXTENSION pg_stat_statements")
        before = object_set(conn)
        conn.execute("CREATE EXTENSION asymm")
        assert object_set(conn) > before
        conn.execute("DROP EXTENSION asymm")
        assert object_set(conn) == before


def test_every_extension_object_has_a_comment(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    missing = conn.execute("""
        SELECT pg_describe_object(d.classid, d.objid, 0)
          FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass
         WHERE e.extname = 'asymm' AND d.deptype = 'e'
           AND d.classid IN ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_namespace'::regclass,
                             'pg_event_trigger'::regclass, 'pg_type'::regclass)
           AND NOT (d.classid = 'pg_class'::regclass
                    AND (SELECT relkind FROM pg_class WHERE oid = d.objid) IN ('S', 'i', 'I', 't'))
           AND obj_description(d.objid, d.classid::regclass::text) IS NULL
    """).fetchall()
    assert missing == []


def test_every_script_starts_with_the_create_extension_guard() -> None:
    scripts = sorted(sharedir().glob("asymm--*.sql"))
    assert scripts, "the extension is not installed (make install)"
    for script in scripts:
        assert script.read_text().startswith(GUARD), script.name
    for script in (REPO / "extension").glob("asymm--*.sql"):
        assert script.read_text().startswith(GUARD), script.name


def test_psql_refuses_to_run_a_script_directly(sandbox: Sandbox) -> None:
    script = next(sharedir().glob("asymm--*.sql"))
    out = subprocess.run(
        [sandbox.pg_bindir + "/psql", sandbox.dsn(), "-X", "-f", str(script)], capture_output=True, text=True
    )
    assert 'Use "CREATE EXTENSION asymm"' in out.stdout + out.stderr
    with psycopg.connect(sandbox.dsn()) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'asymm'").fetchone() is None


DEFAULTS = "SELECT to_jsonb(d) FROM asymm.setting_defaults d ORDER BY name"


def test_upgrade_from_every_released_version_equals_a_fresh_install(make_db: Callable[..., str]) -> None:
    fresh_dsn = make_db(fresh=True)  # installed here, not copied from the template
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        fresh = definitions(conn)
        fresh_defaults = conn.execute(DEFAULTS).fetchall()
        current = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'asymm'").fetchone()[0]  # type: ignore[index]
        released = [
            r[0]
            for r in conn.execute(
                "SELECT source FROM pg_extension_update_paths('asymm')"
                " WHERE target = %s AND path IS NOT NULL AND source <> target",
                (current,),
            )
        ]
    assert released, "no upgrade path into the current version"
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        paths: dict[str, str] = dict(
            conn.execute(
                "SELECT source, path FROM pg_extension_update_paths('asymm') WHERE target = %s AND path IS NOT NULL",
                (current,),
            ).fetchall()
        )
    # The frozen chain: every release goes through each later one (0.1.0--0.2.0 is never rebuilt).
    assert paths["0.1.0"].startswith("0.1.0--0.2.0--") and paths["0.2.0"] == f"0.2.0--{current}", paths
    for version in released:
        dsn = make_db(extension=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE EXTENSION asymm VERSION {} CASCADE").format(sql.Literal(version)))
            # a value the DBA set survives the upgrade, even where the upgrade changes the default
            had_bound = conn.execute(
                "SELECT 1 FROM asymm.setting_defaults WHERE name = 'advisor.max_write_regression'"
            ).fetchone()
            if had_bound:
                conn.execute("SELECT asymm.set_setting('advisor.max_write_regression', '0.2')")
            conn.execute("ALTER EXTENSION asymm UPDATE")
            assert definitions(conn) == fresh, f"upgrade from {version} differs from a fresh install"
            assert conn.execute(DEFAULTS).fetchall() == fresh_defaults, f"setting defaults after {version}"
            if had_bound:
                assert conn.execute("SELECT asymm.setting('advisor.max_write_regression')").fetchone() == ("0.2",)


def test_pg_dump_restores_into_a_new_database_with_the_extension(
    sandbox: Sandbox, make_db: Callable[..., str], tmp_path: Path
) -> None:
    source = make_db()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("SELECT asymm.set_setting('daemon.stale_after', '42 s')")
        conn.execute("CREATE TABLE app_data (id int PRIMARY KEY)")
        # what the daemon does first: telemetry partitions (no extension members, so dumped)
        conn.execute("SELECT asymm.ensure_telemetry_partitions('2 hours')")
        # a DDL log longer than what the restore will log: the baseline's position is past its end
        conn.execute("DO $$ BEGIN FOR i IN 1..150 LOOP CREATE TABLE churn (i int); DROP TABLE churn; END LOOP; END $$")
        conn.execute("SELECT asymm.baseline('app', ARRAY['public'])")
    dump = tmp_path / "dump.custom"
    subprocess.run([sandbox.pg_bindir + "/pg_dump", "-Fc", "-f", str(dump), source], check=True)
    target = make_db(extension=False)
    subprocess.run([sandbox.pg_bindir + "/pg_restore", "--exit-on-error", "-d", target, str(dump)], check=True)
    with psycopg.connect(target, autocommit=True) as conn:
        assert conn.execute("SELECT asymm.setting('daemon.stale_after')").fetchone() == ("42 s",)
        assert conn.execute("SELECT count(*) FROM asymm.setting_defaults").fetchone()[0] >= 3  # type: ignore[index]
        assert conn.execute("SELECT to_regclass('app_data') IS NOT NULL").fetchone() == (True,)
        assert conn.execute("SELECT asymm.status() ->> 'version'").fetchone()[0]  # type: ignore[index]
        indexes_per_partition = conn.execute(
            "SELECT i.inhrelid::regclass::text, (SELECT count(*) FROM pg_index x WHERE x.indrelid = i.inhrelid)"
            "  FROM pg_inherits i"
            " WHERE i.inhparent IN ('asymm.query_stats'::regclass, 'asymm.query_stats_minute'::regclass)"
        ).fetchall()
        assert len(indexes_per_partition) >= 5 and {n for _, n in indexes_per_partition} == {1}, indexes_per_partition
        # the restored baseline follows this database's DDL log: new DDL has its author
        conn.execute("ALTER TABLE app_data ADD COLUMN extra int")
        items = conn.execute("SELECT kind, who, detection FROM asymm.drift('app')").fetchall()
        assert items == [("added", "postgres", "event")], items


def _role_dsn(dsn: str, role: str) -> str:
    return dsn + f" user={role}"


def test_non_superuser_reads_what_is_granted_and_nothing_privileged(db: str, admin_dsn: str) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(db)["dbname"]
    reader, stranger = f"{dbname}_reader", f"{dbname}_stranger"
    with psycopg.connect(db, autocommit=True) as conn:
        for role in (reader, stranger):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute("SELECT asymm.grant_reader(%s::regrole)", (reader,))
    try:
        with psycopg.connect(_role_dsn(db, reader), autocommit=True) as conn:
            assert conn.execute("SELECT asymm.status() ->> 'version'").fetchone()[0]  # type: ignore[index]
            assert conn.execute("SELECT asymm.setting('daemon.pulse_period')").fetchone() == ("203.7 ms",)
            assert conn.execute("SELECT count(*) FROM asymm.settings").fetchone()[0] >= 3  # type: ignore[index]
            for privileged in (
                "SELECT asymm.set_setting('daemon.stale_after', '1 s')",
                "SELECT asymm.reset_setting('daemon.stale_after')",
                f"SELECT asymm.grant_reader('{stranger}')",
                "DELETE FROM asymm.daemons",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(privileged)
        with (
            psycopg.connect(_role_dsn(db, stranger), autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("SELECT asymm.status()")
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(str(dbname))))
            for role in (reader, stranger):
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_security_definer_functions_pin_search_path(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    unpinned = conn.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE p.pronamespace = 'asymm'::regnamespace AND p.prosecdef
           AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
    """).fetchall()
    assert unpinned == []


def test_settings_are_typed_and_errors_carry_a_hint(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    assert conn.execute("SELECT asymm.set_setting('daemon.stale_after', '30 s')").fetchone() == ("30 s",)
    assert conn.execute("SELECT changed FROM asymm.settings WHERE name = 'daemon.stale_after'").fetchone() == (True,)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as bad_value:
        conn.execute("SELECT asymm.set_setting('daemon.stale_after', 'soon')")
    assert bad_value.value.diag.message_hint == "daemon.stale_after takes an interval from 1 s to 1 day."
    with pytest.raises(psycopg.errors.UndefinedObject) as unknown:
        conn.execute("SELECT asymm.setting('no.such')")
    assert "asymm.settings" in (unknown.value.diag.message_hint or "")
    assert conn.execute("SELECT asymm.reset_setting('daemon.stale_after')").fetchone() == ("10 s",)


def test_every_extension_function_pins_search_path(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Every function the extension owns (SQL, PL/pgSQL, PL/Python, C) runs with pg_catalog, pg_temp.

    Otherwise an unqualified call in its body (``jsonb_build_object``, ``lower``, ``=``) could be
    answered by an overload an untrusted role planted in ``public``, run as the caller.
    """
    rows = conn.execute("""
        SELECT p.oid::regprocedure::text, l.lanname, coalesce(p.proconfig, '{}')
          FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
          JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
          JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'asymm'
    """).fetchall()
    languages = {str(r[1]) for r in rows}
    assert {"sql", "plpgsql", "plpython3u", "c"} <= languages
    unpinned = sorted(
        str(name)
        for name, _lang, config in rows
        if "search_path=pg_catalog, pg_temp" not in list(config)  # type: ignore[call-overload]
    )
    assert [u for u in unpinned if u not in CALLER_PATH_WRAPPERS] == []


# Entry points that must see their caller's search_path (a relation named by text; the caller's
# own text planned with its names): thin SQL wrappers, deliberately not pinned, that hand
# pg_catalog.current_setting('search_path') to a pinned worker.  Immune instead of pinned: nothing
# in their bodies is resolved through the search_path.  (coherence() and infer() plan other roles'
# texts with those roles' own configured search_path, so they are pinned.)
CALLER_PATH_WRAPPERS = {
    "asymm.annotate(text,text,text,text,text,text[])",
    "asymm.resolve(text)",
    "asymm.harmonize(text)",
    "asymm.propagate(text)",
    "asymm.generic_plan(text)",
}


def test_unpinned_wrappers_name_nothing_unqualified(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text, l.lanname, p.prosrc, p.proconfig FROM pg_proc p"
        " JOIN pg_language l ON l.oid = p.prolang"
        " WHERE p.oid::regprocedure::text = ANY (%s)",
        (sorted(CALLER_PATH_WRAPPERS),),
    ).fetchall()
    assert {str(r[0]) for r in rows} == CALLER_PATH_WRAPPERS
    for name, language, source, config in rows:
        assert language == "sql" and config is None, name
        body = re.sub(r"'[^']*'", "''", str(source))
        calls = re.findall(r"([\w.]+)\s*\(", body)
        assert calls and all(c.startswith(("asymm.", "pg_catalog.")) for c in calls), (name, calls)
        assert not re.search(r"[-+*/<>=~!@#%^&|`?]", body.replace("*", "")), (name, body)
