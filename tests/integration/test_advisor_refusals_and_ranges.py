"""Index advisor, issue #18, on one table of dated, priced lines (real PostgreSQL + HypoPG): a
candidate refused because it would regress a statement is priced again once a later choice takes
that statement over; a statement with several ranges gets a composite of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from asymm.advisor.advise import Settings, advise
from tests.harness.advisor_db import advisor_conn, stmt

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE lines (id int PRIMARY KEY, day date NOT NULL, price numeric NOT NULL, flag text NOT NULL,
                    note text NOT NULL);
INSERT INTO lines SELECT g, date '2020-01-01' + (g::bigint * 7919 % 2000)::int, (g::bigint * 104729 % 300000) / 3.0,
       (ARRAY['A','N','R'])[1 + g % 3], repeat('x', 40)
  FROM generate_series(1, 300000) g
"""


@pytest.fixture
def aconn(make_db: Callable[..., str]) -> Iterator[psycopg.Connection[Any]]:
    with advisor_conn(make_db, SCHEMA, "lines") as conn:
        yield conn


LIMITED = "SELECT id, price FROM lines WHERE day = $1 AND flag = $2 ORDER BY price DESC LIMIT 10"
WORKLOAD = [
    stmt("SELECT count(*) FROM lines WHERE price > $1", 200),  # (price) serves it
    stmt(LIMITED, 500),  # alone, (price) turns this into a walk of the whole index
]


def test_a_candidate_refused_for_a_regression_is_priced_again_after_the_next_choice(
    aconn: psycopg.Connection[Any],
) -> None:
    """Round 0: with (price) alone the LIMIT statement walks (price) backwards, hoping to meet a
    day's rows early (priced as that fragile walk), which regresses it, so (price) is refused.
    (day, flag) is chosen for it; with it there the planner no longer walks (price), and (price)
    pays for the count.  On main the refusal of round 0 was final: only (day, flag)."""
    result = advise(aconn, Settings(observed_values=False), WORKLOAD)
    assert sorted(i["columns"] for i in result["indexes"]) == [["day", "flag"], ["price"]], result["indexes"]
    limited = [s for s in result["slower_statements"] if s.get("query", "").startswith("SELECT id, price")]
    assert not limited, limited  # the walk it was refused for does not come back


def test_several_ranges_on_a_table_get_a_composite_of_them(aconn: psycopg.Connection[Any]) -> None:
    """`day BETWEEN ... AND price < ...`: (day) bounds the scan, and with price as a second key
    the count is answered from the index alone, with no heap fetch for the days' other rows.  On
    main a second range was never a key: only (day), (price) and their BRINs were candidates."""
    workload = [stmt("SELECT count(*) FROM lines WHERE day BETWEEN $1 AND $2 AND price < $3", 500)]
    result = advise(aconn, Settings(observed_values=False, storage_weight=0.0), workload)
    keys = [i["columns"] for i in result["indexes"]]
    assert any(set(k) == {"day", "price"} for k in keys), result["indexes"]
