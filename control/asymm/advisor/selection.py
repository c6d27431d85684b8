"""Workload-wide greedy selection of indexes.

benefit(set) = Σ over statements of calls × (cost without the set − cost with it), in planner
cost units; each index pays a write-maintenance penalty = rows written to its table ×
``write_cost_per_row`` (GIN × 3).  The rows written are those of the workload's own INSERT, UPDATE
and DELETE statements (``pg_stat_statements.rows``), so that benefit and penalty cover the same
window; pg_stat_user_tables' n_tup_ins/upd/del count since the statistics reset and include bulk
loads, which would make a freshly loaded table look write-heavy forever (they are reported as
``table_writes`` for information).  The
greedy loop adds, at each step, the candidate with the highest net marginal benefit that fits the
storage budget and the index cap; it stops when the best net gain is below ``min_gain_fraction``
of the workload's *remaining* estimated cost (after the indexes already chosen): once the big
scans are gone, a cheap index that halves what is left is still worth it, as a DBA would judge.
A candidate that makes any statement more than ``max_regression``
costlier is refused.  Marginal gains are evaluated lazily (a candidate's previous gain is an upper
bound for its next one), and only on the statements that can use it, which keeps the number of
what-if calls close to linear in the number of statements.  A final pass removes indexes made
redundant by later, wider ones, and measures each kept index's own contribution.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field

from asymm.advisor.candidates import Candidate
from asymm.advisor.catalog import Table
from asymm.advisor.whatif import Prepared, WhatIf

log = logging.getLogger("asymm.advisor")


@dataclass
class Options:
    budget_bytes: int | None = None
    max_indexes: int | None = None
    min_gain_fraction: float = 0.01
    write_cost_per_row: float = 0.5
    max_regression: float = 0.10


@dataclass
class Workload:
    """Planned statements: prepared handle, weight (calls), base cost, queryid."""

    prepared: list[Prepared]
    weights: list[float]
    queryids: list[int]
    rows: list[int] = field(default_factory=list)
    base: list[float] = field(default_factory=list)

    def writes(self) -> dict[int, float]:
        """Rows written per table oid by the workload's DML statements."""
        out: dict[int, float] = {}
        for prepared, rows in zip(self.prepared, self.rows, strict=True):
            analysis = prepared.rewritten.analysis
            if analysis.kind in ("insert", "update", "delete") and analysis.write_table is not None:
                out[analysis.write_table.oid] = out.get(analysis.write_table.oid, 0.0) + rows
        return out


@dataclass
class Chosen:
    candidate: Candidate
    benefit: float  # calls × cost saved, net of the maintenance penalty, in the final set
    gross: float
    penalty: float
    size_bytes: int
    queryids: list[int]
    cost_before: dict[int, float] = field(default_factory=dict)
    cost_after: dict[int, float] = field(default_factory=dict)


def select(whatif: WhatIf, workload: Workload, candidates: list[Candidate], tables: dict[int, Table],
           options: Options) -> tuple[list[Chosen], dict[str, float]]:
    """Pick indexes; returns them with their final contributions, and summary figures."""
    n = len(workload.prepared)
    empty: frozenset[Candidate] = frozenset()
    workload.base = [whatif.cost(p, empty).cost for p in workload.prepared]
    total = sum(w * c for w, c in zip(workload.weights, workload.base, strict=True))

    relevant: dict[Candidate, list[int]] = {}
    for cand in candidates:
        idx = [i for i in range(n) if cand.table_oid in workload.prepared[i].tables
               and (workload.queryids[i] in cand.queryids or _mentions(workload.prepared[i], cand))]
        if idx:
            relevant[cand] = idx

    written = workload.writes()

    def penalty(cand: Candidate) -> float:
        writes = written.get(cand.table_oid, 0.0)
        return writes * options.write_cost_per_row * (3.0 if cand.method == "gin" else 1.0)

    chosen: list[Candidate] = []

    def config(i: int, extra: Candidate | None = None, without: Candidate | None = None) -> frozenset[Candidate]:
        items = [c for c in chosen if c != without]
        if extra is not None:
            items.append(extra)
        tables_i = workload.prepared[i].tables
        return frozenset(c for c in items if c.table_oid in tables_i)

    def marginal(cand: Candidate) -> float | None:
        """Net gain of adding ``cand`` to ``chosen``; None when it regresses a statement."""
        gain = 0.0
        for i in relevant[cand]:
            before = whatif.cost(workload.prepared[i], config(i)).cost
            after = whatif.cost(workload.prepared[i], config(i, extra=cand)).cost
            if after > workload.base[i] * (1 + options.max_regression) and after > before:
                return None
            gain += workload.weights[i] * (before - after)
        return gain - penalty(cand)

    used_bytes = 0
    remaining = total
    heap: list[tuple[float, int, int, Candidate]] = []  # (-bound, tiebreak, round evaluated, cand)
    order = {c: k for k, c in enumerate(relevant)}
    for cand in relevant:
        if whatif.size(cand) is None:
            continue
        gain = marginal(cand)
        if gain is not None and gain > 0:
            heapq.heappush(heap, (-gain, order[cand], 0, cand))
    round_no = 0
    while heap:
        if options.max_indexes is not None and len(chosen) >= options.max_indexes:
            break
        neg, tie, evaluated, cand = heapq.heappop(heap)
        if -neg < options.min_gain_fraction * remaining:
            break
        size = whatif.size(cand) or 0
        if options.budget_bytes is not None and used_bytes + size > options.budget_bytes:
            continue
        if evaluated != round_no:
            gain = marginal(cand)
            if gain is not None and gain > 0:
                heapq.heappush(heap, (-gain, tie, round_no, cand))
            continue
        chosen.append(cand)
        used_bytes += size
        remaining = max(0.0, remaining - (-neg + penalty(cand)))
        round_no += 1
        log.info("advisor: chose %s (net gain %.0f)", cand.definition(), -neg)

    # Final pass: drop indexes the others made redundant, measure what each one still brings.
    result: list[Chosen] = []
    changed = True
    while changed and chosen:
        changed = False
        for cand in reversed(list(chosen)):
            loss = 0.0
            for i in relevant[cand]:
                with_all = whatif.cost(workload.prepared[i], config(i)).cost
                without = whatif.cost(workload.prepared[i], config(i, without=cand)).cost
                loss += workload.weights[i] * (without - with_all)
            if loss - penalty(cand) < options.min_gain_fraction * remaining:
                chosen.remove(cand)
                changed = True
                break
    final_cost = 0.0
    users: dict[Candidate, list[int]] = {c: [] for c in chosen}
    before_after: dict[Candidate, tuple[dict[int, float], dict[int, float]]] = {c: ({}, {}) for c in chosen}
    for i, prepared in enumerate(workload.prepared):
        plan = whatif.cost(prepared, config(i))
        final_cost += workload.weights[i] * plan.cost
        for cand in plan.used:
            if cand in users:
                users[cand].append(workload.queryids[i])
                before_after[cand][0][workload.queryids[i]] = workload.base[i]
                before_after[cand][1][workload.queryids[i]] = plan.cost
    for cand in chosen:
        gross = 0.0
        for i in relevant[cand]:
            gross += workload.weights[i] * (whatif.cost(workload.prepared[i], config(i, without=cand)).cost
                                            - whatif.cost(workload.prepared[i], config(i)).cost)
        pen = penalty(cand)
        result.append(Chosen(cand, gross - pen, gross, pen, whatif.size(cand) or 0, sorted(set(users[cand])),
                             *before_after[cand]))
    result.sort(key=lambda c: -c.benefit)
    summary = {"workload_cost_before": total, "workload_cost_after": final_cost,
               "storage_bytes": float(sum(c.size_bytes for c in result))}
    return result, summary


def _mentions(prepared: Prepared, cand: Candidate) -> bool:
    """Whether the statement filters, joins, sorts or groups on the candidate's leading key."""
    lead = cand.keys[0].removesuffix(" DESC")
    analysis = prepared.rewritten.analysis
    if any(p.table.oid == cand.table_oid and p.expr == lead for p in analysis.preds):
        return True
    if any(s.table.oid == cand.table_oid and s.keys and s.keys[0][0] == lead for s in analysis.sorts):
        return True
    return any(t.oid == cand.table_oid and lead in keys for t, keys in analysis.groups)
