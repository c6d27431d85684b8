"""The demo's index step (asymm.demo.indexes): the real advisor, applied and verified, summarised.

``make demo`` itself loads ~400k rows and runs for about a minute, too long for the suite; this
runs the same code on a small table so the summary table it prints stays honest.
"""

from __future__ import annotations

import psycopg

from asymm.cli.demo_cmd import indexes_table
from asymm.db import connect
from asymm.demo import indexes

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
        ("public.ledger", ["account_id"], "yes")]
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
