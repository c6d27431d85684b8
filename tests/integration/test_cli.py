"""CLI conventions, through the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import asymm

ASYMM = str(Path(sys.executable).with_name("asymm"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ASYMM, *args], capture_output=True, text=True, timeout=60, env=env)


def test_version_and_help() -> None:
    out = run("--version")
    assert out.returncode == 0 and asymm.__version__ in out.stdout
    helped = run("--help")
    assert helped.returncode == 0
    for command in ("daemon", "sandbox", "status", "demo"):
        assert command in helped.stdout


def test_usage_error_exits_2() -> None:
    out = run("daemon", "--period", "-1")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_unreachable_server_is_one_line_and_exit_1() -> None:
    out = run("status", "--dsn", "host=127.0.0.1 port=1 user=nobody connect_timeout=2")
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot connect to PostgreSQL")


def test_invalid_dsn_is_reported_plainly() -> None:
    out = run("status", "--dsn", "this is not a dsn")
    assert out.returncode == 1
    assert out.stderr.strip().startswith("Error: invalid DSN")
    assert "Traceback" not in out.stderr


def test_missing_extension_is_an_operational_error(make_db) -> None:  # type: ignore[no-untyped-def]
    out = run("status", "--dsn", make_db(extension=False))
    assert out.returncode == 1
    assert "CREATE EXTENSION asymm" in out.stderr


def test_status_json_is_one_document_on_stdout(db: str) -> None:
    out = run("status", "--dsn", db, "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["pg_stat_statements_loaded"] is True
    assert status["daemons"] == []


def test_status_text_for_people(db: str) -> None:
    out = run("status", "--dsn", db)
    assert out.returncode == 0
    assert "pg_stat_statements preloaded: yes" in out.stdout


def test_sandbox_env_without_a_sandbox_fails_cleanly(tmp_path: Path) -> None:
    out = run("sandbox", "env", "--dir", str(tmp_path / "none"))
    assert out.returncode == 1
    assert "no sandbox" in out.stderr and "Traceback" not in out.stderr


def test_dev_tooling_imports_first_and_the_cli_loads_it_only_when_used() -> None:
    """asymm.dev builds on the CLI's helpers; asymm.cli names its commands lazily, so there is no import cycle."""
    first = subprocess.run(
        [sys.executable, "-c", "import asymm.dev.demo.command, asymm.dev.sandbox.command"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    code = "import sys, asymm.cli; print(sorted(m for m in sys.modules if m.startswith('asymm.dev')))"
    cli_only = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert cli_only.returncode == 0 and cli_only.stdout.strip() == "[]", cli_only.stdout + cli_only.stderr
    helped = run("sandbox", "env", "--help")
    assert helped.returncode == 0 and "--dbname" in helped.stdout and "--dir" in helped.stdout
