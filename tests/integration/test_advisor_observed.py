"""Index advisor, issue #18: planning with the parameter values pg_qualstats observed.

A statement that always asks for the top of a range (`price > $1` near the maximum) is cheap with
an index, yet with a value from the statistics (the 90th percentile) an index saves little.  On a
cluster with pg_qualstats preloaded (its own sandbox: the shared one has only
pg_stat_statements), the advisor reads the values the application sent and chooses the index;
without them (``observed_values=False``, or pg_qualstats absent) it keeps the statistics' guess.
The values are used for planning only: they appear nowhere in the advice.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from asymm.advisor.advise import Settings, advise
from asymm.db import connect, with_dbname
from asymm.dev import sandbox as sandbox_mod

SCHEMA = """
CREATE EXTENSION asymm CASCADE;
CREATE EXTENSION hypopg;
CREATE EXTENSION pg_qualstats;
CREATE TABLE prices (id int PRIMARY KEY, price numeric NOT NULL, note text NOT NULL);
INSERT INTO prices SELECT g, (g::bigint * 7919 % 200000) / 2.0, repeat('n', 60) || g FROM generate_series(1, 200000) g;
"""
TOP = "SELECT note FROM prices WHERE price > $1"
SECRET = Decimal("99987.5")  # a value the application sent: it must not come out of the advisor


@pytest.fixture(scope="module")
def qualstats_dsn() -> Iterator[str]:
    """A database on a cluster of its own with pg_qualstats preloaded, the workload already run."""
    path = Path(tempfile.mkdtemp(prefix="asymm-qualstats-test-"))
    path.chmod(0o755)  # the unprivileged server user enters it
    root = path / "box"
    try:
        box = sandbox_mod.up(root, sandbox_mod.server_options(["pg_qualstats"]))
        with psycopg.connect(box.dsn(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE observed")
        dsn = with_dbname(box.dsn(), "observed")
        with psycopg.connect(dsn, autocommit=True) as setup:
            setup.execute(SCHEMA)
            setup.execute("VACUUM ANALYZE prices")
        # the application: extended protocol (values as parameters), every call sampled
        with psycopg.connect(
            dsn, autocommit=True, cursor_factory=psycopg.RawCursor, options="-c pg_qualstats.sample_rate=1"
        ) as app:
            app.prepare_threshold = None
            for k in range(30):
                app.execute(TOP, (SECRET + k,)).fetchall()
        yield dsn
    finally:
        sandbox_mod.down(root)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def aconn(qualstats_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(qualstats_dsn) as conn:
        yield conn


def chosen(result: dict[str, Any]) -> list[list[str]]:
    return [i["columns"] for i in result["indexes"]]


def test_observed_values_price_the_statement_as_it_runs(aconn: psycopg.Connection[Any]) -> None:
    """With the observed values the statement reads a few dozen rows through (price); with the
    statistics' guess (the 90th percentile: a tenth of the table, rows on nearly every page) the
    same index leaves most of the scan's cost.  On main there were no observed values, and
    (before planas.c checked statistics as the author) the guess itself was blind: half the
    table for any numeric range."""
    seen = advise(aconn)
    guessed = advise(aconn, Settings(observed_values=False))
    assert seen["observed_value_plans"] == 1, seen
    assert guessed["observed_value_plans"] == 0
    assert ["price"] in chosen(seen), seen["indexes"]
    assert seen["workload_cost_after"] < 0.05 * seen["workload_cost_before"], seen
    # the guess is priced with the histogram too (a tenth of the rows), not as the whole table
    index = [i for i in guessed["indexes"] if i["columns"] == ["price"]]
    after = guessed["workload_cost_after"] / guessed["workload_cost_before"]
    assert not index or after > 0.3, (after, guessed["indexes"])


def test_observed_values_appear_nowhere_in_the_advice(aconn: psycopg.Connection[Any]) -> None:
    text = json.dumps(advise(aconn), default=str)
    for k in range(30):
        assert str(SECRET + k) not in text
    assert "99987" not in text and "99988" not in text
