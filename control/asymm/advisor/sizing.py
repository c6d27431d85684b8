"""The size a btree candidate will really have, from the column statistics (HypoPG's otherwise).

Why: HypoPG 1.3.1's btree estimate is about twice the built size even for a unique key (two int
columns of 300k rows: 12.5 MB estimated, 6.8 MB built), and it counts one tuple per row.  Since
PostgreSQL 13 a btree stores a key that repeats once, followed by the list of its row pointers
(deduplication, done by CREATE INDEX itself), so an index on a column with few distinct values is
a third or less of a tuple-per-row size (a ``date`` column of a 1.2M-row table: 29.9 MB
estimated, about 9 MB built).  The advisor weighs gain against storage, so a size three times too
big turns a DBA's narrow index into a dear one and favours wide ones (which cannot deduplicate
anyway: INCLUDE columns turn it off).

The model follows nbtree's layout (src/backend/access/nbtree/README, "Deduplication"): a plain
tuple is an 8-byte header and the key, MAXALIGNed, and a 4-byte line pointer; a posting-list tuple
holds one key and up to about a sixth of a page of 6-byte heap pointers; leaves are filled to 90 %.
Rows come from reltuples, widths from avg_width, repeats from n_distinct.  Several keys: the
product of their counts, capped at the rows, assumes the columns independent; correlated columns
(a city and its state, a day and its month) have far fewer combinations, and a composite on them
deduplicates as well as one column does (3x smaller than the product says, seen on generated
tables: test_advisor_sizing_generated.py).  So for several keys the combinations are also
counted on a sample of the table (:func:`sampled_distinct`, with the Duj1 estimator ANALYZE uses
for one column) and the smaller count wins.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg
from psycopg import sql

from asymm.advisor.candidates import Candidate, is_expression
from asymm.advisor.catalog import Column, Table

MAXALIGN = 8
PAGE = 8192
PAGE_OVERHEAD = 24 + 16  # page header, btree special space
LEAF_FILL = 0.90  # CREATE INDEX fills leaf pages to the default fillfactor
TUPLE_HEADER = 8  # IndexTupleData: heap pointer and flags
LINE_POINTER = 4
HEAP_POINTER = 6
# nbtdedup.c caps a posting list at half of BTMaxItemSize (2704 bytes on 8 kB pages)
MAX_POSTING_BYTES = 1352
INTERNAL_FRACTION = 1 / 256  # internal pages per leaf page: a downlink per leaf, hundreds per page


def _align(n: float) -> float:
    return math.ceil(n / MAXALIGN) * MAXALIGN


def _column(table: Table, key: str) -> Column | None:
    name = key.removesuffix(" DESC")
    if is_expression(name):
        return None
    return table.columns.get(_unquoted(name))


SAMPLE_ROWS = 30_000  # about ANALYZE's sample for the default statistics target (300 x 100)


def _unquoted(key: str) -> str:
    name = key.removesuffix(" DESC")
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def needs_sample(cand: Candidate, table: Table) -> bool:
    """Whether the key combinations are worth counting: a btree on several plain columns that
    may deduplicate.  Always then, not only where the independent product of n_distinct says the
    keys repeat: correlated columns (both functions of one value) repeat far more than the product
    says, which the hypothesis generator found (1,000 combinations where the product said 50,000)."""
    if cand.method != "btree" or cand.include or len(cand.keys) < 2 or table.reltuples < 1:
        return False
    columns = [_column(table, k) for k in cand.keys]
    # GROUP BY runs the types' equality and hash functions: only pg_catalog's, never a type some
    # role defined (its code would run with the advisor's rights)
    return not any(c is None or c.n_distinct is None or not c.dedup or not c.builtin for c in columns)


def _product(columns: list[Column | None], rows: float) -> float:
    distinct = 1.0
    for c in columns:
        assert c is not None and c.n_distinct is not None
        distinct *= max(c.n_distinct if c.n_distinct > 0 else -c.n_distinct * rows, 1.0)
    return distinct


def sampled_distinct(conn: psycopg.Connection[Any], cand: Candidate, table: Table) -> float | None:
    """The number of distinct key combinations, estimated from a sample of about ``SAMPLE_ROWS``
    rows with Duj1 (Haas and Stokes; what ANALYZE uses for one column): n·d / (n − f1 + f1·n/N),
    d distinct in the sample, f1 of them seen once.  None when the table cannot be read (no
    privilege, a lock timeout, TABLESAMPLE refused on a view): the caller keeps the product.  The
    text is the advisor's own, with quoted identifiers, over pg_catalog types only
    (:func:`needs_sample`); it reads rows, never returns them.  Row-level security: the advisor's
    connections refuse it (asymm.db.refuse_row_security), so a policy's code never runs here, the
    read fails instead."""
    keys = [sql.Identifier(_unquoted(k)) for k in cand.keys]
    percent = min(100.0, 100.0 * SAMPLE_ROWS / max(table.reltuples, 1.0))
    query = sql.SQL(
        "SELECT coalesce(sum(c), 0), count(*), count(*) FILTER (WHERE c = 1)"
        " FROM (SELECT count(*) AS c FROM {} TABLESAMPLE SYSTEM (%s) REPEATABLE (0) GROUP BY {}) g"
    ).format(sql.SQL(table.qualified), sql.SQL(", ").join(keys))
    try:
        with conn.transaction():  # a savepoint inside the advisor's transaction: an error stays here
            row = conn.execute(query, (percent,)).fetchone()
    except psycopg.Error:
        return None
    if row is None or not row[0]:
        return None
    n, d, f1 = float(row[0]), float(row[1]), float(row[2])
    total = max(table.reltuples, n)
    denominator = n - f1 + f1 * n / total
    estimate = n * d / denominator if denominator > 0 else total
    return min(max(estimate, d), total)


def _data_bytes(columns: list[Column]) -> float:
    """The average data bytes of an index tuple: the attributes laid out in order, a fixed-width
    one padded to its alignment (an int4 then an int8 take 16 bytes, not 12), a short varlena
    unaligned, and a NULL taking nothing (weighted by pg_stats.null_frac)."""
    offset = 0.0
    for c in columns:
        width = float(c.avg_width or 0)
        start = math.ceil(offset / c.align) * c.align if c.length > 0 else offset
        offset += (1.0 - c.null_frac) * (start - offset + width)
    return offset


def _header(columns: list[Column]) -> float:
    """The tuple header, plus its NULL bitmap (MAXALIGNed with it) in the rows where a key is NULL."""
    no_null = 1.0
    for c in columns:
        no_null *= 1.0 - c.null_frac
    return TUPLE_HEADER + (1.0 - no_null) * MAXALIGN


def modelled_size(cand: Candidate, table: Table, distinct_keys: float | None = None) -> int | None:
    """The built size of a btree candidate from the statistics, or None when they do not say (an
    expression key, a column never analyzed, not a btree).  ``distinct_keys``: the combinations
    counted on a sample (:func:`sampled_distinct`), used when below the independent product."""
    if cand.method != "btree" or table.reltuples < 1:
        return None
    keys = [_column(table, k) for k in cand.keys]
    included = [_column(table, c) for c in cand.include]
    if any(c is None or c.avg_width is None or c.n_distinct is None for c in [*keys, *included]):
        return None
    rows = table.reltuples
    width = _data_bytes([c for c in [*keys, *included] if c is not None])
    tuple_bytes = _align(_header([c for c in [*keys, *included] if c is not None]) + width) + LINE_POINTER
    per_row = tuple_bytes
    if not cand.include and all(c is not None and c.dedup for c in keys):
        distinct = _product(keys, rows)
        if distinct_keys is not None:
            distinct = min(distinct, max(distinct_keys, 1.0))
        repeats = rows / min(distinct, rows)
        per_posting = max(1.0, (MAX_POSTING_BYTES - TUPLE_HEADER - _align(width)) // HEAP_POINTER)
        postings = math.ceil(repeats / per_posting)
        per_row = min(tuple_bytes, (postings * tuple_bytes + repeats * HEAP_POINTER) / repeats)
    leaves = math.ceil(rows * per_row / ((PAGE - PAGE_OVERHEAD) * LEAF_FILL))
    return int((1 + leaves + math.ceil(leaves * INTERNAL_FRACTION)) * PAGE)


def btree_size(
    hypothetical_bytes: int, cand: Candidate, table: Table | None, distinct_keys: float | None = None
) -> int:
    """The modelled size when the statistics allow it (see the module's docstring), else HypoPG's."""
    if table is None:
        return hypothetical_bytes
    modelled = modelled_size(cand, table, distinct_keys)
    return hypothetical_bytes if modelled is None else modelled
