"""Public read API over the Redis mirror: ``Cache.get(table, key)`` and ``Cache.query(sql, params, ttl)``.

``get`` is read-through: Redis first; on a miss the row is read from PostgreSQL together with the
xmin of the reading snapshot, and written back only through the version-guarded fill script (see
:mod:`asymm.sync`).  A fill therefore never overwrites a newer value and never brings back a
deleted row: a concurrent write has a higher version, and deletes leave versioned tombstones.

``query`` caches a result under a key made of the normalised SQL (parsed and deparsed with
pglast), the parameters, and the change generation of every table the statement reads (found
with pglast).  The sync worker bumps a table's generation atomically with each change it applies,
so once a change is in Redis no reader can reach a result computed before it; stale entries are
simply never read again and expire with their TTL.  Statements that read anything not tracked
(views, functions, untracked tables) are run but not cached: nothing would invalidate them.

Sensitive columns (``asymm.track(..., sensitive => ...)``) never reach Redis in clear through a
cached result either.  When a table the statement reads has any, :func:`target_risk` looks at
every target list of the statement (sub-selects and CTEs included): a sensitive column name, a
``*`` or a possible whole-row reference (a column reference naming a relation or alias) inside an
expression there (a function call, an operator, a cast, ``CASE``, a row constructor, a sub-select)
makes the statement uncacheable: it is run and returned, never stored (``query_uncacheable``).
References in ``WHERE``, ``JOIN ... ON``, ``GROUP BY``, ``HAVING``, ``ORDER BY`` yield no value
and are fine.  So is a function call in a target list, unless a function of that name is
neither immutable nor an aggregate (it could read the sensitive column itself).  Once it has
run, the result's column origins (``PQftable``/``PQftablecol``, which PostgreSQL fills through
sub-queries and CTEs) tell which result columns ARE a sensitive column
(table oid and attnum: a renamed column is still found); those are protected as rows are, in what
is returned and in what is stored: dropped (the key left out) or ``hmac:<hex>`` from the same
:class:`~asymm.sync.tables.Protector`.  A result column with no origin (an expression, a
``UNION``) in a statement whose target lists name a sensitive column, a ``*`` or a whole row is
not cached.  The key of a result is a digest of the statement and its parameters (which may be a
card number): keyed HMAC-SHA256 when an HMAC key is configured, SHA-256 otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import pglast
from pglast import ast
from pglast.stream import RawStream
from pglast.visitors import Visitor

from asymm.db import connect
from asymm.errors import AsymmError
from asymm.sync.keys import KeyCanon, exact_key_types
from asymm.sync.redis_io import RedisClient, Scripts, connect_redis, query_key, redis_name, row_key, table_tag
from asymm.sync.tables import Protector, TrackedTable, find_table, load_tables

_PLACEHOLDER = re.compile(r"%%|%\([^)]+\)s|%s")
MAX_FILL_AGE_S = 60.0  # a fill older than this is dropped (tombstones live far longer; see sync.tombstone_ttl)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    fills: int = 0
    query_hits: int = 0
    query_misses: int = 0
    query_uncacheable: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses + self.query_hits + self.query_misses
        return (self.hits + self.query_hits) / total if total else 0.0


class _Tables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[tuple[str | None, str]] = set()
        self.ctes: set[str] = set()
        self.functions = False

    def visit_RangeVar(self, _ancestors: Any, node: ast.RangeVar) -> None:
        self.names.add((node.schemaname, str(node.relname)))

    def visit_CommonTableExpr(self, _ancestors: Any, node: ast.CommonTableExpr) -> None:
        self.ctes.add(str(node.ctename))

    def visit_RangeFunction(self, _ancestors: Any, _node: ast.RangeFunction) -> None:
        self.functions = True


def statement_tables(statement: str) -> tuple[str, set[tuple[str | None, str]], set[tuple[str | None, str]], bool]:
    """(normalised SQL, tables read, names a CTE of the statement shadows, cacheable) for one SELECT.

    A name in the third set is unqualified and some CTE of the statement bears it, yet it may name
    the real table in another scope (pglast does not say which): :meth:`Cache.query` counts it
    as read unless no relation of that name exists.
    """
    # psycopg placeholders are not SQL: parse with $1 in their place (tables do not depend on them)
    stmts = pglast.parse_sql(_PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else "$1", statement))
    if len(stmts) != 1 or not isinstance(stmts[0].stmt, ast.SelectStmt):
        raise AsymmError("Cache.query takes exactly one SELECT statement")
    select = stmts[0].stmt
    visitor = _Tables()
    visitor(select)
    shadowed: set[tuple[str | None, str]] = {(schema, name) for schema, name in visitor.names
                                             if schema is None and name in visitor.ctes}
    cacheable = not visitor.functions and not select.lockingClause
    return RawStream()(stmts[0]), visitor.names - shadowed, shadowed, cacheable


class _Targets(Visitor):
    """What the target lists of a statement reveal (see :func:`target_risk`)."""

    def __init__(self, sensitive: frozenset[str]) -> None:
        super().__init__()
        self.sensitive = set(sensitive)
        self.relations: set[str] = set()  # every relation, alias and CTE name: a whole-row reference may use one
        self.targets: list[ast.ResTarget] = []

    def visit_RangeVar(self, _ancestors: Any, node: ast.RangeVar) -> None:
        self.relations.add(str(node.relname))
        if node.alias is not None:
            self._alias(node.alias)

    def visit_Alias(self, _ancestors: Any, node: ast.Alias) -> None:
        self._alias(node)

    def visit_CommonTableExpr(self, _ancestors: Any, node: ast.CommonTableExpr) -> None:
        self.relations.add(str(node.ctename))
        # a CTE's column list renames what it selects: those names may be a sensitive column
        self.sensitive.update(str(c.sval) for c in node.aliascolnames or () if isinstance(c, ast.String))

    def visit_ResTarget(self, _ancestors: Any, node: ast.ResTarget) -> None:
        self.targets.append(node)

    def _alias(self, alias: ast.Alias) -> None:
        self.relations.add(str(alias.aliasname))
        # t AS x(a, b, c) renames t's columns: those names may be a sensitive column
        self.sensitive.update(str(c.sval) for c in alias.colnames or () if isinstance(c, ast.String))

    def revealing(self, ref: ast.ColumnRef) -> bool:
        """Whether a column reference may be a sensitive column, all columns, or a whole row."""
        last = ref.fields[-1] if ref.fields else None
        if isinstance(last, ast.A_Star):
            return True
        name = str(last.sval) if isinstance(last, ast.String) else ""
        return name in self.sensitive or name in self.relations


class _Refs(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[ast.ColumnRef] = []
        self.functions: set[str] = set()

    def visit_ColumnRef(self, _ancestors: Any, node: ast.ColumnRef) -> None:
        self.refs.append(node)

    def visit_FuncCall(self, _ancestors: Any, node: ast.FuncCall) -> None:
        last = node.funcname[-1] if node.funcname else None
        if isinstance(last, ast.String):
            self.functions.add(str(last.sval))


@functools.lru_cache(maxsize=1024)
def target_risk(statement: str, sensitive: frozenset[str]) -> tuple[str, frozenset[str]]:
    """(``"refuse"``, ``"origins"`` or ``"none"``, names of the functions called in target lists)
    for one SELECT that reads tables whose sensitive columns are named ``sensitive``.

    ``refuse``: a target list holds, inside an expression, a reference that may carry a sensitive
    value (a sensitive column name, a ``*``, a relation or alias name: a whole row), so the value
    could come out transformed, where no column origin can recognise it.  ``origins``: such a
    reference is a target by itself (``SELECT card``, ``SELECT *``), so every result column must
    have an origin for the result to be cached.  Conservative on purpose: a CTE's or alias's column
    list counts as sensitive names, and a sub-select in a target list is an expression.
    """
    stmts = pglast.parse_sql(_PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else "$1", statement))
    visitor = _Targets(sensitive)
    visitor(stmts[0].stmt)  # type: ignore[arg-type]
    risk = "none"
    functions: set[str] = set()
    for target in visitor.targets:
        if isinstance(target.val, ast.ColumnRef):
            if visitor.revealing(target.val):
                risk = "origins"
            continue
        refs = _Refs()
        if target.val is not None:
            refs(target.val)
        if any(visitor.revealing(ref) for ref in refs.refs):
            return "refuse", frozenset()
        functions |= refs.functions
    return risk, frozenset(functions)


def read_tables(statement: str) -> tuple[str, set[tuple[str | None, str]], bool]:
    """(normalised SQL, tables read, cacheable) for one SELECT statement; CTE names left out."""
    normalised, names, _shadowed, cacheable = statement_tables(statement)
    return normalised, names, cacheable


class Cache:
    def __init__(self, dsn: str, redis_url: str | None = None, *, redis_client: RedisClient | None = None,
                 hmac_key: str | None = None) -> None:
        # The application's own connection and search_path (its queries run here as it wrote
        # them); asymm's statements on it are schema-qualified throughout.
        self.conn = connect(dsn, observed=True, pin=False)
        self.redis: RedisClient = redis_client if redis_client is not None else connect_redis(redis_url or "")
        mode_row = self.conn.execute("SELECT asymm.setting('sync.sensitive_mode'),"
                                     " pg_catalog.date_part('epoch', asymm.setting('sync.tombstone_ttl')::interval),"
                                     " asymm.setting('sync.key_prefix')").fetchone()
        assert mode_row is not None
        self.scripts = Scripts(self.redis, str(mode_row[2]))
        self.prefix = self.scripts.prefix
        self.protector = Protector(str(mode_row[0]), hmac_key)
        self.tombstone_ttl_s = int(mode_row[1])  # type: ignore[call-overload]
        self.stats = CacheStats()
        self._tables: dict[str, TrackedTable] = {}
        self._relations: dict[tuple[str | None, str], str | None] = {}
        self._row_secured: set[str] = set()  # Redis names of tracked tables with row-level security
        self._oids: dict[str, int] = {}  # Redis name -> oid of the tracked tables _resolve() found
        self._sensitive: dict[int, dict[int, str]] | None = None  # oid -> {attnum: name}, see _sensitive_columns
        self._session: list[str] | None = None  # see _identity()
        self.keys = KeyCanon(self.conn)

    def close(self) -> None:
        self.conn.close()
        self.redis.close()

    def _table(self, table: str) -> TrackedTable:
        if table not in self._tables:
            self._tables[table] = find_table(self.conn, table)
        return self._tables[table]

    # -- rows ------------------------------------------------------------------------------------

    def key_text(self, table: TrackedTable, key: Any) -> str:
        """The canonical key text (:mod:`asymm.sync.keys`): the one the capture and the daemon write.

        ``7`` and ``'007'`` name one integer key, an upper-case or braced uuid the lower-case one;
        types Python cannot spell exactly are spelled by PostgreSQL (memoised).
        """
        return self.keys.text(table.oid, table.key_columns, table.key_types, key)

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        """The row (as a dict, sensitive columns dropped or HMACed), or None if it does not exist."""
        info = self._table(table)
        text = self.key_text(info, key)
        cached = self.redis.hgetall(row_key(info.name, text, self.prefix))
        if cached and b"v" in cached:
            self.stats.hits += 1
            return None if b"t" in cached else dict(json.loads(cached[b"d"]))
        self.stats.misses += 1
        started = time.monotonic()
        row = self.conn.execute(info.fetch_one_sql(self.protector.mode), {"key": text}).fetchone()
        assert row is not None
        version, doc = int(str(row[0])), self.protector.protect(info, None if row[1] is None else str(row[1]))
        # A live row goes under its own key text (the daemon's: 1.50 for a numeric key asked as
        # 1.5); "no such row" only where equal keys are spelled alike, else the tombstone could
        # hide a row stored under another spelling of the key.
        fill_key = text if row[2] is None else str(row[2])
        fillable = bool(row[3]) and (doc is not None or exact_key_types(info.key_types))
        # A row this role's row-level security hides reads as missing: no tombstone for everyone.
        hidden = self.conn.execute("SELECT pg_catalog.row_security_active(%s::oid::regclass)",
                                   (info.oid,)).fetchone()
        if fillable and not (hidden and hidden[0]) and time.monotonic() - started < MAX_FILL_AGE_S and \
                self.scripts.fill(info.name, version, doc, fill_key, self.tombstone_ttl_s):
            self.stats.fills += 1
        return None if doc is None else dict(json.loads(doc))

    # -- query results ---------------------------------------------------------------------------

    def _resolve(self, name: tuple[str | None, str]) -> str | None:
        """The Redis name (:func:`redis_name`) of a tracked table, None for anything else (views,
        untracked tables)."""
        if name not in self._relations:
            row = self.conn.execute(
                "SELECT n.nspname, c.relname, c.relrowsecurity, c.oid::bigint FROM asymm.sync_tables t"
                "  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.rel::oid"
                "  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
                " WHERE t.rel::oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(%s)::oid",
                (_quoted(name),)).fetchone()
            self._relations[name] = None if row is None else redis_name(str(row[0]), str(row[1]))
            if row is not None:
                self._oids[str(self._relations[name])] = int(str(row[3]))
            if row is not None and row[2]:
                self._row_secured.add(str(self._relations[name]))
        return self._relations[name]

    def _relation_exists(self, name: tuple[str | None, str]) -> bool:
        row = self.conn.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (_quoted(name),)).fetchone()
        return bool(row and row[0])

    def query(self, statement: str, params: Any = None, ttl: float = 60.0) -> list[dict[str, Any]]:
        """Rows of a SELECT as dicts, cached until a tracked table it reads changes (or ``ttl`` s).

        A result is shared only by sessions that would compute it alike: the key holds the role
        (its grants decide which columns it may read) and the search_path (which decides what the
        statement's unqualified functions and operators are).  A table with row-level security is
        never cached from: its policies may depend on settings beyond the role.  Sensitive columns
        come back (and are stored) dropped or HMACed, as in rows; a statement that could return
        one transformed is run and not cached (the rule is in the module docstring).
        """
        normalised, names, shadowed, cacheable = statement_tables(statement)
        names |= {n for n in shadowed if self._relation_exists(n)}
        tables = [self._resolve(n) for n in sorted(names, key=lambda n: (n[0] or "", n[1]))]
        # Reads no table: nothing would invalidate it (and it may be SELECT set_config(...)).
        if not cacheable or not tables or any(t is None or t in self._row_secured for t in tables):
            self.stats.query_uncacheable += 1
            return self._run(statement, params)
        # Generations are read BEFORE the query runs: a change applied after this point bumps a
        # generation, so a result computed from older data is stored under a key no one reads again.
        pipe = self.redis.pipeline(transaction=False)
        for name in tables:
            pipe.hmget(table_tag(str(name), self.prefix), "epoch", "gen")
        gens = pipe.execute()
        if any(epoch is None for epoch, _ in gens):
            self.stats.query_uncacheable += 1  # not synced (yet, or Redis lost it): no invalidation possible
            return self._run(statement, params)
        sensitive = self._sensitive_columns([self._oids[str(t)] for t in tables])
        risk, functions = target_risk(statement, frozenset(n for cols in sensitive.values() for n in cols.values())) \
            if sensitive else ("none", frozenset())
        if risk != "refuse" and functions and self._may_read_tables(functions):
            risk = "refuse"  # e.g. SELECT card_of(id): a function may read the sensitive column itself
        if risk == "refuse":
            self.stats.query_uncacheable += 1  # a sensitive value may come out of an expression
            return self._run(statement, params)
        material = json.dumps([normalised, params, tables, [[_s(e), _s(g)] for e, g in gens], self._identity()],
                              default=str).encode()
        # The parameters may be a card number: with an HMAC key, the digest is keyed with it.
        digest = hmac.new(self.protector.key, material, hashlib.sha256).hexdigest() if self.protector.key \
            else hashlib.sha256(material).hexdigest()
        key = query_key(self.prefix, digest)
        cached = self.redis.get(key)
        if cached is not None:
            self.stats.query_hits += 1
            return list(json.loads(cached))
        rows, origins = self._run_with_origins(statement, params, sensitive)
        if risk == "origins" and None in origins:
            self.stats.query_uncacheable += 1  # a column of no origin (an expression, a UNION) may hold one
            return rows
        self.stats.query_misses += 1
        encoded = json.dumps(rows, default=str)
        self.redis.set(key, encoded, px=max(1, int(ttl * 1000)))
        return list(json.loads(encoded))  # the same types a hit returns

    def _may_read_tables(self, functions: frozenset[str]) -> bool:
        """Whether a function of one of these names (in any schema, any arguments: conservative)
        is neither IMMUTABLE nor an aggregate: only such a function may read a table by itself."""
        row = self.conn.execute(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.proname::text OPERATOR(pg_catalog.=) ANY (%s)"
            " AND p.provolatile OPERATOR(pg_catalog.<>) 'i' AND p.prokind OPERATOR(pg_catalog.<>) 'a')",
            (sorted(functions),)).fetchone()
        return bool(row and row[0])

    def _sensitive_columns(self, oids: list[int]) -> dict[int, dict[int, str]]:
        """{oid: {attnum: name}} of the sensitive columns of the tracked tables ``oids`` (those with any).

        By attnum: result column origins name a column by (table oid, attnum), which a RENAME
        COLUMN does not change.  The names are the sync's own (:func:`load_tables`, fail closed).
        """
        if self._sensitive is None:
            self._sensitive = {}
            for table in load_tables(self.conn).values():
                if table.sensitive:
                    found = self.conn.execute(
                        "SELECT a.attnum, a.attname::text FROM pg_catalog.pg_attribute a"
                        " WHERE a.attrelid OPERATOR(pg_catalog.=) %s::oid"
                        "   AND a.attname::text OPERATOR(pg_catalog.=) ANY (%s::text[])",
                        (table.oid, table.sensitive)).fetchall()
                    self._sensitive[table.oid] = {int(str(n)): str(name) for n, name in found}
        return {oid: self._sensitive[oid] for oid in oids if self._sensitive.get(oid)}

    def _run_with_origins(self, statement: str, params: Any, sensitive: dict[int, dict[int, str]]
                          ) -> tuple[list[dict[str, Any]], list[tuple[int, int] | None]]:
        """The rows, protected, and each result column's origin (None: not a table column).

        A result column that is a sensitive column is protected exactly as the sync protects
        rows: left out (``drop``), or ``hmac:<hex>`` of the value as ``row_to_json`` writes it.
        """
        self._session = None
        cur = self.conn.execute(statement, params)
        if cur.description is None or cur.pgresult is None:
            return [], []
        result = cur.pgresult
        origins: list[tuple[int, int] | None] = []
        for i in range(result.nfields):
            table, column = int(result.ftable(i)), int(result.ftablecol(i))
            origins.append((table, column) if table and column else None)
        protected = [i for i, o in enumerate(origins) if o is not None and o[1] in sensitive.get(o[0], {})]
        cols = [c.name for c in cur.description]
        rows = cur.fetchall()
        if not protected:
            return [dict(zip(cols, r, strict=True)) for r in rows], origins
        out = []
        for n, r in enumerate(rows):
            values = dict(zip(cols, r, strict=True))
            for i in protected:
                if self.protector.mode == "drop":
                    values.pop(cols[i], None)
                elif r[i] is not None:
                    values[cols[i]] = self.protector.digest(_as_json(result.get_value(n, i), result.ftype(i),
                                                                     result.fformat(i), r[i]))
            out.append(values)
        return out, origins

    def _identity(self) -> list[str]:
        """Role and search_path of the application's session, read again after each of its statements
        (one may have changed them: SET ROLE inside a function, set_config), not on every hit."""
        if self._session is None:
            row = self.conn.execute("SELECT current_user::text, pg_catalog.current_setting('search_path')").fetchone()
            assert row is not None
            self._session = [str(row[0]), str(row[1])]
        return self._session

    def _run(self, statement: str, params: Any) -> list[dict[str, Any]]:
        self._session = None
        cur = self.conn.execute(statement, params)
        if cur.description is None:
            return []
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


_NUMBERS = {20, 21, 23, 26, 700, 701, 1700}  # int8, int2, int4, oid, float4, float8, numeric: bare JSON numbers
_JSONS = {114, 3802}  # json, jsonb: embedded as they are


def _as_json(text: bytes | None, type_oid: int, fmt: int, value: Any) -> str:
    """One result value as ``row_to_json`` writes it, so that its HMAC is the one its row has
    (scalars; an array or a composite gets a digest of its text, still never in clear)."""
    if fmt != 0 or text is None:  # (a binary result: the digest of the loaded value's text)
        return json.dumps(str(value))
    raw = text.decode()
    if type_oid == 16:
        return "true" if raw == "t" else "false"
    if type_oid in _NUMBERS and raw not in ("NaN", "Infinity", "-Infinity"):
        return raw
    if type_oid in _JSONS:
        return raw
    return json.dumps(raw)


def _quoted(name: tuple[str | None, str]) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in name if p is not None)


def _s(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
