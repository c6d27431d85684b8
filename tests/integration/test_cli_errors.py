"""CLI errors are one line: bad numbers are usage errors (exit 2), server errors carry no CONTEXT."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ASYMM = str(Path(sys.executable).with_name("asymm"))
NO_SERVER = "host=127.0.0.1 port=1 connect_timeout=1"  # never reached: the options are refused first


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ASYMM, *args], capture_output=True, text=True, timeout=60)


def assert_one_line_usage_error(out: subprocess.CompletedProcess[str], option: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("Error: ") and option in lines[0]
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert out.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ("top", "--limit", "nan"),
        ("top", "--limit", "0"),
        ("top", "--limit", "10000000000000000000000"),
        ("top", "--slow-ms", "nan"),
        ("top", "--slow-ms", "inf"),
        ("top", "--slow-ms", "-1"),
        ("advise", "--budget-mb", "inf"),
        ("advise", "--budget-mb", "nan"),
        ("advise", "--budget-mb", "-5"),
        ("advise", "--min-gain", "nan"),
        ("advise", "--max-write-regression", "nan"),
        ("advise", "--max-write-regression", "-inf"),
        ("advise", "--max-indexes", "-1"),
        ("advise", "--limit", "1e3"),
        ("sync", "backfill", "t", "--timeout", "nan"),
        ("sync", "backfill", "t", "--timeout", "-1"),
        ("daemon", "--period", "nan"),
        ("daemon", "--period", "inf"),
        ("daemon", "--period", "-1"),
        ("daemon", "--http-port", "70000"),
        ("demo", "--seconds", "nan"),
        ("graph", "--max-queries", "-1"),
        (
            "annotate",
            "t",
            "--symbol",
            "s",
            "--scope",
            "local",
            "--regime",
            "Balance",
            "--cost",
            "O(1)",
            "--queryid",
            "99999999999999999999",
        ),
    ],
)
def test_bad_numbers_are_one_line_usage_errors(args: tuple[str, ...]) -> None:
    option = next(a for a in reversed(args) if a.startswith("--"))
    assert_one_line_usage_error(run(*args, "--dsn", NO_SERVER) if args[0] != "daemon" else run(*args), option)


def test_an_unknown_option_is_a_one_line_usage_error() -> None:
    assert_one_line_usage_error(run("top", "--no-such-option"), "--no-such-option")


def test_top_since_must_be_a_non_negative_interval(db: str) -> None:
    for since in ("nan", "-1 s", "soon"):
        assert_one_line_usage_error(run("top", "--since", since, "--dsn", db), "--since")
    assert run("top", "--since", "1 hour", "--dsn", db).returncode == 0


def test_daemon_config_file_with_infinite_or_nan_values_is_refused(tmp_path: Path) -> None:
    for line in (
        "heartbeat_every_s = inf",
        "period = nan",
        "heartbeat_every_s = 1e308",
        "[leader]\nsession_timeout_s = 1e300",
    ):
        config = tmp_path / "asymm.toml"
        config.write_text(line + "\n")
        out = run("daemon", "--config", str(config), "--check-config")
        assert out.returncode == 2, (line, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_a_plpgsql_error_is_one_line_without_context(db: str) -> None:
    # set_setting() raises from PL/pgSQL (CONTEXT: "PL/pgSQL function ... line N at RAISE"); through
    # the CLI only the message and the hint are printed
    out = run("baseline", "b", "--schema", "no_such_schema", "--dsn", db)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith('Error: PostgreSQL: schema "no_such_schema" does not exist (hint: ')
    assert "CONTEXT" not in out.stderr and "SQL statement" not in out.stderr and "line " not in out.stderr


def test_pg_error_line_keeps_primary_and_hint_only() -> None:
    from asymm.errors import pg_error_line

    class Diag:
        message_primary = "invalid value '-1' for setting \"sync.batch_rows\""
        message_hint = "sync.batch_rows takes an integer\nfrom 1 to 100000."

    class ServerError(Exception):
        diag = Diag()

    error = ServerError("ERROR: x\nHINT: y\nCONTEXT: PL/pgSQL function f() line 3 at RAISE")
    assert pg_error_line(error) == (
        "invalid value '-1' for setting \"sync.batch_rows\" (hint: sync.batch_rows takes an integer from 1 to 100000.)"
    )
    assert pg_error_line(ValueError("connection refused\n\tIs the server running?")) == (
        "connection refused; Is the server running?"
    )


def test_a_group_without_a_command_still_shows_its_help() -> None:
    out = run("sync")
    assert out.returncode == 2
    assert "Usage: asymm sync" in out.stderr + out.stdout and "backfill" in out.stderr + out.stdout
