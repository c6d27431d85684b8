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
# Bounds of the candidates built across statements (see across_statements), which keep the cost of
# pricing them (one what-if call per candidate and statement it may serve, and lazily again per
# round) small next to the per-statement ones: per table, the MAX_LEADS equality columns most
# statements share each lead a family of at most PER_LEAD candidates, with MAX_TAILS range or sort
# column and at most MAX_INCLUDE INCLUDE columns.  At most 8 per table, whatever the number of
# statements: bench/advisor.py's 1,000 distinct statements on 5 tables get at most 40 more.
MAX_LEADS = 2
MAX_TAILS = 1
MAX_INCLUDE = 4
PER_LEAD = 4

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
    keys: tuple[str, ...]  # key texts, with " DESC" where descending; an expression is parenthesised
    method: str = "btree"
    opclass: str | None = None  # for GIN: jsonb_path_ops when only @> is used
    queryids: frozenset[int] = field(default=frozenset(), compare=False, hash=False)
    include: tuple[str, ...] = ()  # INCLUDE (...) columns (btree only): for index-only scans

    @property
    def columns(self) -> list[str]:
        """The keys as a DBA reads them (``lower(email)``, not ``(pg_catalog.lower(email))``)."""
        return [display(key) for key in self.keys]

    @property
    def name(self) -> str:
        """A deterministic index name within PostgreSQL's 63 bytes."""
        base = self.table.split(".")[-1].strip('"')
        words = re.sub(r"[^a-z0-9]+", "_", "_".join(self.columns).lower()).strip("_")
        ident = f"{self.table}|{self.method}|{self.keys}|{self.opclass}"
        if self.include:
            ident += f"|{self.include}"
        digest = hashlib.sha1(ident.encode()).hexdigest()[:6]
        return f"asymm_{base}_{words}"[:50] + f"_{digest}"

    def key_sql(self) -> str:
        """The key list.  Expression keys are written by analysis.render, schema-qualified already:
        an overload someone planted in the applier's search_path is never what runs."""
        return ", ".join(f"{key} {self.opclass}" if self.opclass else key for key in self.keys)

    def body(self) -> str:
        """Everything after ``USING``: method, keys and INCLUDE columns."""
        include = f" INCLUDE ({', '.join(self.include)})" if self.include else ""
        return f"{self.method} ({self.key_sql()}){include}"

    def definition(self, name: str | None = None, concurrently: bool = False) -> str:
        """A complete, runnable CREATE INDEX statement."""
        conc = " CONCURRENTLY" if concurrently else ""
        index = quote_ident(name or self.name)
        return f"CREATE INDEX{conc} {index} ON {self.table} USING {self.body()}"

    def hypothetical_sql(self) -> str:
        return f"CREATE INDEX ON {self.table} USING {self.body()}"


def _plain(key: str) -> str:
    return key.removesuffix(" DESC")


def is_expression(key: str) -> bool:
    """Whether a key text is an expression: analysis writes those parenthesised, and a column name
    is written bare or double-quoted, so it never starts with a parenthesis."""
    return key.startswith("(")


QUALIFIED_OPERATOR = re.compile(r"OPERATOR\(pg_catalog\.([^)]+)\)")


def display(key: str) -> str:
    """A key as a DBA would write it: unqualified, without the outer parentheses."""
    body, desc = (key[:-5], " DESC") if key.endswith(" DESC") else (key, "")
    if is_expression(body):
        body = QUALIFIED_OPERATOR.sub(r"\1", body[1:-1]).replace("pg_catalog.", "")
    return body + desc


def expression_columns(analysis: Analysis) -> frozenset[tuple[int, str]]:
    """(table oid, column key) of every expression the statement filters, sorts or groups on.

    Pricing by proxy replaces the expression by its column; there an index on the column would
    look as if it served the expression predicate, which in the real statement it never does."""
    return frozenset((oid, quote_ident(e.column)) for (oid, _), e in analysis.expressions.items())


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
        if not seen or not _one_expression_per_column(analysis, table.oid, seen):
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
            if len(rng) > 1:
                # several ranges: one bounds the scan, the others are checked in the index before
                # any heap fetch (Q6's date window with its discount and quantity ranges)
                add(table, [*eq, r, *(other for other in rng if other != r)])
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


@dataclass
class _Use:
    """What one statement asks of one table, for :func:`across_statements`."""

    queryid: int
    weight: float
    eq: list[str]
    tails: list[str]  # its range key, or its ORDER BY's first key (with " DESC"), in that order
    columns: set[str] | None  # the columns it reads; None: whole rows, or a write (no index-only scan)


def across_statements(statements: list[tuple[Analysis, int, float]]) -> list[Candidate]:
    """Wider candidates that serve several statements of a table at once, as a DBA would build them.

    ``statements``: (analysis, queryid, calls).  Per table: the equality columns that lead most
    statements (``MAX_LEADS``), each followed by the other equality columns of the statements it
    leads (all of them, by how many statements share each, or only those every one of them has),
    then one range or ORDER BY column of those statements (the ``MAX_TAILS`` with the most calls),
    then, for index-only scans, the other columns the statements read (the hottest one's, then all
    of theirs) as ``INCLUDE``.  The what-if stage decides which pay; the selection's final pass
    keeps the wide index rather than narrow ones it serves about as well.
    """
    uses: dict[int, tuple[Table, list[_Use]]] = {}
    for analysis, queryid, weight in statements:
        tables = {p.table.oid: p.table for p in analysis.preds} | {s.table.oid: s.table for s in analysis.sorts}
        for oid, table in tables.items():
            preds = [p for p in analysis.preds if p.table.oid == oid]
            eq = _unique(p.expr for p in preds if p.kind == "eq")
            tails = _unique(p.expr for p in preds if p.kind == "range")
            for sort in analysis.sorts:
                if sort.table.oid == oid and sort.keys and (sort.limit or eq):
                    tails.append(sort.keys[0][0] + (" DESC" if sort.keys[0][1] else ""))
            readable = analysis.kind == "select" and oid not in analysis.whole_row
            columns = set(analysis.columns.get(oid, set())) if readable else None
            uses.setdefault(oid, (table, []))[1].append(_Use(queryid, weight, eq, tails, columns))
    out: dict[Candidate, None] = {}
    for table, group_all in uses.values():
        made: list[Candidate] = []
        share: dict[str, float] = {}
        for use in group_all:
            for key in use.eq:
                share[key] = share.get(key, 0.0) + 1.0 + use.weight * 1e-9  # statements first, calls break ties
        for lead in sorted(share, key=lambda k: -share[k])[:MAX_LEADS]:
            group = [u for u in group_all if lead in u.eq]
            counts = {k: sum(1 for u in group if k in u.eq) for u in group for k in u.eq}
            others = sorted((k for k in counts if k != lead), key=lambda k: -counts[k])
            union = [lead, *others][: MAX_KEYS - 1]
            common = [lead, *[k for k in others if counts[k] == len(group)]][: MAX_KEYS - 1]
            tail_calls: dict[str, float] = {}
            tail_text: dict[str, tuple[float, str]] = {}  # per column, the direction with the most calls
            for use in group:
                for tail in use.tails[:1]:
                    column = _plain(tail)
                    tail_calls[column] = tail_calls.get(column, 0.0) + use.weight
                    if use.weight > tail_text.get(column, (-1.0, ""))[0]:
                        tail_text[column] = (use.weight, tail)
            ranked = sorted(tail_calls, key=lambda c: -tail_calls[c])[:MAX_TAILS]
            lasts: list[str | None] = [tail_text[c][1] for c in ranked] or [None]
            queryids = frozenset(u.queryid for u in group)
            readers = sorted((u for u in group if u.columns is not None), key=lambda u: -u.weight)
            family: list[Candidate] = []
            for prefix in _unique_lists([union, common]):
                for last in lasts:
                    keys = [*prefix, last] if last is not None and _plain(last) not in prefix else list(prefix)
                    if len(group) > 1:
                        _add_across(family, table, keys, [], queryids)
                    plain = {_plain(k).strip('"') for k in keys}
                    # for index-only scans: what all the readers read, else what the hottest one reads
                    for chosen in (readers, readers[:1]):
                        cols = sorted({c for u in chosen for c in u.columns or ()} - plain)
                        if cols and len(cols) <= MAX_INCLUDE and all(c in table.columns for c in cols):
                            _add_across(family, table, keys, [quote_ident(c) for c in cols], queryids)
                            break
            made.extend(c for c in family[:PER_LEAD] if c not in made)
        out.update(dict.fromkeys(made))
    return list(out)


def _add_across(
    made: list[Candidate], table: Table, keys: list[str], include: list[str], queryids: frozenset[int]
) -> None:
    """Add one candidate of :func:`across_statements` to ``made`` (within its bounds)."""
    keys = [k for i, k in enumerate(keys) if _plain(k) not in [_plain(x) for x in keys[:i]]][:MAX_KEYS]
    plain_keys = {_plain(k) for k in keys}
    include = [c for c in include if c not in plain_keys]
    if sum(is_expression(k) for k in keys) > 1:
        return
    if all(k.endswith(" DESC") for k in keys):
        keys = [_plain(k) for k in keys]
    cand = Candidate(table.oid, table.qualified, tuple(keys), queryids=queryids, include=tuple(include))
    if cand not in made:
        made.append(cand)


def _unique_lists(items: list[list[str]]) -> list[list[str]]:
    out: list[list[str]] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def brin_suits(table: Table, key: str) -> bool:
    """Whether ``key`` is a plain column with a default BRIN operator class whose values follow the
    heap order (``|correlation| >= BRIN_MIN_CORRELATION``, from ANALYZE)."""
    column = table.columns.get(key.strip('"')) if not is_expression(key) else None
    return (
        column is not None
        and column.brin
        and column.correlation is not None
        and abs(column.correlation) >= BRIN_MIN_CORRELATION
    )


def _one_expression_per_column(analysis: Analysis, oid: int, keys: list[str]) -> bool:
    """Whether no two keys are expressions of one column: the proxy pricing (whatif) puts the column
    in place of each, and could not tell them apart."""
    columns = [analysis.expressions[(oid, _plain(k))].column for k in keys if (oid, _plain(k)) in analysis.expressions]
    return len(columns) == len(set(columns))


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
    return [
        Candidate(c.table_oid, c.table, c.keys, c.method, c.opclass, frozenset(q), c.include) for c, q in merged.items()
    ]


def covered_by_existing(cand: Candidate, table: Table) -> str | None:
    """The name of an existing valid index that makes ``cand`` redundant, if any.

    A btree covers a candidate whose keys are a prefix of its own (in either direction) and whose
    INCLUDE columns it has, as keys or INCLUDE columns: it serves the same scans, index-only ones too."""
    want = [_normalize(k) for k in cand.keys]
    for index in table.indexes:
        if not index.valid or index.partial or index.method != cand.method:
            continue
        have = [_normalize(k) for k in index.keys]
        if cand.method == "btree":
            flipped = [_flip(k) for k in want]
            stored = {_normalize(k).removesuffix("desc") for k in [*index.keys, *index.include]}
            if (have[: len(want)] == want or have[: len(want)] == flipped) and {
                _normalize(c) for c in cand.include
            } <= stored:
                return index.name
        elif cand.method == "brin":
            if set(want) <= set(have):
                return index.name
        elif have == want:
            return index.name
    return None


def _normalize(key: str) -> str:
    """A key text as comparable as pg_get_indexdef's and ours can be made: no qualification, no
    quotes or blanks, no cast of a literal (the server writes ``'day'::text``), lower case."""
    text = QUALIFIED_OPERATOR.sub(r"\1", key).replace("pg_catalog.", "")
    text = re.sub(r"('(?:[^']|'')*')::[a-z ]+(\[\])?", r"\1", text)
    text = text.replace('"', "").replace(" ", "").lower()
    text = text.replace("nullslast", "").replace("ascnullsfirst", "").replace("jsonb_path_ops", "")
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    return text


def _flip(key: str) -> str:
    return key[:-4] if key.endswith("desc") else key + "desc"
