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
"""

from __future__ import annotations

import hashlib
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
from asymm.sync.tables import Protector, TrackedTable, find_table

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
                "SELECT n.nspname, c.relname, c.relrowsecurity FROM asymm.sync_tables t"
                "  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.rel::oid"
                "  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
                " WHERE t.rel::oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(%s)::oid",
                (_quoted(name),)).fetchone()
            self._relations[name] = None if row is None else redis_name(str(row[0]), str(row[1]))
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
        never cached from: its policies may depend on settings beyond the role.
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
        material = json.dumps([normalised, params, tables, [[_s(e), _s(g)] for e, g in gens], self._identity()],
                              default=str)
        key = query_key(self.prefix, hashlib.sha256(material.encode()).hexdigest())
        cached = self.redis.get(key)
        if cached is not None:
            self.stats.query_hits += 1
            return list(json.loads(cached))
        self.stats.query_misses += 1
        encoded = json.dumps(self._run(statement, params), default=str)
        self.redis.set(key, encoded, px=max(1, int(ttl * 1000)))
        return list(json.loads(encoded))  # the same types a hit returns

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


def _quoted(name: tuple[str | None, str]) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in name if p is not None)


def _s(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
