"""The demo: its index step (asymm.dev.demo.indexes), its log, its clean stop and its first five minutes.

``make demo`` itself loads ~400k rows and runs for about a minute, too long for the suite; these
run the same code on a small table so what it prints stays honest: the summary table, the daemon
log kept out of the progress lines, no warning on a clean stop, and the line that puts ``asymm``
on PATH in a new shell.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from asymm.db import connect
from asymm.dev.demo import indexes, logfile
from asymm.dev.demo.command import indexes_table
from asymm.dev.sandbox import Sandbox
from tests.harness.daemon_process import Running

REPO = Path(__file__).resolve().parents[2]

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE ledger (id int PRIMARY KEY, account_id int NOT NULL, amount int NOT NULL);
INSERT INTO ledger SELECT g, 1 + g % 2000, g % 500 FROM generate_series(1, 30000) g;
ANALYZE;
"""


def _workload(dsn: str) -> None:
    with connect(dsn, observed=True) as conn:
        for i in range(40):
            conn.execute("SELECT sum(amount) FROM ledger WHERE account_id = %s", (1 + i * 13 % 2000,))


def test_demo_index_step_applies_verifies_and_summarises(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("SELECT pg_stat_statements_reset()")
    _workload(db)
    advice = indexes.advise_and_apply(db)
    assert [(i["table"], i["columns"], i["applied"]) for i in advice["indexes"]] == [
        ("public.ledger", ["account_id"], "yes")
    ]
    _workload(db)
    verdicts = indexes.verify_applied(db)
    [row] = indexes.summary_rows(advice, verdicts)
    assert row["index"] == "public.ledger (account_id)" and row["applied"] == "yes"
    # 40 calls since, above advisor.verify_min_calls (20): judged, whichever way the timings went
    assert row["verdict"] in ("paid_off", "no_gain") and row["calls since"] == "40"
    assert " -> " in row["mean latency before -> after"] and row["mean latency before -> after"].count(" ms") == 1
    text = indexes_table(advice, verdicts)
    assert text.splitlines()[0].split()[:3] == ["index", "est.", "benefit"] and "public.ledger (account_id)" in text
    with psycopg.connect(db, autocommit=True) as conn:
        status = conn.execute("SELECT status, verdict FROM asymm.index_suggestions").fetchall()
    assert status == [("applied", row["verdict"])]


def test_demo_log_goes_to_its_file_not_between_the_progress_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    stderr = logging.StreamHandler()  # what `asymm`'s basicConfig installs
    root.addHandler(stderr)
    try:
        before, level = list(root.handlers), root.level
        path = tmp_path / logfile.LOG_NAME
        with logfile.routed_to(path) as log:
            logging.getLogger("asymm.daemon.test").warning("a warning from a daemon thread")
            logging.getLogger("asymm.daemon.test").info("started")
            assert stderr not in root.handlers
        assert root.handlers == before and root.level == level
    finally:
        root.removeHandler(stderr)
    assert "a warning from a daemon thread" not in capsys.readouterr().err
    text = path.read_text()
    assert "WARNING" in text and "a warning from a daemon thread" in text and "started" in text
    assert path.stat().st_mode & 0o777 == 0o600
    assert log.warnings == 1 and log.describe() == f"{path} (1 warning)"


def test_a_clean_stop_of_the_daemon_prints_no_warning(db: str, start_daemon: Callable[..., Running]) -> None:
    daemon = start_daemon(db)
    assert daemon.status()["leader"] is True
    err = daemon.stop()
    assert daemon.proc.returncode == 0 and "WARNING" not in err, err


def test_the_line_make_demo_ends_with_works_in_a_new_shell(sandbox: Sandbox, db: str) -> None:
    """A newcomer's next step: a new shell (no venv, no sandbox variables) runs the printed line, then asymm."""
    dbname = conninfo.conninfo_to_dict(db)["dbname"]
    hint = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "-C",
            str(REPO),
            "demo-hint",
            f"DEMO_DIR={sandbox.root}",
            f"DEMO_DB={dbname}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert hint.startswith('eval "$(make -s -C ') and "demo-env" in hint, hint
    clean = {"HOME": os.environ.get("HOME", "/"), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    out = subprocess.run(
        ["bash", "-c", hint + ' && command -v asymm && echo "db=$PGDATABASE" && asymm status && asymm top'],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(REPO / ".venv" / "bin" / "asymm") and lines[1] == f"db={dbname}", out.stdout
    assert "pg_stat_statements preloaded: yes" in out.stdout and "Traceback" not in out.stderr
