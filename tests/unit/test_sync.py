"""Sync rules that need no server: which tables a statement reads, the busy-pass cadence."""

from __future__ import annotations

import pytest

from asymm.cache import read_tables


def test_read_tables_finds_what_a_statement_reads() -> None:
    _sql, names, ok = read_tables(
        "WITH c AS (SELECT * FROM s.a) SELECT * FROM c JOIN b ON true WHERE EXISTS (SELECT 1 FROM d)"
    )
    assert names == {("s", "a"), (None, "b"), (None, "d")} and ok
    assert read_tables("SELECT * FROM a FOR UPDATE")[2] is False


def test_busy_passes_spread_out_only_under_a_heavy_stream() -> None:
    """busy_cadence: sync.busy_interval as long as a pass gathers up to STRETCH_KEYS keys per
    interval; above that, proportional to the stream (fewer passes, each with more keys), capped at
    STRETCH_MAX intervals and at a pulse."""
    from asymm.sync.worker import STRETCH_KEYS, STRETCH_MAX, busy_cadence

    interval, pulse = 0.010, 0.2037
    assert busy_cadence(interval, 0, 5.0, pulse) == interval  # the first pass after a quiet spell
    assert busy_cadence(interval, 10, 0.010, pulse) == interval  # 1,000 keys/s
    assert busy_cadence(interval, STRETCH_KEYS, 0.010, pulse) == interval  # the threshold itself
    assert busy_cadence(interval, 200, 0.020, pulse) == pytest.approx(0.020)  # 10,000 keys/s: twice
    assert busy_cadence(interval, 800, 0.020, pulse) == pytest.approx(STRETCH_MAX * interval)  # 40,000/s
    assert busy_cadence(0.1, 10_000, 0.1, pulse) == pulse  # never more than a pulse
    assert busy_cadence(interval, 100, 0.0, pulse) == interval  # no time measured: no rate
