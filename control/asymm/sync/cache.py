"""Public read API over the Redis mirror: ``Cache.get(table, key)`` and ``Cache.query(sql, params, ttl)``.

Lives in the sync package because it shares the sync's Redis layout, fill scripts and protection;
applications import it as :mod:`asymm.cache`, the stable path.  ``get`` is read-through with the
sync's version-guarded fill; ``query`` keys a result by the statement, its parameters and the
change generations of the tables it reads, caches only what nothing else can change, and never
stores a sensitive column in clear.

Details: docs/sync.md, "The read API".
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

from pglast import ast
from pglast.stream import RawStream

from asymm import sqlparse
from asymm.db import connect
from asymm.errors import AsymmError
from asymm.sync.keys import KeyCanon, exact_key_types
from asymm.sync.redis_io import (
    RedisClient,
    Scripts,
    connect_redis,
    query_key,
    redis_name,
    results_key,
    row_key,
    table_tag,
)
from asymm.sync.tables import Protector, TrackedTable, find_table, load_tables

# Session settings a result depends on (how values are written, how literals and names are read):
# part of a result's key, so a session with other values computes its own.
RESULT_SETTINGS = (
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "extra_float_digits",
    "bytea_output",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "default_text_search_config",
    "xmlbinary",
    "xmloption",
    "standard_conforming_strings",
    "timezone_abbreviations",
    "transform_null_equals",
    "array_nulls",
    "backslash_quote",
    "gin_fuzzy_search_limit",
    "client_encoding",
)
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


@dataclass(frozen=True)
class Analysis:
    """What :meth:`Cache.query` needs to know of a statement, from its text alone (pglast)."""

    normalised: str
    names: frozenset[tuple[str | None, str]]  # relations read (CTE names left out)
    shadowed: frozenset[tuple[str | None, str]]  # names a CTE bears that may be a relation too
    inherited: frozenset[tuple[str | None, str]]  # relations read without ONLY
    cacheable: bool  # no write, no lock, no function in FROM
    calls: frozenset[str]
    operators: frozenset[str]
    fields: frozenset[str]


@functools.lru_cache(maxsize=1024)
def analyse(statement: str) -> Analysis:
    """The :class:`Analysis` of one SELECT (AsymmError for anything else)."""
    stmts = sqlparse.parse(_numbered(statement))
    if len(stmts) != 1 or not isinstance(stmts[0].stmt, ast.SelectStmt):
        raise AsymmError("Cache.query takes exactly one SELECT statement")
    info = sqlparse.describe(stmts[0].stmt)
    calls = info.calls | ({"now"} if info.value_functions else set())  # CURRENT_DATE, ...: STABLE, as now() is
    shadowed = info.cte_named
    return Analysis(
        RawStream()(stmts[0]),
        frozenset(info.names - shadowed),
        frozenset(shadowed),
        frozenset(info.inherited),
        not info.functions_in_from and not info.modifies,
        frozenset(calls),
        frozenset(info.operators),
        frozenset(info.fields),
    )


def statement_tables(statement: str) -> tuple[str, set[tuple[str | None, str]], set[tuple[str | None, str]], bool]:
    """(normalised SQL, tables read, names a CTE of the statement shadows, cacheable) for one SELECT.

    A name in the third set is unqualified and some CTE of the statement bears it, yet it may name
    the real table in another scope (pglast does not say which): :meth:`Cache.query` counts it
    as read unless no relation of that name exists.
    """
    a = analyse(statement)
    return a.normalised, set(a.names), set(a.shadowed), a.cacheable


class _Targets:
    """What the target lists of a statement reveal (see :func:`target_risk`), from its walk."""

    def __init__(self, info: sqlparse.StatementInfo, sensitive: frozenset[str]) -> None:
        # a CTE's column list or an alias's (t AS x(a, b)) renames columns: those names may be a sensitive column
        self.sensitive = set(sensitive) | info.renamed_columns
        # every relation, alias and CTE name: a whole-row reference may use one
        self.relations = {r.name[1] for r in info.ranges} | info.alias_names | info.ctes
        self.targets = info.targets  # the expressions whose values a result holds
        self.values = info.values  # VALUES items: results too, but never with a column origin

    def revealing(self, ref: ast.ColumnRef) -> bool:
        """Whether a column reference may be a sensitive column, all columns, or a whole row."""
        last = ref.fields[-1] if ref.fields else None
        if isinstance(last, ast.A_Star):
            return True
        name = str(last.sval) if isinstance(last, ast.String) else ""
        return name in self.sensitive or name in self.relations


@functools.lru_cache(maxsize=1024)
def target_risk(statement: str, sensitive: frozenset[str]) -> str:
    """``"refuse"``, ``"origins"`` or ``"none"`` for one SELECT that reads tables whose sensitive
    columns are named ``sensitive``.

    ``refuse``: a target list (or a VALUES list) holds, inside an expression, a reference that may
    carry a sensitive value (a sensitive column name, a ``*``, a relation or alias name: a whole
    row), so the value could come out transformed, where no column origin can recognise it; a
    VALUES item naming one is refused even bare (its column has no origin).  ``origins``: such a
    reference is a target by itself (``SELECT card``, ``SELECT *``), so every result column must
    have an origin for the result to be cached.  Conservative on purpose: a CTE's or alias's column
    list counts as sensitive names, and a sub-select in a target list is an expression.
    """
    stmts = sqlparse.parse(_numbered(statement))
    visitor = _Targets(sqlparse.describe(stmts[0].stmt), sensitive)
    risk = "none"
    for target, bare_ok in [(t, True) for t in visitor.targets] + [(v, False) for v in visitor.values]:
        if bare_ok and isinstance(target, ast.ColumnRef):
            if visitor.revealing(target):
                risk = "origins"
            continue
        refs = sqlparse.column_nodes(target) if target is not None else []
        if any(visitor.revealing(ref) for ref in refs):
            return "refuse"
    return risk


def read_tables(statement: str) -> tuple[str, set[tuple[str | None, str]], bool]:
    """(normalised SQL, tables read, cacheable) for one SELECT statement; CTE names left out."""
    normalised, names, _shadowed, cacheable = statement_tables(statement)
    return normalised, names, cacheable


class Cache:
    def __init__(
        self,
        dsn: str,
        redis_url: str | None = None,
        *,
        redis_client: RedisClient | None = None,
        hmac_key: str | None = None,
    ) -> None:
        # The application's own connection and search_path (its queries run here as it wrote
        # them); asymm's statements on it are schema-qualified throughout.
        self.conn = connect(dsn, observed=True, pin=False)
        self.redis: RedisClient = redis_client if redis_client is not None else connect_redis(redis_url or "")
        mode_row = self.conn.execute(
            "SELECT asymm.setting('sync.sensitive_mode'),"
            " pg_catalog.date_part('epoch', asymm.setting('sync.tombstone_ttl')::interval),"
            " asymm.setting('sync.key_prefix')"
        ).fetchone()
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
        self._epochs: dict[str, str | None] = {}  # Redis name -> epoch when _sensitive was read
        self._readable: dict[tuple[str, int], bool] = {}  # (role, oid) -> SELECT on the table, see get()
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
        self._check_select(info)
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
        hidden = self.conn.execute("SELECT pg_catalog.row_security_active(%s::oid::regclass)", (info.oid,)).fetchone()
        if (
            fillable
            and not (hidden and hidden[0])
            and time.monotonic() - started < MAX_FILL_AGE_S
            and self.scripts.fill(info.name, version, doc, fill_key, self.tombstone_ttl_s)
        ):
            self.stats.fills += 1
        return None if doc is None else dict(json.loads(doc))

    def _check_select(self, info: TrackedTable) -> None:
        """AsymmError unless the session's role may SELECT the whole table, as a plain read would
        require: a Redis hit bypasses PostgreSQL's own check.  Column grants do not count (the row
        holds every column).  Memoised per role (:meth:`_identity` follows SET ROLE)."""
        role = self._identity()[0]
        if (role, info.oid) not in self._readable:
            row = self.conn.execute("SELECT pg_catalog.has_table_privilege(%s::oid, 'SELECT')", (info.oid,)).fetchone()
            self._readable[(role, info.oid)] = bool(row and row[0])
        if not self._readable[(role, info.oid)]:
            raise AsymmError(
                f"permission denied: role {role} may not SELECT table {info.name}"
                " (Cache.get needs SELECT on the whole table: GRANT SELECT ON it)"
            )

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
                (_quoted(name),),
            ).fetchone()
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
        statement's unqualified functions and operators are), and the output settings
        (:data:`RESULT_SETTINGS`).  A table with row-level security is never cached from: its
        policies may depend on settings beyond the role.  Sensitive columns come back (and are
        stored) dropped or HMACed, as in rows; a statement that could return one transformed, or
        whose result something untracked may change, is run and not cached (the rules are in the
        module docstring).
        """
        analysis = analyse(statement)
        names = set(analysis.names) | {n for n in analysis.shadowed if self._relation_exists(n)}
        tables = [self._resolve(n) for n in sorted(names, key=lambda n: (n[0] or "", n[1]))]
        # Reads no table: nothing would invalidate it (and it may be SELECT set_config(...)).
        if not analysis.cacheable or not tables or any(t is None or t in self._row_secured for t in tables):
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
        self._fresh_sensitive(tables, gens)
        sensitive = self._sensitive_columns([self._oids[str(t)] for t in tables])
        risk = (
            target_risk(statement, frozenset(n for cols in sensitive.values() for n in cols.values()))
            if sensitive
            else "none"
        )
        if risk != "refuse" and self._reads_beyond(analysis, names, bool(sensitive)):
            risk = "refuse"  # a function, an operator or a child table nothing tracked would invalidate
        if risk == "refuse":
            self.stats.query_uncacheable += 1  # a sensitive value may come out of an expression
            return self._run(statement, params)
        material = json.dumps(
            [analysis.normalised, params, tables, [[_s(e), _s(g)] for e, g in gens], self._identity()], default=str
        ).encode()
        # The parameters may be a card number: with an HMAC key, the digest is keyed with it.
        digest = (
            hmac.new(self.protector.key, material, hashlib.sha256).hexdigest()
            if self.protector.key
            else hashlib.sha256(material).hexdigest()
        )
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
        self._store(key, encoded, max(1, int(ttl * 1000)), [str(t) for t in tables], gens)
        return list(json.loads(encoded))  # the same types a hit returns

    def _store(self, key: str, encoded: str, ttl_ms: int, tables: list[str], gens: list[Any]) -> None:
        """Store a result, recorded in each table's result set (``T#q``, :func:`results_key`) that a
        reset or drop of the table purges; deleted again at once if one of those generations moved
        meanwhile (the purge may have run before the record was made: the key is dead anyway)."""
        expires = int(time.time() * 1000) + ttl_ms
        self.redis.set(key, encoded, px=ttl_ms)
        pipe = self.redis.pipeline(transaction=False)
        for name in tables:
            record = results_key(name, self.prefix)
            pipe.zadd(record, {key: expires})
            pipe.zremrangebyscore(record, "-inf", int(time.time() * 1000))  # expired results: gone already
            pipe.pexpire(record, ttl_ms, nx=True)
            pipe.pexpire(record, ttl_ms, gt=True)  # the set lives as long as its longest result
        for name in tables:
            pipe.hmget(table_tag(name, self.prefix), "epoch", "gen")
        now = pipe.execute()[4 * len(tables) :]
        if [[_s(e), _s(g)] for e, g in now] != [[_s(e), _s(g)] for e, g in gens]:
            self.redis.delete(key)

    def _reads_beyond(self, analysis: Analysis, names: set[tuple[str | None, str]], sensitive: bool) -> bool:
        """Whether the statement may read something no tracked table's generation covers, or a
        sensitive value through a whole row, as the catalogs say now (one round trip):

        * a function of a name it calls with any overload that is not IMMUTABLE (it may read any
          table, or the time); aggregates and window functions alike;
        * an operator of a name it uses whose function is not IMMUTABLE, outside ``pg_catalog``
          (the built-in STABLE ones, e.g. ``date = timestamptz``, follow session settings, which
          are in the result key), or VOLATILE anywhere;
        * ``x.f`` or ``(x).f`` where a function ``f`` takes a whole row: PostgreSQL reads it as
          ``f(x)`` (attribute notation); refused outright over a table with sensitive columns
          (``f`` sees them all), else ruled as a call of ``f``;
        * a relation read without ``ONLY`` that has plain inheritance children (not partitions):
          their rows are read too, and their writes move no generation.
        """
        row = self.conn.execute(
            "WITH whole_row AS (SELECT p.proname::text AS name, p.provolatile FROM pg_catalog.pg_proc p"
            "  JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) p.proargtypes[0]"
            " WHERE p.proname::text OPERATOR(pg_catalog.=) ANY (%(fields)s::text[])"
            "   AND p.pronargs OPERATOR(pg_catalog.>=) 1"
            "   AND p.pronargs OPERATOR(pg_catalog.-) p.pronargdefaults OPERATOR(pg_catalog.<=) 1"
            "   AND (t.typtype OPERATOR(pg_catalog.=) ANY ('{c,p,d}'::\"char\"[])"
            "        OR t.typrelid OPERATOR(pg_catalog.<>) 0))"
            " SELECT EXISTS (SELECT FROM pg_catalog.pg_proc p"
            "   WHERE p.proname::text OPERATOR(pg_catalog.=) ANY (%(calls)s::text[])"
            "     AND p.provolatile OPERATOR(pg_catalog.<>) 'i')"
            "  OR EXISTS (SELECT FROM whole_row w WHERE %(sensitive)s OR w.provolatile OPERATOR(pg_catalog.<>) 'i')"
            "  OR EXISTS (SELECT FROM pg_catalog.pg_operator o"
            "   JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) o.oprcode::oid"
            "   WHERE o.oprname::text OPERATOR(pg_catalog.=) ANY (%(operators)s::text[])"
            "     AND (p.provolatile OPERATOR(pg_catalog.=) 'v' OR (p.provolatile OPERATOR(pg_catalog.<>) 'i'"
            "          AND o.oprnamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace)))"
            "  OR EXISTS (SELECT FROM pg_catalog.pg_inherits i"
            "   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhparent"
            "   WHERE c.relkind OPERATOR(pg_catalog.<>) 'p'"
            "     AND i.inhparent OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.to_regclass(n)::oid"
            "         FROM pg_catalog.unnest(%(inherited)s::text[]) n)))",
            {
                "calls": sorted(analysis.calls),
                "fields": sorted(analysis.fields),
                "sensitive": sensitive,
                "operators": sorted(analysis.operators),
                "inherited": sorted(_quoted(n) for n in analysis.inherited if n in names),
            },
        ).fetchone()
        return bool(row and row[0])

    def _fresh_sensitive(self, tables: list[str | None], gens: list[Any]) -> None:
        """Forget the sensitive columns read before a table got a new epoch: a new epoch is a new
        copy, e.g. after ``asymm.track()`` again with more sensitive columns."""
        epochs = {str(t): _s(e) for t, (e, _g) in zip(tables, gens, strict=True)}
        if any(self._epochs.get(t, e) != e for t, e in epochs.items()):
            self._sensitive = None
            self._epochs = {}
        self._epochs.update(epochs)

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
                        (table.oid, table.sensitive),
                    ).fetchall()
                    self._sensitive[table.oid] = {int(str(n)): str(name) for n, name in found}
        return {oid: self._sensitive[oid] for oid in oids if self._sensitive.get(oid)}

    def _run_with_origins(
        self, statement: str, params: Any, sensitive: dict[int, dict[int, str]]
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
                    values[cols[i]] = self.protector.digest(
                        _as_json(result.get_value(n, i), result.ftype(i), result.fformat(i), r[i])
                    )
            out.append(values)
        return out, origins

    def _identity(self) -> list[str]:
        """Role, search_path and the settings that change what a statement returns (:data:`RESULT_SETTINGS`)
        of the application's session, read again after each of its statements (one may have changed
        them: SET ROLE inside a function, set_config), not on every hit."""
        if self._session is None:
            row = self.conn.execute(
                "SELECT current_user::text, pg_catalog.current_setting('search_path'),"
                " ARRAY(SELECT pg_catalog.current_setting(s, true) FROM pg_catalog.unnest(%s::text[]) s)",
                (list(RESULT_SETTINGS),),
            ).fetchone()
            assert row is not None
            self._session = [str(row[0]), str(row[1]), *[str(v) for v in list(row[2])]]  # type: ignore[call-overload]
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


def _numbered(statement: str) -> str:
    """psycopg placeholders are not SQL: ``$1`` in their place (the tables read do not depend on them)."""
    return _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else "$1", statement)


def _quoted(name: tuple[str | None, str]) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in name if p is not None)


def _s(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
