"""The index-advisor benchmark's workloads (issue 18): one module per workload, run by bench/advisor.py.

Each module defines ``WORKLOAD``, a :class:`Workload`: a name, a schema + data SQL generator
parameterised by scale (largest table at least 1M rows at scale 1.0, generate_series, only
primary keys), the query shapes (SQL with ``$n`` parameters, a parameter generator fed by a
seeded ``random.Random``, a weight = calls per replay round, whether it writes), and ``EXPERT``:
the index set a careful DBA writes by reading the shapes.  Every expert set was written before
asymm's advisor was ever run on its workload, and is not changed after seeing asymm's output.

``timeseries`` is the hold-out: written last, nothing is tuned against it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

Params = Callable[[random.Random], tuple[Any, ...]]


@dataclass(frozen=True)
class Shape:
    """One statement shape of a workload: ``weight`` calls per replay round with generated parameters."""

    name: str
    sql: str  # PostgreSQL placeholders ($1, $2, ...): what pg_stat_statements shows and the advisor reads
    params: Params
    weight: int
    write: bool = False


@dataclass(frozen=True)
class Workload:
    """A schema generator, its shapes at a scale, and the expert's index set."""

    name: str
    description: str
    schema: Callable[[float], str]  # scale -> SQL (tables, data); the runner ANALYZEs
    shapes: Callable[[float], list[Shape]]  # scale -> shapes (parameter ranges follow the row counts)
    expert: list[str]
    holdout: bool = False
    notes: dict[str, str] = field(default_factory=dict)


def rows(n: int, scale: float, floor: int = 10) -> int:
    """``n`` rows at scale 1.0, scaled, never below ``floor``."""
    return max(floor, int(n * scale))


EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def ts(seconds: float) -> datetime:
    """A timestamptz ``seconds`` after the workloads' epoch (2026-01-01 UTC)."""
    return EPOCH + timedelta(seconds=seconds)


def names() -> list[str]:
    """The workloads in the order the runner takes them (the hold-out last)."""
    return ["tpch", "joblike", "saas", "events", "timeseries"]


def load(name: str) -> Workload:
    """The ``WORKLOAD`` of module ``name``."""
    import importlib

    module = importlib.import_module(f"advisor_workloads.{name}")
    workload: Workload = module.WORKLOAD
    return workload
