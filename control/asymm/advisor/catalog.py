"""What the advisor needs to know about tables: columns, types, statistics and existing indexes.

Why a cache: one advisor run looks at the same few tables for hundreds of statements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg

from asymm.db import lookup_relation


@dataclass
class Column:
    name: str
    type: str  # format_type() text, usable in a cast
    category: str  # pg_type.typcategory: N numeric, S string, D datetime, A array, U user (jsonb) ...
    # pg_stats.correlation: how closely the heap order follows the column's order (-1..1; None when
    # not analyzed).  Near +-1 a BRIN index on it is selective (see candidates.BRIN_MIN_CORRELATION).
    correlation: float | None = None
    brin: bool = False  # the type has a default BRIN operator class
    # the type is pg_catalog's (no domain, enum or other user type): an expression over it runs
    # only pg_catalog code (a user type's input function or a domain's CHECK would run ours)
    builtin: bool = True
    # pg_stats.n_distinct (negative: a fraction of the rows) and avg_width; None when not analyzed
    n_distinct: float | None = None
    avg_width: int | None = None
    # a btree on it may deduplicate (its default opclass has an equalimage support function and
    # its collation, if any, is deterministic), so its size depends on how many values repeat
    dedup: bool = False
    # pg_type.typlen and typalign in bytes (1, 2, 4, 8), and pg_stats.null_frac: the layout of an
    # index tuple (a fixed-width key starts at its alignment; a NULL takes no data bytes)
    length: int = -1
    align: int = 1
    null_frac: float = 0.0


@dataclass
class Table:
    oid: int
    schema: str
    name: str
    qualified: str  # quoted, schema-qualified name usable in SQL text
    columns: dict[str, Column] = field(default_factory=dict)
    reltuples: float = 0.0
    bytes: int = 0  # pg_table_size: heap, TOAST, free space and visibility maps
    writes: int = 0  # n_tup_ins + non-HOT n_tup_upd + n_tup_del since the statistics reset
    updates: int = 0  # n_tup_upd since the statistics reset
    hot_updates: int = 0  # n_tup_hot_upd: how many of those touched no index
    indexes: list[ExistingIndex] = field(default_factory=list)


@dataclass
class ExistingIndex:
    name: str
    method: str
    keys: list[str]  # pg_get_indexdef(oid, k, true) per key column, as the server spells them
    valid: bool
    partial: bool
    # every column the index reads (keys, expressions, partial-index predicate): an UPDATE that
    # sets one of them cannot be HOT
    columns: frozenset[str] = frozenset()
    include: list[str] = field(default_factory=list)  # INCLUDE (...) columns, after the keys


class Catalog:
    """Lazily loaded, per-run view of the catalog (one connection, read only)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._by_name: dict[tuple[str | None, str], Table | None] = {}
        self._stats: dict[tuple[int, str], tuple[list[str], list[str]]] = {}
        self._expression_errors: dict[tuple[int, str], str | None] = {}

    def table(self, schema: str | None, name: str) -> Table | None:
        """The table ``schema.name`` (search_path when ``schema`` is None), or None (not a plain table)."""
        key = (schema, name)
        if key in self._by_name:
            return self._by_name[key]
        ident: str | None = f"{quote_ident(schema)}.{quote_ident(name)}" if schema else quote_ident(name)
        if schema is None:  # an unqualified name in a statement: the author's search_path finds it
            ident = lookup_relation(self.conn, quote_ident(name))
        row = self.conn.execute(
            "SELECT c.oid::int8, n.nspname, c.relname, format('%%I.%%I', n.nspname, c.relname), c.reltuples,"
            "       coalesce(s.n_tup_ins + s.n_tup_upd - s.n_tup_hot_upd + s.n_tup_del, 0),"
            "       coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_hot_upd, 0), pg_table_size(c.oid)"
            "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            "  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'm', 'p')",
            (ident,),
        ).fetchone()
        table: Table | None = None
        if row is not None:
            table = Table(
                oid=int(row[0]),
                schema=str(row[1]),
                name=str(row[2]),
                qualified=str(row[3]),
                reltuples=float(row[4]),
                writes=int(row[5]),
                updates=int(row[6]),
                hot_updates=int(row[7]),
                bytes=int(row[8] or 0),
            )
            for (
                attname,
                typ,
                cat,
                corr,
                brin,
                builtin,
                n_distinct,
                width,
                dedup,
                length,
                align,
                nulls,
            ) in self.conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory,"
                "       s.correlation,"
                "       EXISTS (SELECT 1 FROM pg_opclass o JOIN pg_am am ON am.oid = o.opcmethod"
                "                WHERE am.amname = 'brin' AND o.opcdefault AND o.opcintype = a.atttypid),"
                "       t.typnamespace = 'pg_catalog'::regnamespace AND t.typtype IN ('b', 'p'),"
                "       s.n_distinct, s.avg_width,"
                "       EXISTS (SELECT 1 FROM pg_opclass o JOIN pg_am am ON am.oid = o.opcmethod"
                "                 JOIN pg_amproc p ON p.amprocfamily = o.opcfamily AND p.amprocnum = 4"
                "                  AND p.amproclefttype = o.opcintype AND p.amprocrighttype = o.opcintype"
                "                WHERE am.amname = 'btree' AND o.opcdefault AND o.opcintype = a.atttypid)"
                "       AND (a.attcollation = 0 OR coalesce((SELECT co.collisdeterministic FROM pg_collation co"
                "                                             WHERE co.oid = a.attcollation), true)),"
                "       t.typlen, CASE t.typalign WHEN 'd' THEN 8 WHEN 'i' THEN 4 WHEN 's' THEN 2 ELSE 1 END,"
                "       coalesce(s.null_frac, 0)"
                "  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
                "  LEFT JOIN LATERAL (SELECT st.correlation, st.n_distinct, st.avg_width, st.null_frac FROM pg_stats st"
                "                      WHERE st.schemaname = %s AND st.tablename = %s AND st.attname = a.attname"
                "                      ORDER BY st.inherited LIMIT 1) s ON true"
                " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (table.schema, table.name, table.oid),
            ):
                table.columns[str(attname)] = Column(
                    str(attname),
                    str(typ),
                    str(cat),
                    None if corr is None else float(corr),
                    bool(brin),
                    bool(builtin),
                    None if n_distinct is None else float(n_distinct),
                    None if width is None else int(width),
                    bool(dedup),
                    int(length),
                    int(align),
                    float(nulls),
                )
            for name_, method, keys, valid, partial, indexdef, include in self.conn.execute(
                "SELECT ic.relname, am.amname,"
                "       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)"
                "                    || CASE WHEN i.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END"
                "               FROM generate_series(1, i.indnkeyatts) k ORDER BY k),"
                "       i.indisvalid AND i.indisready, i.indpred IS NOT NULL, pg_get_indexdef(i.indexrelid),"
                "       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)"
                "               FROM generate_series(i.indnkeyatts + 1, i.indnatts) k ORDER BY k)"
                "  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
                "  JOIN pg_am am ON am.oid = ic.relam WHERE i.indrelid = %s",
                (table.oid,),
            ):
                table.indexes.append(
                    ExistingIndex(
                        str(name_),
                        str(method),
                        [str(k) for k in keys],
                        bool(valid),
                        bool(partial),
                        columns_in(str(indexdef).split(" USING ", 1)[-1], table),
                        [str(k) for k in include],
                    )
                )
        self._by_name[key] = table
        return table

    def loaded(self, oid: int) -> Table | None:
        """A table this run has already looked up, by oid (candidates only name loaded tables)."""
        return next((t for t in self._by_name.values() if t is not None and t.oid == oid), None)

    def index_expression_error(self, table: Table, key: str) -> str | None:
        """Why PostgreSQL refuses ``key`` (a parenthesised expression) as a btree key on ``table``, or None.

        The server decides (:mod:`asymm.advisor.validate`): it resolves the functions for the column's
        type and checks that each is IMMUTABLE (pg_proc.provolatile), as CREATE INDEX would."""
        from asymm.advisor.validate import rejection

        cache_key = (table.oid, key)
        if cache_key not in self._expression_errors:
            self._expression_errors[cache_key] = rejection(self.conn, table.qualified, f"btree ({key})")
        return self._expression_errors[cache_key]

    def stats(self, table: Table, column: str) -> tuple[list[str], list[str]]:
        """(most_common_vals, histogram_bounds) of a column as text, empty when not analyzed."""
        key = (table.oid, column)
        if key not in self._stats:
            row = self.conn.execute(
                "SELECT coalesce(most_common_vals::text::text[], '{}'), coalesce(histogram_bounds::text::text[], '{}')"
                "  FROM pg_stats WHERE schemaname = %s AND tablename = %s AND attname = %s",
                (table.schema, table.name, column),
            ).fetchone()
            self._stats[key] = ([str(v) for v in row[0]], [str(v) for v in row[1]]) if row else ([], [])
        return self._stats[key]


IDENTIFIER = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)')


def columns_in(text: str, table: Table) -> frozenset[str]:
    """The table's columns named in an index definition or key text (quoted or not).

    Over-approximates when a function or keyword is spelled like a column, which only makes an
    update look non-HOT already (so it is charged less for losing HOT, never more).
    """
    out = set()
    for quoted, plain in IDENTIFIER.findall(text):
        name = quoted.replace('""', '"') if quoted else plain.lower()
        if name in table.columns:
            out.add(name)
    return frozenset(out)


def quote_ident(name: str) -> str:
    """Quote an identifier the way PostgreSQL's quote_ident() does (only when needed)."""
    if (
        name
        and (name[0].isalpha() or name[0] == "_")
        and all(ch.islower() or ch.isdigit() or ch == "_" for ch in name)
        and name not in _RESERVED
    ):
        return name
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Words that must be quoted as column names in index definitions (the reserved ones that occur
# as real column names; quoting more than necessary is harmless).
_RESERVED = frozenset(
    {
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "current_date",
        "current_role",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "initially",
        "intersect",
        "into",
        "lateral",
        "leading",
        "limit",
        "localtime",
        "localtimestamp",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "placing",
        "primary",
        "references",
        "returning",
        "select",
        "session_user",
        "some",
        "symmetric",
        "table",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "when",
        "where",
        "window",
        "with",
        "authorization",
        "binary",
        "collation",
        "concurrently",
        "cross",
        "current_schema",
        "freeze",
        "full",
        "ilike",
        "inner",
        "is",
        "isnull",
        "join",
        "left",
        "like",
        "natural",
        "notnull",
        "outer",
        "overlaps",
        "right",
        "similar",
        "tablesample",
        "verbose",
    }
)
