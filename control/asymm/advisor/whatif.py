"""What-if planning: the cost of a statement under a set of hypothetical (HypoPG) indexes.

Why through ``asymm._explain_as``: planning runs code, so each statement is planned as the role
that ran it, in a security-restricted operation, never executed; and this may run in somebody
else's session, so it leaves no trace there.  Details: docs/advisor.md.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from asymm.advisor import sample as sample_mod
from asymm.advisor import sizing
from asymm.advisor.analysis import Analysis
from asymm.advisor.candidates import Candidate, is_expression, on_columns
from asymm.advisor.catalog import Catalog, Table, quote_ident
from asymm.advisor.observed import typical
from asymm.advisor.rewrite import FALLBACK_ATTEMPTS, Rewritten, Unplannable, fallback_types, rewrite
from asymm.db import extension_schema
from asymm.errors import AsymmError

log = logging.getLogger("asymm.advisor")
HYPO_NAME = re.compile(r"^<(\d+)>")
LIMIT_VALUE = "10"
FRAGILE_FACTOR = 2.0
# Values (in each type's input syntax) for parameters that are not compared with a column
# (EXTRACT's field, arithmetic, a value in the target list): they only have to be non-NULL (NULL
# would fold a whole condition away).
NEUTRAL = {
    "integer": "1",
    "bigint": "1",
    "smallint": "1",
    "numeric": "1",
    "real": "1",
    "double precision": "1",
    "text": "epoch",
    "character varying": "x",
    "date": "today",
    "boolean": "true",
    "timestamp without time zone": "now",
    "timestamp with time zone": "now",
    "interval": "1 hour",
}
EXPLAIN_AS = "SELECT asymm._explain_as(%s, %s, %s::text[], %s::text[])"
PARAM_TYPES_AS = "SELECT asymm._param_types_as(%s, %s, %s::text[])"
RANGE_SIDE = {">": "lo", ">=": "lo", "<": "hi", "<=": "hi"}


@dataclass
class Prepared:
    name: str
    rewritten: Rewritten
    param_types: list[str]
    values: list[str | None]  # in each type's input syntax (unused for a generic plan)
    mode: str  # generic | custom
    tables: frozenset[int] = field(default_factory=frozenset)
    # per set of expression keys ((table oid, key)), the statement with them replaced by their
    # column, to price expression indexes (see _cost_by_proxy); None: it could not be planned
    proxies: dict[frozenset[tuple[int, str]], Prepared | None] = field(default_factory=dict)
    author: int = 0  # the role it is planned as (pg_stat_statements.userid)
    # its values include some pg_qualstats observed (asymm.advisor.observed), not only statistics'
    observed: bool = False


@dataclass
class PlanResult:
    cost: float
    used: frozenset[Candidate]
    # the plan walks a hypothetical index in order under a LIMIT and is priced as that fragile walk
    fragile: bool = False


def hypopg_installed(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'").fetchone() is not None


def planner_installed(conn: psycopg.Connection[Any]) -> bool:
    """Whether asymm._explain_as exists: without it no statement can be planned as its own role."""
    row = conn.execute(
        "SELECT to_regprocedure('asymm._explain_as(oid, text, text[], text[], boolean, text)') IS NOT NULL"
    ).fetchone()
    return bool(row and row[0])


class WhatIf:
    """A what-if session on one connection; use as a context manager so it cleans up after itself."""

    def __init__(self, conn: psycopg.Connection[Any], catalog: Catalog) -> None:
        if not hypopg_installed(conn):
            available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'").fetchone()
            hint = (
                "CREATE EXTENSION hypopg" if available else "install postgresql-15-hypopg, then CREATE EXTENSION hypopg"
            )
            raise AsymmError(f"the index advisor needs HypoPG, which is not installed in this database ({hint})")
        if not planner_installed(conn):
            raise AsymmError(
                "the index advisor needs the asymm extension, which plans each statement as the role that "
                "ran it (CREATE EXTENSION asymm CASCADE)"
            )
        self.conn = conn
        self.catalog = catalog
        # HypoPG's functions, by schema: asymm's session resolves nothing outside pg_catalog.
        self._hypopg = sql.Identifier(extension_schema(conn, "hypopg") or "public")
        self.prefix = "whatif_"
        self.calls = 0
        self.cache_hits = 0
        self._count = 0
        self._hypo: dict[Candidate, int] = {}
        self._failed: dict[Candidate, str] = {}
        self._sizes: dict[Candidate, int] = {}
        self._combinations: dict[tuple[int, frozenset[str]], float | None] = {}  # sizing.sampled_distinct
        self._cache: dict[tuple[str, frozenset[Candidate]], PlanResult] = {}
        self._refusals: dict[int, str | None] = {}
        self._saved: dict[str, str] = {}
        # candidates HypoPG refuses, priced on a sample copy instead (sample.py), or why they are not
        self._sampled: dict[Candidate, sample_mod.SamplePrice] = {}
        self._unpriced: dict[Candidate, str] = {}
        self._by_proxy: set[Candidate] = set()
        self.sample_runs: list[sample_mod.SampleRun] = []
        row = conn.execute("SELECT oid FROM pg_roles WHERE rolname = current_user").fetchone()
        self.me = int(str(row[0])) if row else 0

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> WhatIf:
        for setting in ("pg_stat_statements.track",):
            row = self.conn.execute("SELECT current_setting(%s, true)", (setting,)).fetchone()
            if row and row[0] is not None:
                self._saved[setting] = str(row[0])
        try:
            self.conn.execute("SET pg_stat_statements.track = none")
        except psycopg.Error:
            self._saved.pop("pg_stat_statements.track", None)  # not permitted: application_name tells
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.conn.closed:
            return
        for oid in list(self._hypo.values()):
            self.conn.execute(sql.SQL("SELECT {}.hypopg_drop_index(%s)").format(self._hypopg), (oid,))
        self._hypo.clear()
        for setting, value in self._saved.items():
            self.conn.execute("SELECT set_config(%s, %s, false)", (setting, value))

    # -- statements -------------------------------------------------------------------------------

    def refusal(self, author: int) -> str | None:
        """Why statements of role ``author`` may not be planned as that role by us (None: they may)."""
        if not -(2**31) <= author < 2**32:  # what the oid type takes (a negative one wraps, as in PostgreSQL)
            return f"userid {author} is no OID: no role to plan it as"
        if author not in self._refusals:
            row = self.conn.execute("SELECT asymm._plan_as_refusal(%s)", (author % 2**32,)).fetchone()
            self._refusals[author] = str(row[0]) if row and row[0] is not None else None
        return self._refusals[author]

    def prepare(
        self, rw: Rewritten, author: int | None = None, observed: dict[int, list[str]] | None = None
    ) -> Prepared:
        """Learn the statement's parameter types as ``author`` (retrying types the server could not infer).

        ``author`` is the role that ran it; None for a text the caller gives (planned as the
        current role).  ``observed``: values pg_qualstats saw per parameter (most frequent
        first), planned with in preference to the statistics' (:mod:`asymm.advisor.observed`).
        Raises :class:`PlanError` with the reason to skip it.
        """
        role = self.me if author is None else author
        refused = self.refusal(role)
        if refused is not None:
            raise PlanError(refused)
        self._count += 1
        name = f"{self.prefix}{self._count}"
        attempt, types = 0, list(rw.param_types)
        while True:
            try:
                row = self.conn.execute(PARAM_TYPES_AS, (role, rw.text, types)).fetchone()
                break
            except psycopg.Error as exc:
                attempt += 1
                retry = fallback_types(rw, attempt)
                while retry is None and attempt < FALLBACK_ATTEMPTS:
                    attempt += 1
                    retry = fallback_types(rw, attempt)
                if retry is None:
                    message = (exc.diag.message_primary or str(exc)).strip()
                    raise PlanError(f"cannot plan: {message}") from None
                types = retry
        assert row is not None
        doc = row[0] if not isinstance(row[0], str) else json.loads(row[0])
        actual = [str(t) for t in doc["param_types"]]
        tables = frozenset(t.oid for t in rw.analysis.tables) | (
            frozenset({rw.analysis.write_table.oid}) if rw.analysis.write_table else frozenset()
        )
        prepared: Prepared | None = None
        attempts = [(self._representative(rw, actual, observed), True)] if observed else []
        attempts.append((self._representative(rw, actual), False))
        for values, seen in attempts:
            if values is None or prepared is not None:
                continue
            prepared = Prepared(name, rw, actual, values, "custom", tables, author=role, observed=seen)
            try:
                self._explain(prepared)
            except PlanError:
                prepared = None  # a value the statement rejects: the next attempt, then the generic plan
        if prepared is None:
            prepared = Prepared(name, rw, actual, [], "generic", tables, author=role)
            self._explain(prepared)  # raises PlanError when even the generic plan fails
        return prepared

    def _representative(
        self, rw: Rewritten, types: list[str], observed: dict[int, list[str]] | None = None
    ) -> list[str | None] | None:
        """A value per parameter for a custom plan, or None when one has none (then the generic
        plan).  An observed value first (the median of what pg_qualstats saw), else one from the
        column's statistics (:func:`pick_value`)."""
        values: list[str | None] = []
        sides: dict[tuple[int, str], set[str]] = {}
        for known in rw.analysis.params.values():
            if known.table is not None and known.column is not None and known.op in RANGE_SIDE:
                sides.setdefault((known.table.oid, known.column), set()).add(RANGE_SIDE[known.op])
        for number, type_name in enumerate(types, start=1):
            if observed and observed.get(number):
                values.append(typical(observed[number]))
                continue
            ctx = rw.analysis.params.get(number)
            if ctx is None:
                neutral = NEUTRAL.get(type_name)
                if neutral is None:
                    return None
                values.append(neutral)
                continue
            if ctx.op == "expr":
                return None  # part of a computed bound: only the generic plan is honest
            if ctx.op == "limit":
                values.append(LIMIT_VALUE)
                continue
            if ctx.table is None or ctx.column is None:
                return None
            mcv, hist = self.catalog.stats(ctx.table, ctx.column)
            two_sided = sides.get((ctx.table.oid, ctx.column)) == {"lo", "hi"}
            value = pick_value(ctx.op, mcv, hist, two_sided)
            if value is None:
                return None
            values.append(value)
        return values

    # -- costs ------------------------------------------------------------------------------------

    def cost(self, prepared: Prepared, config: frozenset[Candidate]) -> PlanResult:
        """Cost of the statement with exactly ``config`` (restricted to its tables) as hypothetical indexes."""
        relevant = frozenset(
            c for c in config if c.table_oid in prepared.tables and (c not in self._failed or c in self._sampled)
        )
        key = (prepared.name, relevant)
        cached = self._cache.get(key)
        if cached is not None:
            self.cache_hits += 1
            return cached
        sampled = frozenset(c for c in relevant if c in self._sampled)
        if sampled:
            result = self._cost_with_samples(prepared, relevant, sampled)
            self._cache[key] = result
            return result
        expression = frozenset(c for c in relevant if c.method == "btree" and any(is_expression(k) for k in c.keys))
        if expression and prepared.rewritten.analysis.expressions:
            result = self._cost_by_proxy(prepared, relevant, expression)
            self._cache[key] = result
            return result
        result = self._plan_with(prepared, relevant)
        self._cache[key] = result
        return result

    def _plan_with(self, prepared: Prepared, relevant: frozenset[Candidate]) -> PlanResult:
        """EXPLAIN the statement with exactly ``relevant`` as HypoPG indexes on its tables."""
        for cand in relevant:
            self.create(cand)
        for cand in [c for c in self._hypo if c.table_oid in prepared.tables and c not in relevant]:
            self.conn.execute(sql.SQL("SELECT {}.hypopg_drop_index(%s)").format(self._hypopg), (self._hypo.pop(cand),))
        relevant = frozenset(c for c in relevant if c in self._hypo)
        cached = self._cache.get((prepared.name, relevant))
        if cached is not None:
            return cached
        result = self._explain(prepared)
        self._cache[(prepared.name, relevant)] = result
        return result

    def _cost_with_samples(
        self, prepared: Prepared, relevant: frozenset[Candidate], sampled: frozenset[Candidate]
    ) -> PlanResult:
        """Combine sample-priced candidates (:mod:`asymm.advisor.sample`) with hypothetical ones.

        cost = cost(statement, the hypothetical rest) × min over the sample-priced candidates of
        their factor for this statement (copy cost with the real index / without, at most 1; 1 for
        a statement that was not planned on the copy).  The minimum, not the product: a statement
        answered by one GIN index rarely gains as much again from a second one (a BitmapAnd of two
        such scans saves far less than both ratios multiplied), so the minimum never promises
        more than the best single index did on the copy.  Applying the factor to the cost with the
        hypothetical rest keeps one model for both kinds: the factor was measured against the
        table's own indexes, so when a hypothetical btree already makes the statement cheap the
        product may overstate what the GIN still adds, but never by more than what the statement
        still costs with the btree (the GIN's marginal gain is a fraction of that residual cost).
        """
        base = self.cost(prepared, relevant - sampled)
        if base.fragile:
            # The planner, which estimates the walk as cheap, takes it over the GIN index: the
            # factor measured on the copy without the walk's index is not what would run.  (On
            # the event store, (occurred_at) next to the jsonb GIN turned `payload @> $1 ORDER BY
            # occurred_at DESC LIMIT 50` into a walk 1.7x slower than no index at all.)
            return base
        best: Candidate | None = None
        factor = 1.0
        for cand in sorted(sampled, key=lambda c: c.name):
            value = self._sampled[cand].factors.get(prepared.name, 1.0)
            if value < factor:
                best, factor = cand, value
        used = base.used
        if best is not None and prepared.name in self._sampled[best].used:
            used = used | {best}
        return PlanResult(base.cost * factor, used)

    def price_by_sample(
        self, prepared: list[Prepared], queryids: list[int], weights: list[float], candidates: list[Candidate]
    ) -> None:
        """Price the candidates HypoPG refuses on a sample copy of their table (see :mod:`asymm.advisor.sample`).

        At most :data:`sample.MAX_SAMPLED` candidates, those whose statements run most often
        first: each costs one real index build on a copy of at most ``SAMPLE_ROWS`` rows; one copy
        per table serves all of that table's candidates.
        """
        wanted: list[tuple[float, Candidate, list[Prepared]]] = []
        for cand in candidates:
            if cand.method != "gin" or self.create(cand) is not None:
                continue  # HypoPG simulates it (only GIN is built on a copy: see sample.py)
            users = [
                (p, w)
                for p, q, w in zip(prepared, queryids, weights, strict=True)
                if q in cand.queryids and cand.table_oid in p.tables
            ]
            if users:
                wanted.append((sum(w for _, w in users), cand, [p for p, _ in users]))
        wanted.sort(key=lambda item: (-item[0], item[1].name))
        by_table: dict[int, dict[Candidate, list[Prepared]]] = {}
        for rank, (_, cand, asking) in enumerate(wanted):
            if rank >= sample_mod.MAX_SAMPLED:
                self._unpriced[cand] = (
                    f"not priced on a sample copy: at most {sample_mod.MAX_SAMPLED} such candidates per run, "
                    "those asked for more often first"
                )
                continue
            by_table.setdefault(cand.table_oid, {})[cand] = asking
        for oid, group in by_table.items():
            table = _table_of(oid, [p for ps in group.values() for p in ps])
            if table is None:
                continue
            priced, run = sample_mod.price_table(self.conn, self.catalog, table, group)
            if run is not None:
                self.sample_runs.append(run)
            for cand, outcome in priced.items():
                if isinstance(outcome, str):
                    self._unpriced[cand] = outcome
                else:
                    self._sampled[cand] = outcome

    def _proxy(self, prepared: Prepared, expressions: frozenset[tuple[int, str]]) -> Prepared | None:
        """The statement with ``expressions`` (and no other) replaced by their columns, planned once."""
        if expressions not in prepared.proxies:
            analysis = prepared.rewritten.analysis
            locations = {loc for e in expressions for loc in analysis.expressions[e].locations}
            text = expression_proxy(prepared.rewritten.tree, locations)
            proxy: Prepared | None = None
            if text is not None:
                try:
                    proxy = self.prepare(rewrite(text, self.catalog), author=prepared.author)
                except (PlanError, Unplannable):
                    proxy = None
            prepared.proxies[expressions] = proxy
        return prepared.proxies[expressions]

    def _cost_by_proxy(
        self, prepared: Prepared, relevant: frozenset[Candidate], expression: frozenset[Candidate]
    ) -> PlanResult:
        """Price expression indexes through the statement with each expression replaced by its column.

        HypoPG cannot give a hypothetical expression index statistics, so the planner prices
        ``lower(email) = $1`` at a default 0.5 % of the rows and an index on it looks useless.
        On the proxy statement (``email = $1``, index on ``email``) the column's statistics
        apply; functions such as lower() keep about as many distinct values as their column.
        cost = cost(original, other indexes) × cost(proxy, mapped) / cost(proxy, other indexes).
        The other indexes on the proxy exclude those with a key on a column the proxy put in
        place of an expression: in the proxy, (email) would answer what stood for
        ``lower(email) = $1`` and make (lower(email)) look useless next to it, while in the
        statement it serves none of it.

        One proxy per set of expressions the candidates index: ``lower(email)`` and ``md5(email)``
        in one statement are priced each through a proxy that replaces only that one (a shared
        proxy would make an index on either serve both).  With several such sets in ``relevant``
        the best one prices the statement (they are alternatives; their combination is not priced).
        """
        analysis = prepared.rewritten.analysis
        plain = relevant - expression
        self._by_proxy.update(expression)
        base = self.cost(prepared, plain)
        groups: dict[frozenset[tuple[int, str]], set[Candidate]] = {}
        for cand in expression:
            keys = [k.removesuffix(" DESC") for k in cand.keys]
            exprs = frozenset((cand.table_oid, k) for k in keys if is_expression(k))
            if all(e in analysis.expressions for e in exprs):  # else it serves no expression here
                groups.setdefault(exprs, set()).add(cand)
        best_ratio, used = 1.0, base.used
        for exprs, cands in groups.items():
            proxy = self._proxy(prepared, exprs)
            if proxy is None:
                # the column cannot stand in for the expression (meta->>'k' = 'x': 'x' is no jsonb):
                # HypoPG prices the expression index itself, with the planner's default selectivity
                direct = self._plan_with(prepared, plain | frozenset(cands))
                if base.cost > 0 and direct.cost / base.cost < best_ratio:
                    best_ratio, used = direct.cost / base.cost, direct.used
                continue
            columns = frozenset((oid, quote_ident(analysis.expressions[(oid, k)].column)) for oid, k in exprs)
            apart = frozenset(c for c in plain if not on_columns(c, columns))
            mapped = {column_proxy(c, analysis): c for c in cands}
            proxy_plain = self.cost(proxy, apart)
            proxy_with = self.cost(proxy, apart | frozenset(mapped))
            ratio = proxy_with.cost / proxy_plain.cost if proxy_plain.cost > 0 else 1.0
            if ratio < best_ratio:
                best_ratio = ratio
                used = frozenset(mapped.get(c, c) for c in proxy_with.used) | (base.used - apart)
        return PlanResult(base.cost * best_ratio, used)

    def create(self, cand: Candidate) -> int | None:
        """Create (once) the hypothetical index; None when HypoPG refuses it (then it is no candidate)."""
        if cand in self._hypo:
            return self._hypo[cand]
        if cand in self._failed:
            return None
        try:
            row = self.conn.execute(
                sql.SQL("SELECT indexrelid FROM {}.hypopg_create_index(%s)").format(self._hypopg),
                (cand.hypothetical_sql(),),
            ).fetchone()
        except psycopg.Error as exc:
            self._failed[cand] = (exc.diag.message_primary or str(exc)).strip()
            return None
        assert row is not None
        oid = int(str(row[0]))
        self._hypo[cand] = oid
        if cand not in self._sizes:
            size = self.conn.execute(
                sql.SQL("SELECT {}.hypopg_relation_size(%s)").format(self._hypopg), (oid,)
            ).fetchone()
            hypothetical = int(str(size[0])) if size else 0
            table = self.catalog.loaded(cand.table_oid)
            self._sizes[cand] = sizing.btree_size(hypothetical, cand, table, self._distinct_keys(cand, table))
        return oid

    def _distinct_keys(self, cand: Candidate, table: Table | None) -> float | None:
        """Key combinations counted on a sample (sizing.sampled_distinct), once per table and key
        set (the order of the keys does not change the count); None when not needed or not known."""
        if table is None or not sizing.needs_sample(cand, table):
            return None
        key = (cand.table_oid, frozenset(cand.keys))
        if key not in self._combinations:
            self._combinations[key] = sizing.sampled_distinct(self.conn, cand, table)
        return self._combinations[key]

    def size(self, cand: Candidate) -> int | None:
        """The btree size modelled from the statistics (:mod:`sizing`; HypoPG's estimate when they
        do not say), or for a candidate priced on a sample copy its size there scaled to the rows."""
        if cand in self._sampled:
            return self._sampled[cand].size_bytes
        if cand not in self._sizes and self.create(cand) is None:
            return None
        return self._sizes.get(cand)

    def failure(self, cand: Candidate) -> str | None:
        """Why HypoPG refused the candidate (None: it simulates it)."""
        return self._failed.get(cand)

    def unpriced(self, cand: Candidate) -> str | None:
        """Why the candidate has no price at all (None: HypoPG or a sample copy priced it)."""
        if cand in self._sampled or cand not in self._failed:
            return None
        return self._unpriced.get(cand, "not priced on a sample copy: no statement that asks for it was planned")

    def sample_price(self, cand: Candidate) -> sample_mod.SamplePrice | None:
        return self._sampled.get(cand)

    def estimate(self, cand: Candidate) -> str:
        """How the candidate's benefit was obtained (the advise JSON's ``estimate``)."""
        if cand in self._sampled:
            return self._sampled[cand].estimate
        if cand in self._by_proxy:
            return "hypopg via column proxy (expression index)"
        return "hypopg"

    def _explain(self, prepared: Prepared) -> PlanResult:
        values = prepared.values if prepared.mode == "custom" else None
        self.calls += 1
        try:
            row = self.conn.execute(
                EXPLAIN_AS, (prepared.author, prepared.rewritten.text, prepared.param_types, values)
            ).fetchone()
        except psycopg.Error as exc:
            raise PlanError(f"cannot EXPLAIN: {(exc.diag.message_primary or str(exc)).strip()}") from None
        assert row is not None
        doc = row[0] if not isinstance(row[0], str) else json.loads(row[0])
        plan = doc["plan"][0]["Plan"]
        by_oid = {oid: cand for cand, oid in self._hypo.items()}
        used = frozenset(
            by_oid[int(m.group(1))]
            for name in _index_names(plan)
            if (m := HYPO_NAME.match(name)) and int(m.group(1)) in by_oid
        )
        cost = float(plan["Total Cost"])
        walk = _fragile(plan, under_limit=False)
        if walk is not None:
            cost = max(cost * FRAGILE_FACTOR, walk)
        return PlanResult(cost, used, fragile=walk is not None)


class PlanError(Exception):
    """The statement cannot be planned (the message is the skip reason)."""


def pick_value(op: str, mcv: list[str], hist: list[str], two_sided: bool = False) -> str | None:
    """A representative value for a parameter compared with ``op`` (see the module docstring).

    ``two_sided``: the column has both a lower and an upper bound (``BETWEEN``, ``>= AND <``), so
    the bounds are neighbouring histogram bounds around the median (about one bucket of rows).
    """
    if hist:
        n = len(hist) - 1
        if two_sided and op in RANGE_SIDE and n >= 1:
            return hist[n // 2] if RANGE_SIDE[op] == "lo" else hist[n // 2 + 1]
        if op in ("=", "like"):
            return hist[n // 2] if op == "=" else None
        if op in (">", ">="):
            return hist[max(0, n - max(1, n // 10))]
        if op in ("<", "<="):
            return hist[min(n, max(1, n // 10))]
        return None
    if mcv and op == "=":
        return mcv[len(mcv) // 2]
    return None


def column_proxy(cand: Candidate, analysis: Analysis) -> Candidate:
    """The candidate with expression keys replaced by their column (for :meth:`WhatIf._cost_by_proxy`)."""
    keys = []
    for key in cand.keys:
        plain, desc = (key[:-5], " DESC") if key.endswith(" DESC") else (key, "")
        expression = analysis.expressions.get((cand.table_oid, plain))
        keys.append(quote_ident(expression.column) + desc if expression is not None else key)
    return Candidate(cand.table_oid, cand.table, tuple(keys), cand.method, cand.opclass, cand.queryids, cand.include)


def expression_proxy(tree: Any, locations: set[tuple[str, int]]) -> str | None:
    """The statement's SQL with the expressions at ``locations`` ((node type, location), as
    analysis recorded them) replaced by the column they are computed from."""
    import copy

    from pglast import ast as typed_ast
    from pglast.stream import RawStream

    pg_ast: Any = typed_ast
    root = copy.deepcopy(tree)
    changed = False

    def column_in(node: Any) -> Any:
        if isinstance(node, pg_ast.ColumnRef):
            return node
        children = (
            node
            if isinstance(node, tuple | list)
            else [getattr(node, slot, None) for slot in getattr(node, "__slots__", ())]
        )
        for child in children:
            if isinstance(child, pg_ast.Node | tuple | list):
                found = column_in(child)
                if found is not None:
                    return found
        return None

    def strip(node: Any) -> Any:
        nonlocal changed
        if isinstance(node, pg_ast.Node) and (type(node).__name__, getattr(node, "location", None)) in locations:
            column = column_in(node)
            if column is not None:
                changed = True
                return column
        if isinstance(node, tuple | list):
            return type(node)(strip(child) for child in node)
        if isinstance(node, pg_ast.Node):
            for slot in node.__slots__:
                value = getattr(node, slot, None)
                if isinstance(value, pg_ast.Node | tuple | list):
                    setattr(node, slot, strip(value))
        return node

    root = strip(root)
    return str(RawStream()(root)) if changed else None


def _fragile(plan: dict[str, Any], under_limit: bool) -> float | None:
    """The total cost of a walk under a LIMIT along a hypothetical index in order, filtering rows out.

    The planner prices such a plan assuming the matching rows are spread evenly along the index,
    so the LIMIT stops after a small fraction of the walk; when they are not (customer 42's orders
    are all old, the rare events of ``payload @> $1`` are at the far end) it reads far more than
    estimated, up to the whole index with the filter on every row.  An index whose keys answer
    the filter (equality first, then the sort) does not depend on that assumption, so the fragile
    plan is charged the larger of :data:`FRAGILE_FACTOR` x its cost and that whole walk (the
    walk node's Total Cost, which the caller takes), the case a DBA fears: a factor alone is too
    small when the LIMIT's share of the walk is tiny.  None: no fragile walk in the plan.
    """
    under_limit = under_limit or plan.get("Node Type") == "Limit"
    if (
        under_limit
        and plan.get("Node Type") in ("Index Scan", "Index Only Scan")
        and "Filter" in plan
        and HYPO_NAME.match(str(plan.get("Index Name", "")))
    ):
        return float(plan["Total Cost"])
    walks = [w for child in plan.get("Plans", ()) if (w := _fragile(child, under_limit)) is not None]
    return max(walks) if walks else None


def _table_of(oid: int, prepared: list[Prepared]) -> Table | None:
    for p in prepared:
        for table in p.rewritten.analysis.tables:
            if table.oid == oid:
                return table
        write = p.rewritten.analysis.write_table
        if write is not None and write.oid == oid:
            return write
    return None


def _index_names(plan: dict[str, Any]) -> list[str]:
    names = [plan["Index Name"]] if "Index Name" in plan else []
    for child in plan.get("Plans", ()):
        names.extend(_index_names(child))
    return names
