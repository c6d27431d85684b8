"""README.md's reference tables are what the database says (scripts/reference.py), never a stale copy."""

from __future__ import annotations

import difflib
import subprocess

import psycopg

from scripts import reference


def test_readme_reference_tables_match_the_database(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    readme = reference.README.read_text()
    generated = reference.splice(readme, reference.blocks(conn))
    diff = "\n".join(
        difflib.unified_diff(readme.splitlines(), generated.splitlines(), "README.md", "generated", lineterm="", n=0)
    )
    assert generated == readme, f"README.md's reference tables are stale: run make reference\n{diff[:4000]}"


def test_every_public_function_and_setting_is_in_the_readme(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    readme = reference.README.read_text()
    functions = [row[0] for row in conn.execute(reference.FUNCTIONS_SQL)]
    relations = [row[0] for row in conn.execute(reference.RELATIONS_SQL)]
    settings = [row[0] for row in conn.execute(reference.SETTINGS_SQL)]
    assert functions and relations and settings
    for name in functions:
        assert f"`asymm.{name}(" in readme, f"asymm.{name} missing from README.md: run make reference"
    for name in relations:
        assert f"| `asymm.{name}` |" in readme, f"asymm.{name} missing from README.md: run make reference"
    for name in settings:
        assert f"| `{name}` |" in readme, f"setting {name} missing from README.md: run make reference"


def test_every_public_function_says_what_it_does(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    undocumented = [row[0] for row in conn.execute(reference.FUNCTIONS_SQL) if not str(row[5]).strip()]
    assert undocumented == [], "COMMENT ON FUNCTION missing (add it to sql/97_comments.sql)"


def test_versions_added_come_from_the_scripts() -> None:
    origins = reference.Origins.scan()
    released = [version for version, _ in reference.released_scripts()]
    assert released, "no frozen release script in extension/"
    oldest = released[0]
    assert origins.function("version", 0) == oldest
    assert origins.setting("daemon.pulse_period") == oldest
    assert origins.relation("settings") == oldest
    assert origins.function("no_such_function", 0) == origins.current
    assert origins.setting("no.such_setting") == origins.current
    known = {*released, origins.current}
    assert set(origins.functions.values()) <= known
    assert set(origins.settings.values()) <= known


def test_the_scan_counts_input_arguments_as_pg_proc_does() -> None:
    text = """
        CREATE OR REPLACE FUNCTION asymm.f(a text DEFAULT 'x, y', b int[] DEFAULT ARRAY[1, 2],
                                           OUT c int, INOUT d numeric(10, 2)) RETURNS record ...
        create function asymm.g() returns void ...
        CREATE PROCEDURE asymm.p(VARIADIC parts text[]) ...
        CREATE FUNCTION other.h(a int) ...
    """
    assert reference.functions_in(text) == {("f", 3), ("g", 0), ("p", 1)}


def test_the_scan_finds_tables_and_views() -> None:
    text = """
        CREATE TABLE asymm.t (a int); create unlogged table if not exists asymm.u ();
        CREATE OR REPLACE VIEW asymm.v AS SELECT 1; CREATE MATERIALIZED VIEW asymm.m AS SELECT 1;
        CREATE TABLE public.x (); CREATE INDEX ON asymm.t (a);
    """
    assert reference.relations_in(text) == {"t", "u", "v", "m"}


def test_the_scan_finds_settings_in_inserts_only() -> None:
    text = """
        INSERT INTO asymm.setting_defaults (name, default_value, value_type, description) VALUES
            ('a.one', '1', 'integer', 'The (first) one'),
            ('a.two', 'x', 'text', 'names (''b.three'') inside a description');
        SELECT asymm.setting('c.four');
    """
    assert reference.settings_in(text) == {"a.one", "a.two"}


def test_splice_replaces_only_between_the_markers() -> None:
    readme = (
        "top\n<!-- reference:functions:start -->\nold\n<!-- reference:functions:end -->\nmiddle\n"
        "<!-- reference:relations:start -->\n<!-- reference:relations:end -->\n"
        "<!-- reference:settings:start --><!-- reference:settings:end -->\nend\n"
    )
    blocks = {"functions": "F", "relations": "R", "settings": "S"}
    spliced = reference.splice(readme, blocks)
    assert spliced.startswith("top\n<!-- reference:functions:start -->\n")
    assert "\nF\n\n<!-- reference:functions:end -->\nmiddle\n" in spliced
    assert "\nS\n\n<!-- reference:settings:end -->\nend\n" in spliced
    assert "old" not in spliced
    assert "\nR\n\n<!-- reference:relations:end -->\n" in spliced
    assert reference.splice(spliced, blocks) == spliced


def test_markdown_cells_escape_pipes() -> None:
    assert reference.cell("a |\n b") == "a \\| b"
    assert reference.code("x`y") == "``x`y``"


# Spelled in two parts so that this file does not match itself.
OUTSIDE = ("../" + "shared", "/" + "work/", "shared/" + "SPEC")


def test_nothing_refers_to_files_outside_the_repository() -> None:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=reference.REPO, capture_output=True, check=True).stdout
    found = []
    for name in listed.decode().split("\0"):
        path = reference.REPO / name
        if not name or not path.is_file() or path.suffix not in {".py", ".sql", ".md", ".sh", ".c", ".toml", ""}:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if any(outside in line for outside in OUTSIDE):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == [], "references to files outside the repository:\n" + "\n".join(found)
