"""extension/build.py: frozen released scripts, the one dev upgrade, and the splicing of PL/Python."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.unit.plpython import REPO, build_module, plpython_bodies

EXTENSION = REPO / "extension"
SCRIPT = re.compile(r"asymm--(\d+\.\d+\.\d+)(?:--(\d+\.\d+\.\d+))?\.sql")


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return build_module()


@pytest.fixture(scope="module")
def scripts(build: ModuleType) -> dict[str, str]:
    return build.plan()  # type: ignore[no-any-return]


def manifest() -> dict[str, str]:
    lines = (EXTENSION / "frozen.sha256").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def test_released_scripts_are_frozen_by_their_checksums() -> None:
    frozen = manifest()
    assert set(frozen) == {p.name for p in EXTENSION.glob("asymm--*.sql")}, "every released script is listed"
    for name, digest in frozen.items():
        assert hashlib.sha256((EXTENSION / name).read_bytes()).hexdigest() == digest, f"{name} was edited"
    assert {"asymm--0.1.0.sql", "asymm--0.1.0--0.2.0.sql", "asymm--0.2.0.sql"} <= set(frozen)


def test_build_refuses_an_edited_frozen_script(
    build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in [*EXTENSION.glob("asymm--*.sql"), EXTENSION / "frozen.sha256"]:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(build, "HERE", tmp_path)
    monkeypatch.setattr(build, "MANIFEST", tmp_path / "frozen.sha256")
    build.check_frozen()
    with (tmp_path / "asymm--0.2.0.sql").open("a") as script:
        script.write("-- a late fix\n")
    with pytest.raises(build.BuildError, match="differs from its SHA-256"):
        build.check_frozen()
    (tmp_path / "asymm--0.2.0--0.2.1.sql").write_text("")
    with pytest.raises(build.BuildError, match="released scripts are frozen"):
        build.check_frozen()


def test_every_release_reaches_the_current_version_through_one_chain(
    build: ModuleType, scripts: dict[str, str]
) -> None:
    current, latest = build.current_version(), build.latest_released()
    assert set(scripts) == {f"asymm--{current}.sql", f"asymm--{latest}--{current}.sql"}
    steps = {}
    full = set()
    for name in [*manifest(), *scripts]:
        match = SCRIPT.fullmatch(name)
        assert match, name
        if match.group(2):
            assert match.group(1) not in steps, f"two upgrades from {match.group(1)}: the chain must be one"
            steps[match.group(1)] = match.group(2)
        else:
            full.add(match.group(1))
    for version in full:
        seen = [version]
        while seen[-1] != current:
            assert seen[-1] in steps, f"no upgrade from {seen[-1]} (reached from {version})"
            seen.append(steps[seen[-1]])


def test_the_dev_upgrade_replaces_spliced_functions_by_their_current_text(
    scripts: dict[str, str], build: ModuleType
) -> None:
    current, latest = build.current_version(), build.latest_released()
    fresh = plpython_bodies(scripts[f"asymm--{current}.sql"])
    upgrade = plpython_bodies(scripts[f"asymm--{latest}--{current}.sql"])
    assert upgrade, "the upgrade replaces the PL/Python functions whose source text changed"
    for name, body in upgrade.items():
        assert body == fresh[name], name
    assert "CREATE OR REPLACE FUNCTION asymm._drift_compare(" in scripts[f"asymm--{latest}--{current}.sql"]


def test_built_plpython_bodies_compile_as_plpython_wraps_them(scripts: dict[str, str]) -> None:
    for text in scripts.values():
        assert "-- asymm: include" not in text and "-- asymm: replace" not in text
        for name, body in plpython_bodies(text).items():
            source = "def __plpython_procedure():\n" + "".join("\t" + line + "\n" for line in body.splitlines())
            compile(source, name, "exec")  # a "from __future__" import would be a SyntaxError here


def test_long_plpython_bodies_live_in_python_modules(build: ModuleType) -> None:
    """A PL/Python body longer than about 50 lines belongs in a module that ruff, mypy and tests see."""
    for path in build.source_paths():
        for name, body in plpython_bodies(path.read_text()).items():
            assert len(body.splitlines()) <= 50, f"{path}: {name} has {len(body.splitlines())} lines inline"


def _splice(build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql: str, module: str) -> str:
    monkeypatch.setattr(build, "REPO", tmp_path)
    (tmp_path / "m.py").write_text(module)
    source = tmp_path / "f.sql"
    source.write_text(sql)
    return str(build.splice(sql, source))


def test_include_splices_a_module_into_its_body(
    build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql = "CREATE FUNCTION f() RETURNS int\nAS $plpython$\n-- asymm: include m.py\nreturn g()\n$plpython$;\n"
    out = _splice(build, tmp_path, monkeypatch, sql, "def g() -> int:\n    return 1\n")
    assert out == (
        "CREATE FUNCTION f() RETURNS int\nAS $plpython$\ndef g() -> int:\n    return 1\nreturn g()\n$plpython$;\n"
    )


def test_include_refuses_a_module_holding_the_body_delimiter(
    build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql = "CREATE FUNCTION f() RETURNS int\nAS $plpython$\n-- asymm: include m.py\n$plpython$;\n"
    with pytest.raises(build.BuildError, match=r"contains \$plpython\$"):
        _splice(build, tmp_path, monkeypatch, sql, "x = '$plpython$; DROP TABLE t; --'\n")


def test_include_outside_a_function_body_is_refused(
    build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql = "CREATE FUNCTION f() RETURNS int\nAS $plpython$\nreturn 1\n$plpython$;\n-- asymm: include m.py\n"
    with pytest.raises(build.BuildError, match="must be inside"):
        _splice(build, tmp_path, monkeypatch, sql, "x = 1\n")


def test_sources_are_split_one_area_a_file(build: ModuleType) -> None:
    """Big areas are directories of parts (objects before their users, in path order)."""
    for path in build.source_paths():
        assert len(path.read_text().splitlines()) <= 300, f"{path}: split it into sql/<area>/NN_part.sql"
    order = [p.relative_to(REPO / "sql").as_posix() for p in build.source_paths()]
    assert order.index("02_settings.sql") < order.index("10_annotations/10_entries.sql")
    assert order.index("50_drift/30_report.sql") < order.index("99_privileges.sql") == len(order) - 1


def test_release_freezes_the_current_scripts_and_asks_for_a_new_version(
    build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in [*EXTENSION.glob("asymm--*.sql"), EXTENSION / "frozen.sha256", EXTENSION / "asymm.control"]:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(build, "HERE", tmp_path)
    monkeypatch.setattr(build, "MANIFEST", tmp_path / "frozen.sha256")
    current = build.current_version()
    built = build.plan()
    build.release()
    build.check_frozen()
    for name, content in built.items():
        assert (tmp_path / name).read_text() == content
    with pytest.raises(build.BuildError, match="released already"):
        build.plan()
    control = tmp_path / "asymm.control"
    control.write_text(control.read_text().replace(f"'{current}'", "'99.0.0'"))
    assert set(build.plan()) == {"asymm--99.0.0.sql", f"asymm--{current}--99.0.0.sql"}


def test_an_unknown_argument_is_a_usage_error_not_an_output_directory(tmp_path: Path) -> None:
    """``build.py --help`` once wrote the scripts into a directory named ``--help``."""
    script = REPO / "extension" / "build.py"
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0 and "usage: build.py" in done.stderr
    assert list(tmp_path.iterdir()) == []
