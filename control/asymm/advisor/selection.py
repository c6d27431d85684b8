"""Workload-wide greedy selection of indexes.

Benefit is calls × planner-cost saved over the whole workload, less a write-maintenance penalty
and a storage price per index; the loop adds the best net candidate while it fits the budget and
gains enough of the remaining cost, refuses any that slows a read (``max_regression``) or a write
(:class:`WriteModel`, ``max_write_regression``) too much, then drops redundant ones.

Details: docs/advisor.md, "Selection".
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asymm.advisor.candidates import Candidate, covered_by_existing
from asymm.advisor.catalog import Table, columns_in
from asymm.advisor.whatif import Prepared, WhatIf

log = logging.getLogger("asymm.advisor")


@dataclass
class Options:
    budget_bytes: int | None = None
    max_indexes: int | None = None
    min_gain_fraction: float = 0.01
    write_cost_per_row: float = 0.5
    max_regression: float = 0.10
    # the write bound (docs/advisor.md); None turns it off
    max_write_regression: float | None = 0.50
    statement_overhead_ms: float = 0.15
    index_entry_ms: float = 0.012
    brin_entry_ms: float = 0.0036  # a BRIN: 0.3 of a btree entry (measured 0.14-0.27), docs/advisor.md
    near_tie: float = 0.15
    # the storage price: an index of the data's size must save this fraction of the remaining cost
    storage_weight: float = 0.25


@dataclass
class Workload:
    """Planned statements: prepared handle, weight (calls), base cost, queryid."""

    prepared: list[Prepared]
    weights: list[float]
    queryids: list[int]
    rows: list[int] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    mean_ms: list[float] = field(default_factory=list)  # mean execution time per call (pg_stat_statements)

    def writes(self) -> dict[int, float]:
        """Rows written per table oid by the workload's DML statements."""
        out: dict[int, float] = {}
        for prepared, rows in zip(self.prepared, self.rows, strict=True):
            analysis = prepared.rewritten.analysis
            if analysis.kind in ("insert", "update", "delete") and analysis.write_table is not None:
                out[analysis.write_table.oid] = out.get(analysis.write_table.oid, 0.0) + rows
        return out


@dataclass
class _Write:
    index: int  # position in the workload
    kind: str  # insert | update
    table_oid: int
    set_columns: frozenset[str]  # UPDATE only
    rows: float  # rows written in the window
    rows_per_call: float
    mean_ms: float  # mean execution time per call today


class WriteModel:
    """What a set of indexes costs the workload's INSERT and UPDATE statements (docs/advisor.md, "The write bound")."""

    def __init__(self, workload: Workload, tables: dict[int, Table], options: Options) -> None:
        self.options = options
        self.tables = tables
        self.writes: list[_Write] = []
        for i, prepared in enumerate(workload.prepared):
            analysis = prepared.rewritten.analysis
            if analysis.write_table is None or analysis.kind not in ("insert", "update"):
                continue
            if analysis.kind == "update" and not analysis.set_columns:
                continue
            rows = float(workload.rows[i]) if i < len(workload.rows) else 0.0
            calls = max(workload.weights[i], 1.0)
            mean = workload.mean_ms[i] if i < len(workload.mean_ms) else 0.0
            self.writes.append(
                _Write(
                    i,
                    analysis.kind,
                    analysis.write_table.oid,
                    frozenset(analysis.set_columns),
                    rows,
                    rows / calls,
                    mean,
                )
            )
        self._columns: dict[Candidate, frozenset[str]] = {}

    def columns(self, cand: Candidate) -> frozenset[str]:
        """The table columns a candidate's keys and expressions read."""
        if cand not in self._columns:
            table = self.tables.get(cand.table_oid)
            text = " ".join([*cand.keys, *cand.include])  # an INCLUDE column set by an UPDATE ends HOT too
            self._columns[cand] = columns_in(text, table) if table else frozenset()
        return self._columns[cand]

    def _existing(self, oid: int) -> tuple[float, list[frozenset[str]]]:
        """(what one row version costs the table's existing indexes, in btree entries; their columns)."""
        table = self.tables.get(oid)
        indexes = table.indexes if table else []
        return sum(self.weight(ix.method) for ix in indexes), [ix.columns for ix in indexes]

    def weight(self, method: str) -> float:
        """What an index of ``method`` costs a written row, in btree entries (``index_entry_ms``).

        BRIN: ``brin_entry_ms`` (measured, see docs/advisor.md); every other method as a btree."""
        if method == "brin" and self.options.index_entry_ms > 0:
            return self.options.brin_entry_ms / self.options.index_entry_ms
        return 1.0

    def on_table(self, oid: int, config: list[Candidate]) -> float:
        """What ``config``'s indexes on table ``oid`` cost a written row, in btree entries."""
        return sum(self.weight(c.method) for c in config if c.table_oid == oid)

    def observed_hot(self, oid: int) -> float:
        """The fraction of the table's updates that are HOT today (1.0 when none was observed)."""
        table = self.tables.get(oid)
        if table is None or table.updates <= 0:
            return 1.0
        return min(1.0, max(0.0, table.hot_updates / table.updates))

    def hot(self, write: _Write, config: list[Candidate]) -> bool:
        """Whether the UPDATE can still be HOT: no index, existing or in ``config``, reads a SET column."""
        _, existing = self._existing(write.table_oid)
        if any(cols & write.set_columns for cols in existing):
            return False
        return not any(c.table_oid == write.table_oid and self.columns(c) & write.set_columns for c in config)

    def hot_fraction(self, write: _Write, config: list[Candidate]) -> float:
        """The fraction of the UPDATE's rows that touch no index under ``config``."""
        return self.observed_hot(write.table_oid) if self.hot(write, config) else 0.0

    def entries(self, write: _Write, config: list[Candidate]) -> float:
        """Index entries per written row under ``config``, beyond those the existing indexes take
        today (in btree entries: a BRIN counts ``brin_entry_ms / index_entry_ms``)."""
        n_existing, _ = self._existing(write.table_oid)
        on_table = self.on_table(write.table_oid, config)
        if write.kind == "insert":
            return float(on_table)
        now = 1.0 - self.hot_fraction(write, [])
        then = 1.0 - self.hot_fraction(write, config)
        return then * (n_existing + on_table) - now * n_existing

    def affected(self, cand: Candidate) -> list[_Write]:
        return [w for w in self.writes if w.table_oid == cand.table_oid]

    def hot_penalty(self, cand: Candidate, others: list[Candidate]) -> float:
        """Extra cost of the updates ``cand`` turns non-HOT (its own entry is in the base penalty)."""
        total = 0.0
        for write in self.affected(cand):
            if write.kind == "update" and self.hot(write, others) and not self.hot(write, [*others, cand]):
                n_existing, _ = self._existing(write.table_oid)
                on_table = self.on_table(write.table_oid, others)
                total += (
                    write.rows
                    * self.options.write_cost_per_row
                    * (n_existing + on_table)
                    * self.observed_hot(write.table_oid)
                )
        return total

    def per_call_ms(self, write: _Write, plan_ratio: float, config: list[Candidate]) -> float:
        """Modelled time of one call under ``config``; ``plan_ratio``: its plan's cost relative to today's."""
        return (
            self.options.statement_overhead_ms
            + write.mean_ms * plan_ratio
            + write.rows_per_call * self.options.index_entry_ms * self.entries(write, config)
        )


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


def select(
    whatif: WhatIf,
    workload: Workload,
    candidates: list[Candidate],
    tables: dict[int, Table],
    options: Options,
    rejection: Callable[[Candidate], str | None] | None = None,
) -> tuple[list[Chosen], dict[str, Any]]:
    """Pick indexes; returns them with their final contributions, and summary figures (with the
    candidates the write bound refused, under ``refused_write_bound``).

    ``rejection`` tells why PostgreSQL would refuse a candidate's definition (None: it accepts it);
    it is asked only of a candidate about to be chosen, and a refused one is never chosen."""
    selection = _Selection(whatif, workload, candidates, tables, options)
    selection.rejection = rejection
    return selection.run()


class _Selection:
    """One run of the greedy selection (docs/advisor.md); its state, shared by the steps, in attributes."""

    def __init__(
        self,
        whatif: WhatIf,
        workload: Workload,
        candidates: list[Candidate],
        tables: dict[int, Table],
        options: Options,
    ) -> None:
        self.whatif = whatif
        self.workload = workload
        self.options = options
        n = len(workload.prepared)
        empty: frozenset[Candidate] = frozenset()
        workload.base = [whatif.cost(p, empty).cost for p in workload.prepared]
        self.total = sum(w * c for w, c in zip(workload.weights, workload.base, strict=True))
        # the statements each candidate may serve
        self.relevant: dict[Candidate, list[int]] = {}
        for cand in candidates:
            idx = [
                i
                for i in range(n)
                if cand.table_oid in workload.prepared[i].tables
                and (workload.queryids[i] in cand.queryids or _mentions(workload.prepared[i], cand))
            ]
            if idx:
                self.relevant[cand] = idx
        self.written = workload.writes()
        self.tables = tables
        self.model = WriteModel(workload, tables, options)
        self.chosen: list[Candidate] = []
        self.refused: list[dict[str, Any]] = []
        self.used_bytes = 0
        self.remaining = self.total
        self.heap: list[tuple[float, int, int, Candidate]] = []  # (-bound, tiebreak, round evaluated, cand)
        self.round_no = 0
        # why the greedy loop ended: the cap (with beneficial candidates left) or marginal benefit
        self.stopped_by = "marginal_benefit"
        self.beneficial_left = 0
        # Candidates that lost a near-tie, with the tie's margin: taken later only if what they still
        # add beyond the winner exceeds it (else (a, b) would follow (a) for the little it adds, and
        # the final pass would drop (a): the bytes saved by the tie-break lost).
        self.tie_losers: dict[Candidate, float] = {}
        self.rejection: Callable[[Candidate], str | None] | None = None
        # the bytes of the tables the workload reads or writes: what an index's size is weighed against
        touched = {oid for p in workload.prepared for oid in p.tables}
        self.data_bytes = sum(t.bytes for oid, t in tables.items() if oid in touched)
        self.gross: dict[Candidate, float] = {}  # each candidate's gain before charges, when last priced
        # candidates a regression refused (marginal() None): priced again after each choice
        self.vetoed: list[Candidate] = []

    def cost(self, i: int, config: frozenset[Candidate]) -> float:
        return self.whatif.cost(self.workload.prepared[i], config).cost

    def penalty(self, cand: Candidate, others: list[Candidate] | None = None) -> float:
        """Maintenance of ``cand`` itself, plus the HOT updates it ends given ``others`` (default: chosen)."""
        writes = self.written.get(cand.table_oid, 0.0)
        own = (
            writes * self.options.write_cost_per_row * (3.0 if cand.method == "gin" else self.model.weight(cand.method))
        )
        return own + self.model.hot_penalty(cand, self.chosen if others is None else others)

    def storage_price(self, cand: Candidate, left: float) -> float:
        """What ``cand``'s storage costs, in the unit of gains: ``storage_weight`` × its size
        relative to the data it indexes × ``left``, what the workload still costs with it.

        Why what is left: the unit in which a DBA weighs an index's bytes is what remains to gain,
        not the window's total (which grows with the window while the bytes do not).  An index a
        tenth of the data's size has to save a fortieth of what the workload costs with it: wide
        indexes (INCLUDE columns, composites that cannot deduplicate) pay for their bytes, a narrow
        one that serves a statement nearly as well wins, and an index for a statement run twice
        does not buy its bytes.  What is left, not what was there before it: the first index
        takes most of a sequential-scan workload's cost, and a price on that cost would outweigh
        the difference between the candidates for it."""
        weight = self.options.storage_weight
        size = self.whatif.size(cand)
        if weight <= 0 or not size or self.data_bytes <= 0:
            return 0.0
        return weight * max(left, 0.0) * size / self.data_bytes

    def write_regression(self, cand: Candidate) -> bool:
        """Whether adding ``cand`` makes a write statement's modelled cost per call exceed the bound."""
        bound = self.options.max_write_regression
        if bound is None:
            return False
        model = self.model
        for write in model.affected(cand):
            i = write.index
            before_cfg, after_cfg = list(self.chosen), [*self.chosen, cand]
            if model.entries(write, after_cfg) <= model.entries(write, before_cfg):
                continue
            base_cost = max(self.workload.base[i], 1e-9)
            plan_before = self.cost(i, self.config(i)) / base_cost
            plan_after = self.cost(i, self.config(i, extra=cand)) / base_cost
            base = model.per_call_ms(write, 1.0, [])
            after = model.per_call_ms(write, plan_after, after_cfg)
            if after > base * (1 + bound) and after > model.per_call_ms(write, plan_before, before_cfg):
                ends_hot = model.hot(write, before_cfg) and not model.hot(write, after_cfg)
                why = (
                    "one more index entry per row"
                    if write.kind == "insert"
                    else "ends HOT updates"
                    if ends_hot
                    else "one more entry per non-HOT update"
                )
                log.info(
                    "advisor: %s refused: it would make %s %.2fx costlier per call (%s)",
                    cand.definition(),
                    write.kind.upper(),
                    after / base,
                    why,
                )
                self.refused.append(
                    {
                        "definition": cand.definition(),
                        "queryid": self.workload.queryids[i],
                        "statement": write.kind,
                        "modelled_ratio": round(after / base, 3),
                        "reason": why,
                    }
                )
                return True
        return False

    def config(self, i: int, extra: Candidate | None = None, without: Candidate | None = None) -> frozenset[Candidate]:
        """The chosen indexes (plus ``extra``, less ``without``) on the tables statement ``i`` reads."""
        items = [c for c in self.chosen if c != without]
        if extra is not None:
            items.append(extra)
        tables_i = self.workload.prepared[i].tables
        return frozenset(c for c in items if c.table_oid in tables_i)

    def marginal(self, cand: Candidate) -> float | None:
        """Net gain of adding ``cand`` to ``chosen``; None when it regresses a statement."""
        gain = 0.0
        for i in self.relevant[cand]:
            before = self.cost(i, self.config(i))
            after = self.cost(i, self.config(i, extra=cand))
            if after > self.workload.base[i] * (1 + self.options.max_regression) and after > before:
                return None
            gain += self.workload.weights[i] * (before - after)
        if self.write_regression(cand):
            return None
        self.gross[cand] = gain
        price = self.storage_price(cand, self.remaining - gain)
        log.debug("advisor: %s: gain %.0f, storage price %.0f", cand.definition(), gain, price)
        return gain - self.penalty(cand) - price

    def tie_margin(self, best: Candidate, other: Candidate) -> float | None:
        """None when ``other`` leaves a statement either serves more than ``near_tie`` costlier than
        ``best`` does; else ``near_tie`` × what those statements still cost with ``best``."""
        left = 0.0
        for i in sorted(set(self.relevant[best]) | set(self.relevant[other])):
            with_best = self.cost(i, self.config(i, extra=best))
            with_other = self.cost(i, self.config(i, extra=other))
            if with_other > with_best * (1 + self.options.near_tie) + 1e-9:
                return None
            left += self.workload.weights[i] * with_best
        return self.options.near_tie * left

    def near_ties(self, gain: float, tie: int, cand: Candidate, size: int) -> tuple[float, int, Candidate, int]:
        """Among candidates whose net gain is within the tie margin of ``gain``, the most gain per byte.

        A tie: no statement either candidate serves is left more than ``near_tie`` costlier with
        the other one than with the best one.  (A margin relative to the gain would call
        (created_at) a tie with (customer_id, created_at DESC) when both remove 98 % of a
        statement's cost but one leaves four times the other's residue.)  The others go back to
        the queue with their refreshed gains; a tie's loser is taken later only if it then adds
        more than ``near_tie`` × what those statements cost with the winner."""
        options, heap = self.options, self.heap
        floor = gain * (1 - min(1.0, options.near_tie))  # a cheap first cut; the margin below is tighter
        best = (gain / max(size, 1), gain, tie, cand, size)
        back: list[tuple[float, int, int, Candidate]] = []
        while heap and -heap[0][0] >= floor:
            other_neg, other_tie, evaluated, other = heapq.heappop(heap)
            other_gain: float | None = -other_neg
            if evaluated != self.round_no:
                other_gain = self.marginal(other)
                evaluated = self.round_no
            if other_gain is None or other_gain <= 0:
                continue
            back.append((-other_gain, other_tie, evaluated, other))
            other_size = self.whatif.size(other) or 0
            if other_gain < floor or (
                options.budget_bytes is not None and self.used_bytes + other_size > options.budget_bytes
            ):
                continue
            margin = self.tie_margin(cand, other)
            if margin is None:
                continue
            self.tie_losers[cand] = max(self.tie_losers.get(cand, 0.0), margin)
            self.tie_losers[other] = max(self.tie_losers.get(other, 0.0), margin)
            if other_gain / max(other_size, 1) > best[0]:
                best = (other_gain / max(other_size, 1), other_gain, other_tie, other, other_size)
        _, best_gain, best_tie, best_cand, best_size = best
        self.tie_losers.pop(best_cand, None)
        if best_cand is not cand:
            back = [entry for entry in back if entry[3] is not best_cand]
            back.append((-gain, tie, self.round_no, cand))
            log.info(
                "advisor: near-tie: %s (net gain %.0f, %d bytes) rather than %s (net gain %.0f, %d bytes)",
                best_cand.definition(),
                best_gain,
                best_size,
                cand.definition(),
                gain,
                size,
            )
        for entry in back:
            heapq.heappush(heap, entry)
        return -best_gain, best_tie, best_cand, best_size

    def run(self) -> tuple[list[Chosen], dict[str, Any]]:
        self.greedy()
        self.prune()
        if self.narrow():
            self.prune()
        return self.results()

    def greedy(self) -> None:
        """The greedy loop: take the best net marginal gain until it is too small, or a limit is reached."""
        options, heap = self.options, self.heap
        order = {c: k for k, c in enumerate(self.relevant)}
        for cand in self.relevant:
            if self.whatif.size(cand) is None:
                continue
            gain = self.marginal(cand)
            if gain is None:
                self.vetoed.append(cand)
            elif gain > 0:
                heapq.heappush(heap, (-gain, order[cand], 0, cand))
        while heap:
            if options.max_indexes is not None and len(self.chosen) >= options.max_indexes:
                self.beneficial_left = self.still_beneficial()
                if self.beneficial_left:
                    self.stopped_by = "max_indexes"
                break
            neg, tie, evaluated, cand = heapq.heappop(heap)
            if -neg < options.min_gain_fraction * self.remaining:
                break
            size = self.whatif.size(cand) or 0
            if options.budget_bytes is not None and self.used_bytes + size > options.budget_bytes:
                continue
            if evaluated != self.round_no:
                gain = self.marginal(cand)
                if gain is None:
                    self.vetoed.append(cand)
                    continue
                if cand in self.tie_losers and gain <= self.tie_losers[cand]:
                    continue
                if gain > 0:
                    heapq.heappush(heap, (-gain, tie, self.round_no, cand))
                continue
            neg, tie, cand, size = self.near_ties(-neg, tie, cand, size)
            if self.rejection is not None and self.rejection(cand) is not None:
                self.tie_losers.pop(cand, None)
                continue  # PostgreSQL refuses its definition: never chosen (advise reports why)
            self.remaining = max(0.0, self.remaining - self.gross[cand])
            self.chosen.append(cand)
            self.used_bytes += size
            self.round_no += 1
            log.info("advisor: chose %s (net gain %.0f)", cand.definition(), -neg)
            self.requeue_vetoed(order)

    def requeue_vetoed(self, order: dict[Candidate, int]) -> None:
        """Price again, with the index just chosen in place, the candidates a regression refused.

        Why: a veto depends on what is chosen.  Alone, (l_extendedprice) turns `... WHERE
        l_shipdate = $1 ORDER BY l_extendedprice DESC LIMIT 10` into a walk of the whole index
        (priced as the fragile walk it is), so it is refused; once (l_shipdate) is chosen the
        planner takes that instead, and (l_extendedprice) may serve the statement it was for.
        Refused once and never looked at again, it was lost for the run."""
        vetoed, self.vetoed = self.vetoed, []
        for cand in vetoed:
            gain = self.marginal(cand)
            if gain is None:
                self.vetoed.append(cand)
            elif gain > 0:
                heapq.heappush(self.heap, (-gain, order[cand], self.round_no, cand))

    def still_beneficial(self) -> int:
        """How many queued candidates the loop would still take (net gain above the margin, within
        the budget) if the cap had not stopped it; reported, so a cap that hides gains is seen."""
        options, refused = self.options, len(self.refused)
        threshold = options.min_gain_fraction * self.remaining
        count = 0
        for neg, _tie, evaluated, cand in self.heap:
            # A queued gain is an upper bound (the greedy loop relies on it too): below the margin,
            # no what-if call can lift it over, so it is not priced again.
            if -neg <= 0 or -neg < threshold:
                continue
            size = self.whatif.size(cand) or 0
            if options.budget_bytes is not None and self.used_bytes + size > options.budget_bytes:
                continue
            gain = -neg if evaluated == self.round_no else self.marginal(cand)
            if gain is not None and gain > 0 and gain >= threshold:
                count += 1
        del self.refused[refused:]  # a refusal seen only while counting is no refusal of this run
        return count

    def prune(self) -> None:
        """Final pass: drop indexes the others made redundant, the least missed first.

        Redundant: what dropping it costs (net of its maintenance) is below the greedy loop's
        margin, or other chosen indexes serve its statements and none costs more than ``near_tie``
        more without it (a narrow (user_id) next to (user_id, created_at DESC), which serves its
        statements nearly as well): the tolerance of a near-tie, for the same reason (one index
        fewer to store and maintain).  Relative to what each statement still costs, not to what it
        gained: next to a sequential scan's cost every index's residue looks small."""
        chosen, weights = self.chosen, self.workload.weights
        while chosen:
            drop: tuple[float, Candidate] | None = None
            for cand in chosen:
                loss, covered = 0.0, True
                for i in self.relevant[cand]:
                    with_all = self.cost(i, self.config(i))
                    plan = self.whatif.cost(self.workload.prepared[i], self.config(i, without=cand))
                    without = plan.cost
                    loss += weights[i] * (without - with_all)
                    # covered by another chosen index (used without it), not by the sequential scan
                    served = without <= with_all + 1e-9 or bool(plan.used)
                    covered = covered and served and without <= with_all * (1 + self.options.near_tie) + 1e-9
                net = (
                    loss
                    - self.penalty(cand, [c for c in chosen if c != cand])
                    - self.storage_price(cand, self.remaining)
                )
                if (net < self.options.min_gain_fraction * self.remaining or covered) and (
                    drop is None or net < drop[0]
                ):
                    drop = (net, cand)
            if drop is None:
                break
            log.info(
                "advisor: dropped %s: the others serve its statements (net loss %.0f)", drop[1].definition(), drop[0]
            )
            chosen.remove(drop[1])

    def narrow(self) -> bool:
        """Re-examine each chosen btree once the others exist: replace it by a narrower one (a
        prefix of its keys, without INCLUDE columns) when what that loses in the workload's cost
        is less than what it saves in maintenance and storage.  Returns whether anything changed.

        Why: the greedy loop judges a candidate against what is chosen so far.  It takes
        (date_id, customer_id) first, while customer_id in the key still saves a customer's
        statement; once (customer_id) is chosen too, that second key only costs bytes.  prune()
        can drop an index, never make it narrower."""
        changed = False
        for _ in range(len(self.chosen) * 4):  # each swap makes an index strictly narrower
            swap = next(
                ((old, new) for old in self.chosen for new in self._narrower(old) if self._swap_net(old, new) > 0),
                None,
            )
            if swap is None:
                break
            old, new = swap
            log.info("advisor: narrowed %s to %s: the others serve what it added", old.definition(), new.definition())
            self.chosen[self.chosen.index(old)] = new
            self.used_bytes += (self.whatif.size(new) or 0) - (self.whatif.size(old) or 0)
            changed = True
        return changed

    def _narrower(self, cand: Candidate) -> list[Candidate]:
        """The btree prefixes of ``cand`` (without its INCLUDE columns) not chosen yet, widest first."""
        if cand.method != "btree":
            return []
        lengths = range(len(cand.keys), 0, -1) if cand.include else range(len(cand.keys) - 1, 0, -1)
        out = []
        for n in lengths:
            new = Candidate(cand.table_oid, cand.table, cand.keys[:n], queryids=cand.queryids)
            table = self.tables.get(cand.table_oid)
            if new in self.chosen or (table is not None and covered_by_existing(new, table)):
                continue
            if self.whatif.size(new) is None:
                continue
            self.relevant.setdefault(new, self.relevant[cand])
            out.append(new)
        return out

    def _swap_net(self, old: Candidate, new: Candidate) -> float:
        """What replacing ``old`` by ``new`` saves (maintenance and storage) less what it costs the
        statements; negative when it would regress a statement past ``max_regression``."""
        others = [c for c in self.chosen if c != old]
        loss = 0.0
        for i in self.relevant[old]:
            with_all = self.cost(i, self.config(i))
            after = self.cost(i, self.config(i, extra=new, without=old))
            if after > self.workload.base[i] * (1 + self.options.max_regression) and after > with_all:
                return -1.0
            loss += self.workload.weights[i] * (after - with_all)
        saved = (
            self.penalty(old, others)
            - self.penalty(new, others)
            + self.storage_price(old, self.remaining)
            - self.storage_price(new, self.remaining)
        )
        return saved - loss - 1e-9 * max(self.total, 1.0)

    def results(self) -> tuple[list[Chosen], dict[str, Any]]:
        """What each kept index still brings, and the summary figures."""
        workload, chosen = self.workload, self.chosen
        result: list[Chosen] = []
        final_cost = 0.0
        users: dict[Candidate, list[int]] = {c: [] for c in chosen}
        before_after: dict[Candidate, tuple[dict[int, float], dict[int, float]]] = {c: ({}, {}) for c in chosen}
        for i, prepared in enumerate(workload.prepared):
            plan = self.whatif.cost(prepared, self.config(i))
            final_cost += workload.weights[i] * plan.cost
            for cand in plan.used:
                if cand in users:
                    users[cand].append(workload.queryids[i])
                    before_after[cand][0][workload.queryids[i]] = workload.base[i]
                    before_after[cand][1][workload.queryids[i]] = plan.cost
        for cand in chosen:
            gross = 0.0
            for i in self.relevant[cand]:
                gross += workload.weights[i] * (
                    self.cost(i, self.config(i, without=cand)) - self.cost(i, self.config(i))
                )
            pen = self.penalty(cand, [c for c in chosen if c != cand])
            result.append(
                Chosen(
                    cand,
                    gross - pen,
                    gross,
                    pen,
                    self.whatif.size(cand) or 0,
                    sorted(set(users[cand])),
                    *before_after[cand],
                )
            )
        result.sort(key=lambda c: -c.benefit)
        by_definition = {str(item["definition"]): item for item in self.refused}
        summary = {
            "workload_cost_before": self.total,
            "workload_cost_after": final_cost,
            "refused_write_bound": [
                item
                for key, item in sorted(by_definition.items())
                if key not in {c.candidate.definition() for c in result}
            ],
            "storage_bytes": float(sum(c.size_bytes for c in result)),
            "slower_statements": self.slower(),
            "stopped_by": self.stopped_by,
            "beneficial_candidates_left": self.beneficial_left,
        }
        return result, summary

    def slower(self, epsilon: float = 1e-3) -> list[dict[str, Any]]:
        """Every statement the final set is expected to make slower per call, heaviest first.

        The same models the selection weighs: a write's modelled time per call (:class:`WriteModel`),
        a read's planner cost.  ``extra_ms`` (per call) puts both in one unit (a read's mean time x
        its cost ratio - 1) so that the list sorts by calls x extra time: what the DBA pays."""
        workload, model = self.workload, self.model
        writes = {w.index: w for w in model.writes}
        out: list[dict[str, Any]] = []
        for i in range(len(workload.prepared)):
            base_cost = max(workload.base[i], 1e-9)
            plan_ratio = self.cost(i, self.config(i)) / base_cost
            write = writes.get(i)
            if write is not None:
                before = model.per_call_ms(write, 1.0, [])
                after = model.per_call_ms(write, plan_ratio, self.chosen)
                factor, extra_ms = after / before, after - before
            else:
                mean = workload.mean_ms[i] if i < len(workload.mean_ms) else 0.0
                factor, extra_ms = plan_ratio, mean * (plan_ratio - 1.0)
            if factor <= 1.0 + epsilon:
                continue
            out.append(
                {
                    "queryid": workload.queryids[i],
                    "statement": workload.prepared[i].rewritten.analysis.kind,
                    "estimated_factor": round(factor, 3),
                    "calls": int(workload.weights[i]),
                    "extra_ms_per_call": round(extra_ms, 4),
                }
            )
        out.sort(key=lambda item: -item["calls"] * item["extra_ms_per_call"])
        return out


def _mentions(prepared: Prepared, cand: Candidate) -> bool:
    """Whether the statement filters, joins, sorts or groups on the candidate's leading key."""
    lead = cand.keys[0].removesuffix(" DESC")
    analysis = prepared.rewritten.analysis
    if any(p.table.oid == cand.table_oid and p.expr == lead for p in analysis.preds):
        return True
    if any(s.table.oid == cand.table_oid and s.keys and s.keys[0][0] == lead for s in analysis.sorts):
        return True
    return any(t.oid == cand.table_oid and lead in keys for t, keys in analysis.groups)
