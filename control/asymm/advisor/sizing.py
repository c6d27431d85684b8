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
Only what the statistics say is used: rows from reltuples, widths from avg_width, repeats from
n_distinct (several keys: the product of their counts, capped at the rows; an overestimate of
distinct values, so never a size too small for that reason).
"""

from __future__ import annotations

import math

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
    return table.columns.get(name[1:-1].replace('""', '"') if name.startswith('"') else name)


def modelled_size(cand: Candidate, table: Table) -> int | None:
    """The built size of a btree candidate from the statistics alone, or None when they do not
    say (an expression key, a column never analyzed, not a btree)."""
    if cand.method != "btree" or table.reltuples < 1:
        return None
    keys = [_column(table, k) for k in cand.keys]
    included = [_column(table, c) for c in cand.include]
    if any(c is None or c.avg_width is None or c.n_distinct is None for c in [*keys, *included]):
        return None
    rows = table.reltuples
    width = sum(c.avg_width or 0 for c in [*keys, *included] if c is not None)
    tuple_bytes = _align(TUPLE_HEADER + width) + LINE_POINTER
    per_row = tuple_bytes
    if not cand.include and all(c is not None and c.dedup for c in keys):
        distinct = 1.0
        for c in keys:
            assert c is not None and c.n_distinct is not None
            distinct *= max(c.n_distinct if c.n_distinct > 0 else -c.n_distinct * rows, 1.0)
        repeats = rows / min(distinct, rows)
        per_posting = max(1.0, (MAX_POSTING_BYTES - TUPLE_HEADER - _align(width)) // HEAP_POINTER)
        postings = math.ceil(repeats / per_posting)
        per_row = min(tuple_bytes, (postings * tuple_bytes + repeats * HEAP_POINTER) / repeats)
    leaves = math.ceil(rows * per_row / ((PAGE - PAGE_OVERHEAD) * LEAF_FILL))
    return int((1 + leaves + math.ceil(leaves * INTERNAL_FRACTION)) * PAGE)


def btree_size(hypothetical_bytes: int, cand: Candidate, table: Table | None) -> int:
    """The modelled size when the statistics allow it (see the module's docstring), else HypoPG's."""
    if table is None:
        return hypothetical_bytes
    modelled = modelled_size(cand, table)
    return hypothetical_bytes if modelled is None else modelled
