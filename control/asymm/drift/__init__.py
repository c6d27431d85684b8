"""Schema drift from the control plane: baselines, drift reports, validated migration plans.

Faces, like every feature: :mod:`asymm.drift.api` (functions over a connection: baseline, accept,
items, plan, render_sql), :mod:`asymm.drift.scratch` (validating a plan on a scratch copy of the
schema, which the server cannot do from inside a transaction) and :mod:`asymm.drift.feature` (the
daemon's reconciliation and opt-in restore of dropped baseline indexes).  The public names are
re-exported here, so ``from asymm import drift; drift.plan(...)`` keeps working.
"""

from asymm.drift.api import (
    PlanStep,
    Validation,
    accept,
    baseline_names,
    capture_baseline,
    drift_items,
    lock_timeout,
    open_findings,
    plan,
    render_sql,
)
from asymm.drift.scratch import SCRATCH_GUARD, SCRATCH_UNGUARD, source_dsn, tool_env, validate_plan

__all__ = [
    "SCRATCH_GUARD",
    "SCRATCH_UNGUARD",
    "PlanStep",
    "Validation",
    "accept",
    "baseline_names",
    "capture_baseline",
    "drift_items",
    "lock_timeout",
    "open_findings",
    "plan",
    "render_sql",
    "source_dsn",
    "tool_env",
    "validate_plan",
]
