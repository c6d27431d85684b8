"""Schema drift, issue #19: the round-trip property on generated DDL sequences.

For a schema with one of each kind of object (tests/harness/drift_trip.py) and a random sequence
of mutations drawn from 57 kinds (renames and swaps, moves, type changes, NOT NULL, defaults,
constraints added, dropped and re-added NOT VALID, index changes, views, partitions, enum values,
domains, composite types, extensions, default privileges, grants, owner changes, drops with
CASCADE), the plan validates on the scratch copy, applies with psql's ON_ERROR_STOP and leaves no
drift, and the objects that survived the mutations keep their annotations.  The baseline itself is
the schema after a few mutations of its own.  A fixed (derandomized) set of sequences runs here;
the soak of ``bench/drift.py --soak`` runs a thousand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TypeVar

import psycopg
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.harness.drift_trip import MUTATIONS, drift_database, generated_round_trip

T = TypeVar("T")


class DrawChooser:
    """Each choice a hypothesis draw, so that a failing sequence shrinks to a short one."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def choice(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(list(options)))


@pytest.fixture(scope="module")
def dsn(admin_dsn: str) -> Iterator[str]:
    with drift_database(admin_dsn, f"asymm_drift_gen_{os.getpid()}") as target:
        yield target


def test_the_generator_has_forty_kinds_of_mutation() -> None:
    assert len(MUTATIONS) >= 40, sorted(MUTATIONS)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_plan_brings_any_generated_sequence_back(dsn: str, data: st.DataObject) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        trip = generated_round_trip(dsn, conn, "fast", DrawChooser(data), count=12)
        note("mutations:\n" + ";\n".join(trip.applied))
