"""Index candidates from what statements ask (see :mod:`asymm.advisor.analysis`).

Why so many shapes (keys alone, equality then range or ORDER BY, joins, expressions, GIN, BRIN):
the what-if stage, not a heuristic, decides which pay; candidates an existing index already
serves are dropped here.  The rules: docs/advisor.md.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from asymm.advisor.analysis import Analysis, Pred
from asymm.advisor.catalog import Table, quote_ident

MAX_KEYS = 4

# A BRIN candidate needs |pg_stats.correlation| >= this.  A BRIN (minmax) keeps each block range's
# smallest and largest value; a range predicate reads the ranges whose [min, max] overlap it.  The
# planner (brincostestimate) prices that as the minimal number of ranges divided by |correlation|:
# at 0.9 it expects at most 1.11x the minimal ranges, and below it the estimate loses fast to a
# btree anyway.  Append-order columns (a creation timestamp, a serial id) have 0.99 and more.
# Correlation is an average: a few rows far out of order widen every range they land in while
# barely lowering it, so a high threshold is a precondition, not proof; the what-if cost decides.
BRIN_MIN_CORRELATION = 0.9


@dataclass(frozen=True)
class Candidate:
    table_oid: int
    table: str  # qualified, quoted
    keys: tuple[str, ...]  # key texts, with " DESC" where descending
    method: str = "btree"
    opclass: str | None = None  # for GIN: jsonb_path_ops when only @> is used
    queryids: frozenset[int] = field(default=frozenset(), compare=False, hash=False)

    @property
    def columns(self) -> list[str]:
        return list(self.keys)

    @property
    def name(self) -> str:
        """A deterministic index name within PostgreSQL's 63 bytes."""
        base = self.table.split(".")[-1].strip('"')
        words = re.sub(r"[^a-z0-9]+", "_", "_".join(self.keys).lower()).strip("_")
        digest = hashlib.sha1(f"{self.table}|{self.method}|{self.keys}|{self.opclass}".encode()).hexdigest()[:6]
        return f"asymm_{base}_{words}"[:50] + f"_{digest}"

    def key_sql(self) -> str:
        keys = []
        for key in self.keys:
            text = key
            expression = "(" in key.removesuffix(" DESC")
            if expression:
                # f(col) with f from analysis.EXPRESSION_FUNCTIONS, all in pg_catalog: qualified, so
                # that an overload someone planted in the applier's search_path is never what runs
                body, desc = (key[:-5], " DESC") if key.endswith(" DESC") else (key, "")
                text = f"(pg_catalog.{body}){desc}"
            if self.opclass:
                text = f"{text} {self.opclass}"
            keys.append(text)
        return ", ".join(keys)

    def definition(self, name: str | None = None, concurrently: bool = False) -> str:
        """A complete, runnable CREATE INDEX statement."""
        conc = " CONCURRENTLY" if concurrently else ""
        index = quote_ident(name or self.name)
        return f"CREATE INDEX{conc} {index} ON {self.table} USING {self.method} ({self.key_sql()})"

    def hypothetical_sql(self) -> str:
        return f"CREATE INDEX ON {self.table} USING {self.method} ({self.key_sql()})"


def _plain(key: str) -> str:
    return key.removesuffix(" DESC")


# f(col), as analysis writes an expression key (optionally with " DESC")
EXPRESSION_KEY = re.compile(r"^(\w+)\((.+)\)( DESC)?$")


def expression_columns(analysis: Analysis) -> frozenset[tuple[int, str]]:
    """(table oid, column key) of every ``f(col)`` the statement filters, sorts or groups on.

    Pricing by proxy replaces ``f(col)`` by ``col``; there an index on ``col`` would look as if it
    served the expression predicate, which in the real statement it never does."""
    keys = [(p.table.oid, p.expr) for p in analysis.preds]
    keys += [(s.table.oid, k) for s in analysis.sorts for k, _ in s.keys]
    keys += [(t.oid, k) for t, group in analysis.groups for k in group]
    found = set()
    for oid, key in keys:
        m = EXPRESSION_KEY.match(key)
        if m:
            found.add((oid, m.group(2)))
    return frozenset(found)


def on_columns(cand: Candidate, columns: frozenset[tuple[int, str]]) -> bool:
    """Whether ``cand`` has a plain key on one of ``columns`` (pairs from :func:`expression_columns`)."""
    return any((cand.table_oid, _plain(key)) in columns for key in cand.keys)


def for_statement(analysis: Analysis, queryid: int, trgm_schema: str | None = None) -> list[Candidate]:
    """Every candidate one statement suggests (not yet filtered against existing indexes).

    ``trgm_schema``: the quoted schema of pg_trgm when it is installed; then a ``LIKE``/``ILIKE``
    on a plain text column also suggests a GIN ``gin_trgm_ops`` index (priced on a sample copy)."""
    out: dict[tuple[int, tuple[str, ...], str, str | None], Candidate] = {}

    def add(table: Table, keys: list[str], method: str = "btree", opclass: str | None = None) -> None:
        seen: list[str] = []
        for key in keys:  # no key twice (x = $1 AND x > $2)
            if _plain(key) not in [_plain(k) for k in seen]:
                seen.append(key)
        seen = seen[:MAX_KEYS]
        if not seen:
            return
        if method == "btree" and all(k.endswith(" DESC") for k in seen):
            seen = [_plain(k) for k in seen]  # a btree is scanned backwards just as well
        ident = (table.oid, tuple(seen), method, opclass)
        if ident not in out:
            out[ident] = Candidate(table.oid, table.qualified, tuple(seen), method, opclass, frozenset({queryid}))

    by_table: dict[int, list[Pred]] = {}
    tables: dict[int, Table] = {}
    for pred in analysis.preds:
        by_table.setdefault(pred.table.oid, []).append(pred)
        tables[pred.table.oid] = pred.table
    for sort in analysis.sorts:
        tables[sort.table.oid] = sort.table
    for table, _ in analysis.groups:
        tables[table.oid] = table

    for oid, table in tables.items():
        preds = by_table.get(oid, [])
        eq = _unique(p.expr for p in preds if p.kind == "eq")
        rng = _unique(p.expr for p in preds if p.kind in ("range", "like"))
        joins = _unique(p.expr for p in preds if p.kind == "join")
        for key in eq + rng + joins:
            add(table, [key])
        for key in eq + rng:
            if brin_suits(table, key):
                add(table, [key], "brin")
        if len(eq) > 1:
            add(table, eq)
        for r in rng:
            if eq:
                add(table, [*eq, r])
        for j in joins:
            if eq:
                add(table, [j, *eq])
                add(table, [*eq, j])
        for sort in analysis.sorts:
            if sort.table.oid != oid:
                continue
            sort_keys = [k + (" DESC" if desc else "") for k, desc in sort.keys]
            if eq:
                add(table, [*eq, *sort_keys])
            if sort.limit or not preds:
                add(table, sort_keys)
            if rng and sort.keys and _plain(sort_keys[0]) == rng[0]:
                add(table, [*eq, *sort_keys])
        for group_table, group_keys in analysis.groups:
            if group_table.oid == oid:
                add(table, [*eq, *group_keys])
        gin_ops: dict[str, set[str]] = {}
        for pred in preds:
            if pred.kind == "gin":
                gin_ops.setdefault(pred.expr, set()).add(pred.op)
        for key, ops in gin_ops.items():
            column = table.columns.get(key.strip('"'))
            opclass = "jsonb_path_ops" if column is not None and column.type == "jsonb" and ops == {"@>"} else None
            add(table, [key], "gin", opclass)
        for key in _unique(p.expr for p in preds if p.kind == "like") if trgm_schema else []:
            column = table.columns.get(key.strip('"')) if "(" not in key else None
            if column is not None and column.category == "S":
                add(table, [key], "gin", f"{trgm_schema}.gin_trgm_ops")
    return list(out.values())


def brin_suits(table: Table, key: str) -> bool:
    """Whether ``key`` is a plain column with a default BRIN operator class whose values follow the
    heap order (``|correlation| >= BRIN_MIN_CORRELATION``, from ANALYZE)."""
    column = table.columns.get(key.strip('"')) if "(" not in key else None
    return (
        column is not None
        and column.brin
        and column.correlation is not None
        and abs(column.correlation) >= BRIN_MIN_CORRELATION
    )


def _unique(items: object) -> list[str]:
    seen: list[str] = []
    for item in items:  # type: ignore[attr-defined]
        if item not in seen:
            seen.append(item)
    return seen


def merge(per_statement: list[list[Candidate]]) -> list[Candidate]:
    """One candidate per distinct index, carrying every queryid that suggested it."""
    merged: dict[Candidate, set[int]] = {}
    for cands in per_statement:
        for cand in cands:
            merged.setdefault(cand, set()).update(cand.queryids)
    return [Candidate(c.table_oid, c.table, c.keys, c.method, c.opclass, frozenset(q)) for c, q in merged.items()]


def covered_by_existing(cand: Candidate, table: Table) -> str | None:
    """The name of an existing valid index that makes ``cand`` redundant, if any."""
    want = [_normalize(k) for k in cand.keys]
    for index in table.indexes:
        if not index.valid or index.partial or index.method != cand.method:
            continue
        have = [_normalize(k) for k in index.keys]
        if cand.method == "btree":
            flipped = [_flip(k) for k in want]
            if have[: len(want)] == want or have[: len(want)] == flipped:
                return index.name
        elif cand.method == "brin":
            if set(want) <= set(have):
                return index.name
        elif have == want:
            return index.name
    return None


def _normalize(key: str) -> str:
    text = key.replace('"', "").replace(" ", "").lower()
    text = re.sub(r"::[a-z ]+", "", text)
    text = text.replace("nullslast", "").replace("ascnullsfirst", "").replace("jsonb_path_ops", "")
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    return text


def _flip(key: str) -> str:
    return key[:-4] if key.endswith("desc") else key + "desc"
