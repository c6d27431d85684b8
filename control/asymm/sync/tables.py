"""What the sync knows about one tracked table, and the SQL it runs against it.

Why built here: the statements come from the catalog (``asymm.sync_tables``) through
:mod:`psycopg.sql`, so user input never becomes SQL, and the key expression is the canonical one
of :mod:`asymm.sync.keys`, so outbox keys and re-read keys match.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

import psycopg
from psycopg import sql

from asymm.db import lookup_relation
from asymm.errors import AsymmError
from asymm.sync.keys import exact_key_types
from asymm.sync.redis_io import redis_name

HMAC_ENV = "ASYMM_SYNC_HMAC_KEY"


def _type(format_type: str) -> sql.SQL:
    """A key column's type as ``format_type`` spells it (quoted where needed), ``%`` doubled."""
    return sql.SQL(format_type.replace("%", "%%"))


def _param_safe(part: sql.Composable) -> sql.SQL:
    """``part`` (a quoted name or a literal) as SQL text with every ``%`` doubled.

    psycopg reads each ``%`` of a statement run with parameters as a placeholder, inside quoted
    identifiers and literals too (``sql.Identifier`` does not double it): a table, column, type or
    sensitive column named with a ``%`` would make every statement the sync runs on it fail.  Every
    statement built here is run with parameters (pass ``()`` when there are none).  Built once per
    table and statement, never per key.
    """
    return sql.SQL(part.as_string().replace("%", "%%"))


def _ident(*names: str) -> sql.SQL:
    return _param_safe(sql.Identifier(*names))


# Whether this session writes a row's JSON as the daemon does under asymm.sync.keys.KEY_SETTINGS
# (row_to_json spells timestamptz in the session's time zone, floats, bytea and intervals with
# their output functions; dates and timestamps always in ISO form; a key's ::text also follows
# DateStyle's first part): a read-through fill from a
# session set otherwise would store a text the daemon never writes.
SAME_RENDERING = (
    "pg_catalog.current_setting('TimeZone') OPERATOR(pg_catalog.=) ANY ('{UTC,Etc/UTC,Etc/UCT,UCT,"
    "Universal,Zulu,Etc/Universal,Etc/Zulu}'::text[])"
    " AND pg_catalog.current_setting('extra_float_digits')::int OPERATOR(pg_catalog.>) 0"
    " AND pg_catalog.current_setting('bytea_output') OPERATOR(pg_catalog.=) 'hex'"
    " AND pg_catalog.current_setting('IntervalStyle') OPERATOR(pg_catalog.=) 'postgres'"
    " AND pg_catalog.current_setting('DateStyle') OPERATOR(pg_catalog.~~) 'ISO,%%'"
)


@dataclass
class TrackedTable:
    oid: int
    name: str  # redis_io.redis_name(schema, table): the text of the table's Redis hash tag
    schema: str
    table: str
    key_columns: list[str]
    key_types: list[str]
    sensitive: list[str]
    state: str
    cursor: str | None
    epoch: str | None
    applied: int | None = None  # asymm.sync_tables.applied: the version Redis acknowledged, as last stored

    @property
    def ident(self) -> sql.Composable:
        """The table's quoted name, for statements run with parameters (see :func:`_param_safe`)."""
        return _ident(self.schema, self.table)

    def key_expr(self, alias: str = "t") -> sql.Composable:
        cols = [_ident(alias, c) for c in self.key_columns]
        if len(cols) == 1:
            return sql.SQL("{}::text").format(cols[0])
        return sql.SQL("pg_catalog.jsonb_build_array({})::text").format(sql.SQL(", ").join(cols))

    def doc_expr(self, mode: str) -> sql.Composable:
        """The row ``t`` as JSON text.

        ``t.*``, not ``t``: in a table with a column named ``t``, a bare ``t`` is that column.
        ``row_to_json`` writes the text directly; ``to_jsonb(...)::text`` builds a jsonb first
        (every number goes through numeric_in) and costs ~2.5 us more a row, measured on
        pgbench_accounts.  Only the drop mode needs jsonb, for its ``-`` operator.
        """
        if not self.sensitive:
            return sql.SQL("pg_catalog.row_to_json(t.*)::text")
        # The sensitive columns as the statement itself sees them: a RENAME COLUMN committed after
        # this statement was built (the engine notices it by the tables fingerprint, but only in its
        # next statement) must not let the renamed column through for one read.  The names are
        # those this statement was built with that still exist, and the columns pinned by identity
        # (see _SENSITIVE); an uncorrelated subquery, so evaluated once per statement.
        current = sql.SQL(
            "ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a"
            " WHERE a.attrelid OPERATOR(pg_catalog.=) {oid}::oid AND a.attnum OPERATOR(pg_catalog.>) 0"
            " AND NOT a.attisdropped AND (a.attname::text OPERATOR(pg_catalog.=) ANY ({names}::text[])"
            " OR a.attnum OPERATOR(pg_catalog.=) ANY (SELECT pg_catalog.unnest(p.attnums)"
            " FROM asymm.sync_sensitive_pins p WHERE p.rel::oid OPERATOR(pg_catalog.=) {oid}::oid)))"
        ).format(oid=sql.Literal(self.oid), names=_param_safe(sql.Literal(self.sensitive)))
        dropped = sql.SQL("(pg_catalog.to_jsonb(t.*) OPERATOR(pg_catalog.-) {})::text").format(current)
        if mode == "drop":
            return dropped
        # hmac: the row as is, for the Protector to HMAC the columns it knows as sensitive, unless
        # the statement sees other sensitive columns than those: then they are dropped instead.
        return sql.SQL(
            "CASE WHEN {current} OPERATOR(pg_catalog.@>) {names}::text[]"
            " AND {current} OPERATOR(pg_catalog.<@) {names}::text[]"
            " THEN pg_catalog.row_to_json(t.*)::text ELSE {dropped} END"
        ).format(current=current, names=_param_safe(sql.Literal(self.sensitive)), dropped=dropped)

    def match(self, source: sql.Composable, strict: bool = True) -> sql.Composable:
        """``t.pk = <source text key>`` with each part cast to the column type (index-friendly).

        ``strict`` (the daemon's reads): where equal values have several texts (float ``0`` and
        ``-0``, numeric ``1.5`` and ``1.50``), the row's own key text must be ``source`` too, or a
        deleted ``-0`` would be written with the row ``0`` (a live key no row has).

        Operators qualified: :mod:`asymm.sync.cache` runs this on the application's connection, whose
        search_path may reach a schema an untrusted role can create operators in.
        """
        same_text: sql.Composable = sql.SQL("")
        if strict and not exact_key_types(self.key_types):
            same_text = sql.SQL(" AND {} OPERATOR(pg_catalog.=) ({})::text").format(self.key_expr(), source)
        if len(self.key_columns) == 1:
            return sql.SQL("t.{} OPERATOR(pg_catalog.=) ({})::{}{}").format(
                _ident(self.key_columns[0]), source, _type(self.key_types[0]), same_text
            )
        parts = [
            sql.SQL("t.{} OPERATOR(pg_catalog.=) (({})::jsonb OPERATOR(pg_catalog.->>) {})::{}").format(
                _ident(c), source, sql.Literal(i), _type(ty)
            )
            for i, (c, ty) in enumerate(zip(self.key_columns, self.key_types, strict=True))
        ]
        return sql.SQL(" AND ").join(parts) + same_text

    def fetch_sql(self, mode: str) -> sql.Composed:
        """Current rows for a text[] of keys (a NULL doc: the row no longer exists), each with the
        xmin of the statement's snapshot (their version)."""
        return sql.SQL(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, k.key, {doc}"
            " FROM unnest(%s::text[]) AS k(key) LEFT JOIN {tbl} t ON {match}"
        ).format(doc=self.doc_expr(mode), tbl=self.ident, match=self.match(sql.SQL("k.key")))

    def gone_sql(self) -> sql.Composed:
        """Which of a text[] of keys have no row, with the xmin of the statement's snapshot (a prune
        tombstones them with it as version, see :meth:`asymm.sync.engine.SyncEngine._prune`)."""
        return sql.SQL(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, k.key"
            " FROM unnest(%s::text[]) AS k(key)"
            " WHERE NOT EXISTS (SELECT FROM {tbl} t WHERE {match})"
        ).format(tbl=self.ident, match=self.match(sql.SQL("k.key")))

    def fetch_one_sql(self, mode: str) -> sql.Composed:
        """One row plus the snapshot's xmin, in one statement (so one snapshot): xmin, doc, the row's
        own key text, and whether the session spells rows and keys as the daemon does
        (:data:`SAME_RENDERING`: else nothing it read may be filled into Redis).  The row's key text
        can differ from the one asked for where equal values have several spellings (numeric
        ``1.5`` = ``1.50``): the daemon writes the row under its own."""
        return sql.SQL(
            "SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint,"
            " r.doc, r.key, {same} FROM (SELECT) one LEFT JOIN LATERAL"
            " (SELECT {doc} AS doc, {key} AS key FROM {tbl} t WHERE {match}) r ON true"
        ).format(
            same=sql.SQL(SAME_RENDERING),
            doc=self.doc_expr(mode),
            tbl=self.ident,
            key=self.key_expr(),
            match=self.match(sql.SQL("%(key)s::text"), strict=False),
        )

    def chunk_sql(self, mode: str, after: bool) -> sql.Composed:
        """A backfill chunk in key order, after the cursor (a jsonb array of key values) if any."""
        cols = sql.SQL(", ").join(_ident("t", c) for c in self.key_columns)
        where: sql.Composable = sql.SQL("")
        if after:
            bounds = sql.SQL(", ").join(
                sql.SQL("(%(cursor)s::jsonb->>{})::{}").format(sql.Literal(i), _type(ty))
                for i, ty in enumerate(self.key_types)
            )
            where = (
                sql.SQL("WHERE ({}) > ({})").format(cols, bounds)
                if len(self.key_columns) > 1
                else sql.SQL("WHERE {} > {}").format(cols, bounds)
            )
        return sql.SQL(
            "SELECT {key}, {doc}, jsonb_build_array({cols})::text FROM {tbl} t {where} ORDER BY {cols} LIMIT %(limit)s"
        ).format(key=self.key_expr(), doc=self.doc_expr(mode), cols=cols, tbl=self.ident, where=where)


# What the sync worker caches about the tracked tables, as one value: the worker compares it with
# the one it loaded the tables with, in the same statement (so the same snapshot) as each batch.
# Everything but the backfill cursor and counters: the table (regclass as text, so a rename or a
# schema rename changes it: the SQL names tables), state, epoch, key.  It reads sync_tables only:
# a join with pg_class and pg_namespace would add six relations to lock on every batch.
TABLES_FINGERPRINT = """(SELECT md5(coalesce(string_agg(concat_ws(' ', t.rel::oid, quote_literal(t.rel::regclass::text),
        t.backfill_state, quote_nullable(t.epoch), quote_literal(t.key_columns), quote_literal(t.key_types),
        quote_literal(t.sensitive)), ',' ORDER BY t.rel::oid), '')) FROM asymm.sync_tables t)"""


# The sensitive columns, fail closed: the columns pinned by identity (asymm.sync_sensitive_pins,
# which a RENAME COLUMN does not change) together with the columns that bear a stored name.  The
# ddl_command_end trigger keeps both in step; should it have missed a rename (event triggers off),
# this over-protects (both the old and the new column) rather than send the renamed one in clear.
_SENSITIVE = """ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
        WHERE a.attrelid OPERATOR(pg_catalog.=) t.rel::oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
          AND (a.attname::text OPERATOR(pg_catalog.=) ANY (t.sensitive)
               OR a.attnum OPERATOR(pg_catalog.=) ANY (SELECT unnest(p.attnums) FROM asymm.sync_sensitive_pins p
                                                       WHERE p.rel::oid OPERATOR(pg_catalog.=) t.rel::oid))
        ORDER BY a.attnum)"""

_TABLES = f"""SELECT t.rel::oid::bigint, n.nspname, c.relname, t.key_columns, t.key_types, {_SENSITIVE},
       t.backfill_state, t.backfill_cursor, t.epoch, t.applied
  FROM asymm.sync_tables t JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.rel::oid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"""  # noqa: S608 (constants)


def _table(r: Any) -> TrackedTable:
    return TrackedTable(
        oid=int(r[0]),
        name=redis_name(r[1], r[2]),
        schema=r[1],
        table=r[2],
        key_columns=list(r[3]),
        key_types=list(r[4]),
        sensitive=list(r[5]),
        state=r[6],
        cursor=r[7],
        epoch=r[8],
        applied=None if r[9] is None else int(r[9]),
    )


def load_tables(conn: psycopg.Connection[Any]) -> dict[int, TrackedTable]:
    return {int(r[0]): _table(r) for r in conn.execute(_TABLES)}


def load_tables_fingerprint(conn: psycopg.Connection[Any]) -> tuple[dict[int, TrackedTable], str]:
    """The tracked tables and their fingerprint (:data:`TABLES_FINGERPRINT`), in one statement (one snapshot)."""
    rows = conn.execute(
        f"SELECT t.*, f.fp FROM (SELECT {TABLES_FINGERPRINT} AS fp) f"  # noqa: S608 (constants)
        f" LEFT JOIN ({_TABLES}) t ON true"
    ).fetchall()
    return {int(r[0]): _table(r) for r in rows if r[0] is not None}, str(rows[0][-1])


def find_table(conn: psycopg.Connection[Any], table: str) -> TrackedTable:
    """The tracked table named ``table`` (any form ``regclass`` accepts)."""
    rel = lookup_relation(conn, table)
    row = conn.execute("SELECT pg_catalog.to_regclass(%s)::oid::bigint", (rel,)).fetchone()
    if row is None or row[0] is None:
        raise AsymmError(f"table {table!r} does not exist")
    tracked = load_tables(conn).get(int(row[0]))
    if tracked is None:
        raise AsymmError(f"table {table!r} is not tracked (SELECT asymm.track('{table}'))")
    return tracked


class Protector:
    """Makes sensitive columns safe before they leave PostgreSQL: dropped, or keyed HMAC-SHA256.

    The HMAC key comes from configuration (``ASYMM_SYNC_HMAC_KEY``), never from the database, so a
    reader of Redis cannot recompute it; without a key, ``hmac`` mode refuses to run rather than
    fall back to sending the value in clear.
    """

    def __init__(self, mode: str, key: str | None = None) -> None:
        if mode not in ("drop", "hmac"):
            raise AsymmError(f"sync.sensitive_mode must be 'drop' or 'hmac', not {mode!r}")
        self.mode = mode
        secret = key if key is not None else os.environ.get(HMAC_ENV)
        if mode == "hmac" and not secret:
            raise AsymmError(f"sync.sensitive_mode is 'hmac' but {HMAC_ENV} is not set")
        self.key = secret.encode() if secret else b""

    def needed(self, table: TrackedTable) -> bool:
        """Whether :meth:`protect` changes the table's rows (hmac mode and sensitive columns)."""
        return bool(table.sensitive) and self.mode == "hmac"

    def protect(self, table: TrackedTable, doc: str | None) -> str | None:
        """``doc`` (the row's JSON object text, as ``row_to_json`` wrote it) with each non-null
        sensitive value replaced by ``"hmac:<hex>"``.

        Spliced, not re-serialised: every other value keeps the exact text PostgreSQL produced. A
        ``json.loads``/``json.dumps`` round trip went through Python floats and rounded every
        numeric (``12345678901234568856.123456789`` became ``12345678901234570000``), so the
        ``hmac`` mode disagreed with the ``drop`` mode and with the database on every number.
        """
        if doc is None or not self.needed(table):
            return doc  # drop mode removes the columns in SQL already
        sensitive = set(table.sensitive)
        parts: list[str] = []
        done = 0
        for name, start, end in _members(doc):
            if name in sensitive and doc[start:end] != "null":
                parts += (doc[done:start], '"', self.digest(doc[start:end]), '"')
                done = end
        return "".join(parts) + doc[done:] if parts else doc

    def digest(self, value_json: str) -> str:
        """``hmac:<hex>`` of one JSON value's text, computed over its canonical form (:func:`canonical`)."""
        return "hmac:" + hmac.new(self.key, canonical(value_json).encode(), hashlib.sha256).hexdigest()


class _Number(str):
    """A JSON number kept as the text PostgreSQL wrote (see :func:`canonical`)."""


_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def _members(doc: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of each member value of a JSON object text: ``doc[start:end]`` is the
    value's text exactly as written.  The C scanner of :mod:`json` does the work (each value is
    scanned once, to find where it ends); ``row_to_json`` writes no spaces, so the whitespace
    pattern runs only where there is some."""
    scan, name_at = _DECODER.scan_once, scanstring  # type: ignore[attr-defined]
    out: list[tuple[str, int, int]] = []
    idx = _skip(doc, 0)
    if doc[idx : idx + 1] != "{":
        raise AsymmError("a row document is not a JSON object")
    idx = _skip(doc, idx + 1)
    if doc[idx : idx + 1] == "}":
        return out
    while True:
        if doc[idx : idx + 1] != '"':
            raise AsymmError("a row document is not a JSON object")
        name, idx = name_at(doc, idx + 1)
        idx = _skip(doc, idx)
        if doc[idx : idx + 1] != ":":
            raise AsymmError("a row document is not a JSON object")
        start = _skip(doc, idx + 1)
        end = scan(doc, start)[1]
        out.append((name, start, end))
        idx = _skip(doc, end)
        sep = doc[idx : idx + 1]
        if sep == "}":
            return out
        if sep != ",":
            raise AsymmError("a row document is not a JSON object")
        idx = _skip(doc, idx + 1)


def _skip(doc: str, idx: int) -> int:
    return _WS.match(doc, idx).end() if doc[idx : idx + 1] in _SPACES else idx  # type: ignore[union-attr]


_SPACES = frozenset(" \t\n\r")


def canonical(value_json: str) -> str:
    """The canonical text of one JSON value, the HMAC's input: object keys sorted, no spaces,
    strings as :func:`json.dumps` escapes them, integers as Python writes them, and every other
    number exactly as PostgreSQL wrote it (never through a float: two numerics that a float
    confuses must not share a digest).  Values without a fractional or exponent number get the
    digest earlier builds gave them (they went through ``json.dumps(..., sort_keys=True)``)."""
    if value_json[:1] == '"' and value_json.isascii() and "\\" not in value_json:
        return value_json  # a string json.dumps writes alike (no escape, ASCII): most sensitive values
    return _canonical(json.loads(value_json.strip(), parse_float=_Number))


def _canonical(value: Any) -> str:
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + _canonical(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return json.dumps(value)
