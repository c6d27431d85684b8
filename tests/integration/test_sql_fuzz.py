"""Fuzz test of the SQL API (issue 15): every argument of every function in schema asymm.

The functions are enumerated from pg_proc when the test runs, so a function added later is fuzzed
without touching this file; only trigger and event-trigger functions are left out (by return
type: they cannot be called directly).  Internal functions (name starting with ``_``) are fuzzed
too: EXECUTE on them is revoked from PUBLIC, but a superuser (the daemon, often) can reach them.

Each argument is drawn from values of its type that tend to break things: NULL, quotes,
semicolons, SQL injection attempts, odd Unicode (RTL overrides, emoji, combining marks,
non-characters), strings of 10k-100k characters, NaN, +-Infinity, the limits of every integer type,
odd intervals, empty, multi-dimensional and huge arrays, nonexistent and odd relation, function
and role names (dots, spaces and quotes inside quoted identifiers, dangling OIDs), plus the real
names of a small populated fixture (tables with a primary key and a foreign key, a view,
pg_stat_statements entries, annotations, a baseline, a tracked table) so that calls get past the
argument checks into the deep code paths.  Parameters whose name says what they hold (symbol,
scope, setting_name, query, ...) are given valid values often.

The property, per call:
* it succeeds, or raises a clean ERROR: a psycopg.Error with a SQLSTATE that is not an internal
  error (XX...), a system error (58...), an uncaught PL/Python exception (38000), a bare RAISE
  (P0001) or a statement timeout (the call hung), and whose message is one short line with no
  Python traceback or exception class in it;
* the backend survives (the connection still answers, the postmaster did not restart);
* a failed call leaves every asymm table as it was (row counts and a hash of the contents, read
  in the same transaction: this catches writes that escape the transaction);
* after any call the session holds no new prepared statement, HypoPG hypothetical index, temp
  object, LISTEN channel or advisory lock, and no setting differs from before.

Every example runs in a transaction that is rolled back, so the fixture stays the same for every
example and a failure replays.  Reproducible: hypothesis runs derandomized, with fixed example
counts.  To replay one function: ``ASYMM_FUZZ_ONLY='asymm.annotate(' pytest tests/integration/test_sql_fuzz.py``
(a substring of the signature); ``ASYMM_FUZZ_EXAMPLES=200`` runs more examples per function.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from psycopg import sql

# ---------------------------------------------------------------------------------------------
# How much fuzzing.  The whole file should run in about 2-3 minutes on 2 busy cores.

DEFAULT_EXAMPLES = 250
# Functions whose every call reads the whole catalog or every annotation (about 50-300 ms each):
# fewer examples, so that the file stays within its time budget.
HEAVY_EXAMPLES = {
    name: 80
    for name in (
        "baseline",
        "drift",
        "drift_accept",
        "drift_plan",
        "drift_sql",
        "drift_reconcile",
        "_drift_items",
        "_drift_snapshot",
        "_drift_compare",
        "coherence",
        "coherence_verdicts",
        "infer",
        "state_report",
        "record_state",
        "index_health",
        "status",
        "snapshot",
        "telemetry_retention",
        "ensure_telemetry_partitions",
        "grant_reader",
        "track",
    )
}
# Defects the fuzzer finds in functions that another part of issue 15 rewrites: reported (printed)
# but not failed, until that rewrite lands.  Remove an entry once its function passes.
KNOWN_ELSEWHERE: dict[str, str] = {}  # name -> why a defect the fuzz finds is fixed by other work
STATEMENT_TIMEOUT = "20s"
# Shrinking a failure can take minutes (each example is a database round trip, some are slow): off
# unless asked for with ASYMM_FUZZ_SHRINK=1 (the replay hint says so).
VERBOSE = bool(os.environ.get("ASYMM_FUZZ_VERBOSE"))  # print every refusal (to see what the fuzzer reaches)
PHASES = [Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get("ASYMM_FUZZ_SHRINK") else [])
MAX_MESSAGE = 300  # characters of a "short" error message

PROBLEM_STATES = {
    "XX000": "internal error",
    "XX001": "data corrupted",
    "XX002": "index corrupted",
    "38000": "uncaught PL/Python exception (external_routine_exception)",
    "P0001": "RAISE without an ERRCODE (raise_exception)",
    "P0004": "failed ASSERT",
    "57014": f"statement timeout ({STATEMENT_TIMEOUT}): the call hangs or takes far too long",
}
PYTHON_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Warning|Exit|Interrupt): ")

# ---------------------------------------------------------------------------------------------
# The fixture: a small schema that exercises every feature.

FIXTURE = r"""
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE TABLE fz_customer (id int PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE fz_orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES fz_customer,
                        total numeric, status text);
CREATE INDEX fz_orders_customer ON fz_orders (customer_id);
CREATE INDEX fz_orders_customer_dup ON fz_orders (customer_id);
CREATE VIEW fz_orders_view AS
    SELECT o.id, c.name, o.total FROM fz_orders o JOIN fz_customer c ON c.id = o.customer_id;
CREATE MATERIALIZED VIEW fz_totals AS SELECT customer_id, sum(total) AS total FROM fz_orders GROUP BY 1;
CREATE TABLE "Odd.Name" ("we ird" text PRIMARY KEY, "q""c" int);
CREATE TABLE fz_nopk (a int, b text);
CREATE FUNCTION public.fz_fn(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT $1';
INSERT INTO fz_customer SELECT g, 'name ' || g, 'c' || g || '@example.com' FROM generate_series(1, 50) g;
INSERT INTO fz_orders SELECT g, 1 + g % 50, g * 1.5, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'new' END
  FROM generate_series(1, 200) g;
INSERT INTO fz_nopk SELECT g % 5, 'v' || (g % 5) FROM generate_series(1, 20) g;
INSERT INTO "Odd.Name" VALUES ('a', 1), ('b;''"', 2);
REFRESH MATERIALIZED VIEW fz_totals;
ANALYZE;
"""

WORKLOAD = [
    ("SELECT * FROM fz_orders WHERE id = %s", (7,)),
    ("SELECT o.*, c.name FROM fz_orders o JOIN fz_customer c ON c.id = o.customer_id WHERE c.id = %s", (3,)),
    ("SELECT count(*) FROM fz_orders WHERE status = %s", ("paid",)),
    ("UPDATE fz_orders SET status = %s WHERE id = %s", ("new", 9)),
    ("SELECT * FROM fz_orders_view WHERE total > %s ORDER BY total", (10,)),
]

SETUP = r"""
SELECT asymm.snapshot();
SELECT asymm.annotate('fz_customer'::regclass, 'customer', 'local', 'Balance', 'O(log n)', '{create,query}');
SELECT asymm.annotate('fz_orders'::regclass, 'customer_id', 'customerRef', 'schema', 'Optimization', 'O(n)', '{query}');
SELECT asymm.annotate('public.fz_fn(integer)'::regprocedure, 'fn', 'global', 'Stabilization', 'O(1)', '{}');
SELECT asymm.annotate_query('SELECT * FROM fz_orders WHERE id = 1', 'orderById', 'local', 'Stabilization',
                            'O(log n)', '{query}');
SELECT asymm.annotate_query('SELECT * FROM fz_gone WHERE id = 1', 'gone', 'local', 'Balance', 'O(n)', '{query}');
SELECT asymm.propagate('fz_customer'::regclass);
SELECT asymm.baseline('fz_base');
SELECT asymm.baseline('fz_public', '{public}');
SELECT asymm.track('fz_customer', '{email}');
ALTER TABLE fz_orders ADD COLUMN note text;
DROP INDEX fz_orders_customer_dup;
SELECT asymm.record_state();
SELECT asymm.snapshot();
"""

# Reads every asymm table (row count + md5 of the rows) in the caller's snapshot, plus the list of
# asymm's tables (a table that appears or goes is a change too).  One static query, generated once
# from the fixture's tables: its plan is cached, where a loop of EXECUTEs was planned again on each
# of the tens of thousands of calls.
STATE_FUNCTION = r"""
DO $do$
DECLARE
    per_table text;
BEGIN
    SELECT string_agg(format('SELECT %L AS relname, count(*) || '' '' || md5(coalesce(string_agg(t::text, E''\n'''
                             ' ORDER BY t::text), '''')) AS state FROM %s t', c.relname, c.oid::regclass),
                      ' UNION ALL ' ORDER BY c.relname)
      INTO per_table
      FROM pg_class c WHERE c.relnamespace = 'asymm'::regnamespace AND c.relkind = 'r';
    EXECUTE format($create$
CREATE FUNCTION public.fz_asymm_tables() RETURNS jsonb LANGUAGE plpgsql AS $body$
BEGIN
    RETURN (SELECT jsonb_object_agg(relname, state) FROM (%s) s)
           || jsonb_build_object('', (SELECT string_agg(c.relname::text, ',' ORDER BY c.relname) FROM pg_class c
                                       WHERE c.relnamespace = 'asymm'::regnamespace AND c.relkind = 'r'));
END
$body$$create$, per_table);
END
$do$;
"""

SESSION_STATE = """
SELECT (SELECT coalesce(array_agg(name::text ORDER BY name), '{}') FROM pg_prepared_statements),
       (SELECT coalesce(array_agg(relname::text ORDER BY relname), '{}') FROM pg_class
         WHERE relnamespace = pg_my_temp_schema()),
       (SELECT coalesce(array_agg(c ORDER BY c), '{}') FROM pg_listening_channels() c),
       (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'),
       (SELECT jsonb_object_agg(name, setting) FILTER (WHERE source = 'session' OR setting IS DISTINCT FROM reset_val)
          FROM pg_settings),
       (SELECT count(*) FROM public.hypopg())
"""

# ---------------------------------------------------------------------------------------------
# Values.

ODD_STRINGS = [
    "",
    " ",
    "'",
    "''",
    '"',
    '""',
    ";",
    "';",
    "'; SELECT pg_sleep(30); --",
    "); DROP TABLE fz_orders; --",
    "$$",
    "$1",
    "$q$ x $q$",
    "\\",
    "\\'",
    "%",
    "%s",
    "%I",
    "%L %s %1$s",
    "{",
    "}",
    "{}",
    "{NULL}",
    "[",
    "(",
    ")",
    "NULL",
    "null",
    "-",
    "--",
    "/*",
    "*/",
    "0",
    "-1",
    "1e309",
    "NaN",
    "a.b",
    "a.b.c",
    '"a.b"',
    '"a b"',
    '"q""uote"',
    '"unterminated',
    "x" * 63,
    "y" * 64,
    "\t\n\r",
    "line1\nline2",
    "\u202egnp.exe",
    "שלום",
    "مرحبا",
    "e\u0301\u0301\u0301\u0301",
    "\ufeff",
    "\uffff",
    "\ufffe",
    "\U0010ffff",
    "\U0001f600",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "İ",
    "ß",
    "ǅ",
    "\u00a0",
    "\u2028",
    "\x7f",
    "\x01",
    "query 0000000000000000",
    "query ffffffffffffffff",
    "SELECT 1",
    "SELECT 1; SELECT 2",
    "select $1, $2",
    "WITH x AS (DELETE FROM fz_orders RETURNING *) SELECT * FROM x",
    "VALUES (1)",
    "TABLE fz_orders",
    "INSERT INTO fz_orders VALUES (1)",
    "EXPLAIN SELECT 1",
    "CREATE TABLE x ()",
    "DO $$ BEGIN END $$",
]
LONG_UNITS = ["x", "é", "'", ";", '"', "\U0001f600", "a\u0301", "\u202e", "select 1 ", "$", "(", "/*", "-- \n"]
ODD_RELATIONS = [
    "nope",
    "public.nope",
    "nope.nope",
    "a.b.c",
    '"Odd.Name"',
    'public."Odd.Name"',
    '"odd name"',
    '"q""uote"',
    '"a.b".c',
    "pg_catalog.pg_class",
    "pg_class",
    "information_schema.tables",
    "asymm.settings",
    "asymm.sync_outbox",
    "asymm.sync_tables",
    "asymm.annotation_entries",
    "asymm.query_stats",
    "asymm.setting_defaults",
    "pg_toast.pg_toast_1255",
    "0",
    "1",
    "1259",
    "99999999",
    "4294967295",
    "-",
]
ODD_FUNCTIONS = [
    "nope()",
    "public.nope(integer)",
    "now()",
    "pg_catalog.now()",
    "asymm.version()",
    "asymm.status()",
    "public.fz_fn(integer)",
    "public.fz_fn(text)",
    '"a.b"(int)',
    "fz_fn(integer, integer)",
    "count(*)",
    "asymm.track(regclass,text[])",
    "0",
    "1255",
    "99999999",
    "-",
]
ODD_INTERVALS = [
    "0",
    "1 microsecond",
    "-1 microsecond",
    "1 s",
    "-1 s",
    "15 minutes",
    "-15 minutes",
    "1 day",
    "1 month",
    "1000 years",
    "-1000 years",
    "178000000 years",
    "-178000000 years",
    "2147483647 days",
    "-2147483648 days",
    "P1Y2M3DT4H5M6S",
    "@ 1 minute ago",
    "1 day -25 hours",
    "infinity",
    "",
    "x",
]
ODD_TIMESTAMPS = ["now", "epoch", "infinity", "-infinity", "1999-12-31 23:59:59+00", "4713-01-01 BC", "294276-12-31"]
ODD_ACLITEMS = ["postgres=arwdDxt/postgres", "=r/postgres", "nope=r/postgres", "=/postgres", "x"]
INT_LIMITS = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
    "oid": (0, 2**32 - 1),
}

unicode_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40)
long_text = st.builds(
    lambda unit, n: unit * (n // len(unit)), st.sampled_from(LONG_UNITS), st.integers(10_000, 100_000)
)


@dataclass
class Pools:
    """Real names and values of the fixture, by kind; read from the database at test time."""

    relations: list[str]
    columns: list[str]
    functions: list[str]
    roles: list[str]
    settings: list[str]
    baselines: list[str]
    statements: list[str]
    queryids: list[int]
    uuids: list[str]
    fingerprints: list[str]
    jsons: list[str]
    schemas: list[str]
    oids: list[int]
    snapshots: list[list[Any]] = field(default_factory=list)
    hints: dict[str, list[Any]] = field(default_factory=dict)


def _snapshots(pools: Pools) -> st.SearchStrategy[Any]:
    """Schema snapshots as asymm._drift_snapshot() makes them (of several scopes, and the baselines')."""
    return st.sampled_from(pools.snapshots).map(json.dumps)


# Arguments fuzzed with a narrower domain than their type, each with its reason.
#   asymm._drift_compare(base, cur): internal (EXECUTE revoked from PUBLIC); its only caller passes two
#   asymm._drift_snapshot() results.  Validating arbitrary JSON there would mean re-stating the
#   snapshot's shape in Python; it is fuzzed with real snapshots (of different scopes, so that they
#   differ) and NULLs instead.
ARGUMENT_DOMAINS: dict[tuple[str, str], Callable[[Pools], st.SearchStrategy[Any]]] = {
    ("_drift_compare", "base"): _snapshots,
    ("_drift_compare", "cur"): _snapshots,
}


def _texts(pools: Pools, short: bool) -> st.SearchStrategy[str]:
    domain = pools.relations + pools.columns + pools.settings + pools.baselines + pools.statements + pools.schemas
    strings = [st.sampled_from(ODD_STRINGS), unicode_text, st.sampled_from(domain)]
    return st.one_of(*strings) if short else st.one_of(*strings, long_text)


def _scalar(type_name: str, pools: Pools, short: bool = False) -> st.SearchStrategy[Any]:
    """Python values for one base type (sent as text or numbers, cast to the type in SQL).

    short: no 10k-100k character strings and no deep JSON (the elements of a huge array: 20k of
    those would be gigabytes).
    """
    if type_name in INT_LIMITS:
        low, high = INT_LIMITS[type_name]
        extra = pools.oids if type_name == "oid" else pools.queryids if type_name == "bigint" else []
        return st.one_of(st.sampled_from([0, 1, -1, low, high, 2, 1000, *extra]), st.integers(low, high))
    if type_name in ("double precision", "real", "numeric"):
        special = [0.0, -0.0, 1.0, -1.0, 0.5, 1e308, -1e308, 5e-324, float("nan"), float("inf"), float("-inf")]
        allow = type_name != "numeric"
        return st.one_of(
            st.sampled_from(special if allow else special[:7]), st.floats(allow_nan=allow, allow_infinity=allow)
        )
    if type_name == "boolean":
        return st.booleans()
    if type_name == "interval":
        return st.one_of(
            st.sampled_from(ODD_INTERVALS),
            st.builds(
                lambda n, unit: f"{n} {unit}",
                st.integers(-(10**9), 10**9),
                st.sampled_from(["microseconds", "ms", "s", "minutes", "hours", "days", "years"]),
            ),
        )
    if type_name in ("jsonb", "json"):
        leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | unicode_text
        plain = st.recursive(
            leaves,
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(unicode_text, inner, max_size=4),
            max_leaves=12,
        ).map(json.dumps)
        deep = st.builds(
            lambda n: '{"Node Type": "Nested Loop", "Plans": [' * n + "{}" + "]}" * n, st.integers(100, 3000)
        )
        known = st.sampled_from(pools.jsons)
        return st.one_of(known, plain) if short else st.one_of(known, plain, deep)
    if type_name == "uuid":
        return st.one_of(st.sampled_from(pools.uuids), st.uuids().map(str))
    if type_name == "regclass":
        return st.sampled_from(pools.relations + ODD_RELATIONS)
    if type_name == "regprocedure":
        return st.sampled_from(pools.functions + ODD_FUNCTIONS)
    if type_name == "regrole":
        return st.sampled_from([*pools.roles, "nope", "-", "0", "public", '"odd role"', "pg_read_all_data"])
    if type_name in ("timestamp with time zone", "timestamp without time zone"):
        return st.sampled_from(ODD_TIMESTAMPS)
    if type_name == "aclitem":
        return st.sampled_from(ODD_ACLITEMS)
    if type_name == '"char"':
        return st.one_of(st.sampled_from(["r", "v", "i", "p", "", "é", "\U0001f600"]), unicode_text)
    return _texts(pools, short)  # text, name and anything else: the cast decides


@dataclass(frozen=True)
class SqlType:
    """A type as pg_type describes it: enough to build values and the SQL that casts them."""

    oid: int
    name: str  # format_type(): safe to paste into SQL
    elem: int  # element type of an array, else 0
    fields: tuple[tuple[str, int], ...]  # (attribute, type) of a composite, else ()


@dataclass(frozen=True)
class SqlFunction:
    """One function of schema asymm, from pg_proc."""

    oid: int
    signature: str
    name: str
    kind: str
    args: tuple[tuple[str | None, int], ...]
    defaults: int


Arg = tuple[str, list[Any]]  # SQL fragment with %s placeholders, and its parameters


class Catalog:
    """Types and strategies, built once from the fixture database."""

    def __init__(self, conn: psycopg.Connection[Any], pools: Pools) -> None:
        self.conn = conn
        self.pools = pools
        self.types: dict[int, SqlType] = {}

    def sql_type(self, oid: int) -> SqlType:
        if oid not in self.types:
            name, elem, typtype, relid = self.conn.execute(
                "SELECT format_type(t.oid, NULL), CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END,"
                " t.typtype, t.typrelid FROM pg_type t WHERE t.oid = %s",
                (oid,),
            ).fetchone()  # type: ignore[misc]
            fields: tuple[tuple[str, int], ...] = ()
            if typtype == "c":
                fields = tuple(
                    self.conn.execute(
                        "SELECT attname::text, atttypid::int FROM pg_attribute WHERE attrelid = %s AND attnum > 0"
                        " AND NOT attisdropped ORDER BY attnum",
                        (relid,),
                    ).fetchall()
                )
            self.types[oid] = SqlType(oid, name, int(elem), fields)
        return self.types[oid]

    def strategy(self, oid: int, hint: str | None, function: str = "") -> st.SearchStrategy[Arg]:
        """Values of one argument, as (SQL fragment, parameters); NULL always among them."""
        t = self.sql_type(oid)
        null: st.SearchStrategy[Arg] = st.just((f"NULL::{t.name}", []))
        domain = ARGUMENT_DOMAINS.get((function, hint or ""))
        if domain is not None:
            return st.one_of(null, domain(self.pools).map(lambda v: (f"%s::{t.name}", [v])))
        if t.fields:
            parts = [self.strategy(f_oid, f_name) for f_name, f_oid in t.fields]
            row = st.tuples(*parts).map(
                lambda args: (
                    "ROW(" + ", ".join(frag for frag, _ in args) + f")::{t.name}",
                    [p for _, ps in args for p in ps],
                )
            )
            return st.one_of(null, row, row, row, row, row, row, row)
        values: st.SearchStrategy[Any]
        if t.elem:
            elem = self._values(self.sql_type(t.elem), hint)
            small = self._values(self.sql_type(t.elem), hint, short=True)
            elem_or_null = st.one_of(st.none(), elem, elem, elem)
            values = st.one_of(
                st.just([]),
                st.lists(elem_or_null, min_size=1, max_size=6),
                st.lists(elem, max_size=4, unique_by=repr),
                st.lists(elem, max_size=4, unique_by=repr),
                st.builds(lambda a, b: [[a, b], [b, a]], small, small),  # two dimensions
                st.builds(lambda e, n: [e] * n, small, st.integers(1_000, 20_000)),
            )
        else:
            values = self._values(t, hint)
        given = values.map(lambda v: (f"%s::{t.name}", [v]))
        return st.one_of(null, given, given, given, given, given, given, given)  # NULL one time in 8

    def _values(self, t: SqlType, hint: str | None, short: bool = False) -> st.SearchStrategy[Any]:
        generic = _scalar(t.name, self.pools, short)
        good = self.pools.hints.get(hint or "")
        if good:
            # 4 in 5 valid (one_of() would flatten generic's branches and weigh each like good)
            valid = st.sampled_from(good)
            return st.integers(0, 4).flatmap(lambda i: generic if i == 0 else valid)
        return generic


# ---------------------------------------------------------------------------------------------
# Checks.


def _error_problem(exc: psycopg.Error) -> str | None:
    """Why an error is not a clean one, or None."""
    state = exc.sqlstate
    if not state:
        return f"no SQLSTATE ({type(exc).__name__}: {exc})"
    if state in PROBLEM_STATES:
        return PROBLEM_STATES[state]
    if state.startswith("58") or state.startswith("XX"):
        return "system or internal error"
    diag = exc.diag
    message = diag.message_primary or ""
    for part, text in (("message", message), ("detail", diag.message_detail or ""), ("hint", diag.message_hint or "")):
        if "Traceback" in text or "plpy." in text or "spiexceptions." in text or PYTHON_EXCEPTION.match(text):
            return f"Python internals in the {part}"
    if "\n" in message or "\r" in message:
        return "the message spans several lines"
    if len(message) > MAX_MESSAGE:
        return f"the message is {len(message)} characters long"
    return None


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class Fuzzer:
    """Runs one example (one call) and checks the property."""

    def __init__(self, dsn: str, admin_dsn: str) -> None:
        self.dsn = dsn
        self.admin_dsn = admin_dsn
        self.conn = self._connect()
        self.session = self._session_state()
        self.outcomes: dict[str, list[int]] = {}  # signature -> [succeeded, refused by asymm, refused input]
        self.postmaster = self._postmaster_start()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, options=f"-c statement_timeout={STATEMENT_TIMEOUT}")

    def _postmaster_start(self) -> Any:
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            return admin.execute("SELECT pg_postmaster_start_time()").fetchone()

    def _session_state(self) -> tuple[Any, ...]:
        row = self.conn.execute(SESSION_STATE).fetchone()
        assert row is not None
        return tuple(row)

    def call(self, fn: SqlFunction, args: list[Arg]) -> None:
        """One call inside a transaction that is rolled back; raises AssertionError on a defect."""
        # The name comes from regprocedure and the fragments from format_type(): the values are parameters.
        verb = "CALL " if fn.kind == "p" else "SELECT * FROM "
        call_sql = verb + f"{fn.signature.split('(')[0]}({', '.join(frag for frag, _ in args)})"
        params = [p for _, ps in args for p in ps]
        shown = f"{call_sql} with {_short(params, 400)}"
        try:
            with self.conn.transaction(force_rollback=True):
                before = self.conn.execute("SELECT public.fz_asymm_tables()").fetchone()
                error: psycopg.Error | None = None
                try:
                    with self.conn.transaction():
                        cur = self.conn.execute(call_sql, params)
                        if cur.description is not None:
                            cur.fetchall()
                except psycopg.Error as exc:
                    if self.conn.closed or self.conn.broken:
                        raise
                    error = exc
                tally = self.outcomes.setdefault(fn.signature, [0, 0, 0])
                if error is None:
                    tally[0] += 1
                else:
                    problem = _error_problem(error)
                    rejected = self._input_rejected(args, params)
                    tally[2 if rejected else 1] += 1
                    if VERBOSE:
                        print(
                            f"  refused{' (input)' if rejected else ''}: [{error.sqlstate}] "
                            f"{_short(error.diag.message_primary, 150)}"
                        )
                    if problem and error.sqlstate not in PROBLEM_STATES and rejected:
                        problem = None  # PostgreSQL refused the argument value itself, before the call
                    assert problem is None, (
                        f"{fn.signature}: {problem}: [{error.sqlstate}] {_short(str(error), 600)}\n  call: {shown}"
                    )
                    after = self.conn.execute("SELECT public.fz_asymm_tables()").fetchone()
                    assert before == after, f"{fn.signature}: a failed call changed asymm tables\n  call: {shown}"
        except psycopg.OperationalError as exc:
            if self.conn.closed or self.conn.broken:
                self.conn = self._connect()
                raise AssertionError(f"{fn.signature}: the backend died ({exc})\n  call: {shown}") from exc
            raise
        state = self._session_state()
        if state != self.session:
            names = (
                "prepared statements",
                "temp objects",
                "LISTEN channels",
                "advisory locks",
                "settings",
                "hypothetical indexes",
            )
            changed = [
                f"{n}: {_short(a, 200)} -> {_short(b, 200)}"
                for n, a, b in zip(names, self.session, state, strict=True)
                if a != b
            ]
            self._clean_session()
            raise AssertionError(f"{fn.signature}: the call left session state behind: {changed}\n  call: {shown}")

    def _input_rejected(self, args: list[Arg], params: list[Any]) -> bool:
        """Whether the argument values alone fail their casts (PostgreSQL's input functions)."""
        if not args:
            return False
        try:
            with self.conn.transaction():
                self.conn.execute("SELECT " + ", ".join(frag for frag, _ in args), params)
        except psycopg.Error:
            return True
        return False

    def _clean_session(self) -> None:
        self.conn.execute("DEALLOCATE ALL")
        self.conn.execute("DISCARD TEMP")
        self.conn.execute("UNLISTEN *")
        self.conn.execute("SELECT pg_advisory_unlock_all(), public.hypopg_reset()")
        self.conn.execute("RESET ALL")
        self.session = self._session_state()

    def backend_alive(self) -> None:
        assert self.conn.execute("SELECT 1").fetchone() == (1,)
        assert self._postmaster_start() == self.postmaster, "the server restarted: a backend crashed"


# ---------------------------------------------------------------------------------------------
# The test.

FUNCTIONS = """
SELECT p.oid::int, p.oid::regprocedure::text, p.proname::text, p.prokind::text,
       p.proargtypes::oid[]::int[], p.proargnames::text[], p.pronargs, p.pronargdefaults
  FROM pg_proc p
 WHERE p.pronamespace = 'asymm'::regnamespace
   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
   AND p.prokind IN ('f', 'p')
 ORDER BY p.proname, p.oid::regprocedure::text
"""


def _functions(conn: psycopg.Connection[Any]) -> list[SqlFunction]:
    found = []
    for oid, signature, name, kind, argtypes, argnames, nargs, ndefaults in conn.execute(FUNCTIONS).fetchall():
        names = list(argnames or []) + [None] * nargs
        args = tuple(zip(names[:nargs], argtypes, strict=True))
        found.append(SqlFunction(oid, signature, name, kind, args, ndefaults))
    return found


def _pools(conn: psycopg.Connection[Any]) -> Pools:
    def col(query: str) -> list[Any]:
        return [r[0] for r in conn.execute(query).fetchall()]

    relations = col(
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
        " AND c.relkind IN ('r', 'v', 'm', 'i', 'p')"
    )
    columns = col(
        "SELECT DISTINCT attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND c.relkind IN ('r', 'v')"
    )
    statements = col("SELECT query FROM pg_stat_statements WHERE query ~* 'fz_' AND query !~* 'asymm'")
    plan = conn.execute("SELECT asymm.generic_plan('SELECT * FROM fz_orders WHERE id = $1')").fetchone()
    jsons = [
        json.dumps(plan[0] if plan else {}),
        "{}",
        "[]",
        "null",
        "1",
        '"x"',
        '{"Plans": 5}',
        '{"Plans": [1]}',
        '{"Node Type": 5}',
        '{"Node Type": "Nested Loop", "Plans": [{}, {}, {}]}',
        '[{"kind": "table"}]',
        '[{"kind": "table", "key": 1, "identity": null, "props": []}]',
        "[1, 2]",
        '{"symbol": "a", "lineage": "abc", "evidence": "x", "confidence": "y", "target_names": 5}',
        '{"symbol": "a", "scope": "local", "regime": "Balance", "cost": "O(1)", "source": "user",'
        ' "lineage": [1], "confidence": 1, "evidence": 1, "target_type": "table", "target_names": [1]}',
        *[
            r[0]
            for r in conn.execute(
                "SELECT asymm._drift_snapshot('{public}')::text"
                " UNION ALL SELECT snapshot::text FROM asymm.drift_baselines"
            ).fetchall()
        ],
        *[
            json.dumps(r[0])
            for r in conn.execute("SELECT to_jsonb(e) FROM asymm.annotation_entries e LIMIT 3").fetchall()
        ],
    ]
    vocab = conn.execute("SELECT asymm.annotation_vocabulary()").fetchone()[0]  # type: ignore[index]
    pools = Pools(
        relations=relations,
        columns=columns,
        functions=col(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
            " AND p.proname LIKE 'fz%'"
        ),
        roles=col("SELECT rolname::text FROM pg_roles WHERE rolname = current_user OR rolname LIKE 'fz_%'"),
        settings=col("SELECT name FROM asymm.setting_defaults"),
        baselines=col("SELECT name FROM asymm.drift_baselines"),
        statements=statements,
        queryids=col("SELECT queryid FROM pg_stat_statements WHERE queryid IS NOT NULL LIMIT 20"),
        uuids=col("SELECT id::text FROM asymm.annotation_entries"),
        fingerprints=col(
            "SELECT 'query ' || target_names[1] FROM asymm.annotation_entries WHERE target_type = 'query'"
        ),
        jsons=jsons,
        schemas=["public", "asymm", "pg_catalog", "nope", "Odd.Name", ""],
        snapshots=[
            r[0]
            for r in conn.execute(
                "SELECT asymm._drift_snapshot(v.s) FROM (VALUES (NULL::text[]), ('{public}'), ('{}'), ('{nope}')) v(s)"
                " UNION ALL SELECT snapshot FROM asymm.drift_baselines"
            ).fetchall()
        ],
        oids=[*col("SELECT oid::int FROM pg_class WHERE relnamespace = 'public'::regnamespace"), 1259, 1255, 2615, 0],
    )
    setting_values = [
        "0",
        "-1",
        "1",
        "true",
        "off",
        "2 s",
        "-1 s",
        "1000000 years",
        "drop",
        "hmac",
        "a{b}c",
        "NaN",
        "Infinity",
        "1e300",
        "",
        "x",
    ]
    pools.hints = {
        "symbol": ["dataEntity", "x", "_a1", "A" * 63],
        "scope": vocab["scope"],
        "regime": vocab["regime"],
        "cost": vocab["cost"],
        "source": vocab["source"],
        "lineage": ["create", "query", "update", "delete"],
        "target_type": vocab["target_type"],
        "field": ["scope", "cost", "source", "regime"],
        "value": vocab["scope"] + vocab["cost"] + vocab["source"],
        "setting_name": pools.settings,
        "new_value": setting_values,
        "name": pools.baselines,
        "baseline_name": pools.baselines,
        "column_name": columns,
        "columns": columns,
        "sensitive": columns,
        "query": statements,
        "target": relations + pools.fingerprints + ["public.fz_fn(integer)", "fz_fn"],
        "schemas": ["public", "Odd.Name", "nope"],
        "pgss_schema": ["public"],
        "lock_timeout": ["2s", "0", "-1"],
        "target_names": [["public", "fz_customer"], ["public", "fz_orders", "customer_id"]],
        "target_args": [[], ["integer"]],
        "entry_id": pools.uuids,
        "confidence": [0.0, 0.5, 1.0],
        "rel": relations,
        "tables": relations,
        "grantee": pools.roles,
        "classid": [1259, 1255],
        "objid": pools.oids,
        "objsubid": [0, 1, 2, 3],
    }
    return pools


@pytest.fixture
def fuzz_db(make_db: Callable[..., str], admin_dsn: str) -> Iterator[str]:
    """The fixture database: schema, data, workload, annotations, baselines, a tracked table."""
    dsn = make_db()
    role = f"fz_reader_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        conn.execute(FIXTURE)
        conn.execute("SELECT pg_stat_statements_reset()")
        for _ in range(3):
            for query, params in WORKLOAD:
                conn.execute(query, params)  # type: ignore[arg-type]
        conn.execute(SETUP)
        conn.execute(STATE_FUNCTION)
    try:
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}").format(
                    sql.Literal(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])
                )
            )
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]))
                )
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _fuzz_one(fuzzer: Fuzzer, catalog: Catalog, fn: SqlFunction, examples: int) -> None:
    """Hypothesis over one function's arguments (the defaulted ones are sometimes left out)."""
    strategies = [catalog.strategy(oid, name, fn.name) for name, oid in fn.args]
    given_args = st.integers(len(fn.args) - fn.defaults, len(fn.args)).flatmap(lambda n: st.tuples(*strategies[:n]))

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        report_multiple_bugs=False,
        phases=PHASES,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(args=given_args)
    def check(args: tuple[Arg, ...]) -> None:
        fuzzer.call(fn, list(args))

    check()


def test_every_sql_function_survives_fuzzed_arguments(fuzz_db: str, admin_dsn: str) -> None:
    fuzzer = Fuzzer(fuzz_db, admin_dsn)
    catalog = Catalog(fuzzer.conn, _pools(fuzzer.conn))
    functions = _functions(fuzzer.conn)
    assert len(functions) > 50, "the functions of schema asymm were not found"
    only = os.environ.get("ASYMM_FUZZ_ONLY")
    override = os.environ.get("ASYMM_FUZZ_EXAMPLES")
    failures: list[str] = []
    known: list[tuple[str, str]] = []
    timings: list[tuple[float, str]] = []
    for fn in functions:
        if only and only not in fn.signature:
            continue
        examples = int(override) if override else HEAVY_EXAMPLES.get(fn.name, DEFAULT_EXAMPLES)
        started = time.monotonic()
        try:
            _fuzz_one(fuzzer, catalog, fn, examples)
        except Exception as exc:  # an AssertionError, or hypothesis' Flaky* wrapping one
            notes = "\n".join(getattr(exc, "__notes__", []))
            report = (
                f"{exc}\n{notes}\n  replay: ASYMM_FUZZ_ONLY='{fn.signature}' ASYMM_FUZZ_SHRINK=1"
                " pytest tests/integration/test_sql_fuzz.py"
            )
            if fn.name in KNOWN_ELSEWHERE:
                known.append((fn.name, report))
            else:
                failures.append(report)
        timings.append((time.monotonic() - started, fn.signature))
        fuzzer.backend_alive()
    slowest = ", ".join(f"{sig} {t:.1f}s" for t, sig in sorted(timings, reverse=True)[:5])
    print(f"fuzzed {len(timings)} functions; slowest: {slowest}")
    print("calls per function: succeeded / refused by asymm / argument refused by its type")
    for signature, (good, refused, bad_input) in sorted(fuzzer.outcomes.items()):
        print(f"  {good:4} {refused:4} {bad_input:4}  {signature}")
    for name, report in known:
        print(f"known defect, fixed elsewhere ({KNOWN_ELSEWHERE[name]}):\n{report}")
    assert not failures, f"{len(failures)} function(s) broke the property:\n\n" + "\n\n".join(failures)


def test_the_fuzzer_enumerates_internal_functions_and_skips_only_triggers(fuzz_db: str) -> None:
    """The enumeration is what makes new functions fuzzed: it must see internal ones, and only
    trigger and event-trigger functions (which cannot be called) may be left out."""
    with psycopg.connect(fuzz_db, autocommit=True) as conn:
        fuzzed = {fn.signature for fn in _functions(conn)}
        every = {
            r[0]
            for r in conn.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'asymm'::regnamespace"
                " AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)"
            ).fetchall()
        }
    assert fuzzed == every
    assert "asymm._annotation_problem(jsonb)" in fuzzed
    assert "asymm.annotate(regclass,text,text,text,text,text[])" in fuzzed


def test_the_error_check_tells_clean_errors_from_internal_ones(fuzz_db: str) -> None:
    """The classifier itself: a PL/Python traceback, an internal error and a bare RAISE are caught,
    an ERROR with an errcode and a one-line message passes."""
    with psycopg.connect(fuzz_db, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION pg_temp.py_fail() RETURNS int LANGUAGE plpython3u AS $$ return 1 / 0 $$")
        cases = {
            "SELECT pg_temp.py_fail()": "uncaught PL/Python",
            "DO $$ BEGIN RAISE EXCEPTION 'bare'; END $$": "RAISE without",
            "DO $$ BEGIN RAISE EXCEPTION 'a' USING ERRCODE = 'XX000'; END $$": "internal error",
            "DO $$ BEGIN RAISE EXCEPTION E'two\\nlines' USING ERRCODE = '22023'; END $$": "several lines",
            "DO $$ BEGIN RAISE EXCEPTION '%', repeat('x', 1000) USING ERRCODE = '22023'; END $$": "characters long",
            "DO $$ BEGIN RAISE EXCEPTION 'ValueError: x' USING ERRCODE = '22023'; END $$": "Python internals",
            "DO $$ BEGIN RAISE EXCEPTION 'fine' USING ERRCODE = '22023', HINT = 'h'; END $$": None,
        }
        for statement, expected in cases.items():
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(statement)
            problem = _error_problem(caught.value)
            if expected is None:
                assert problem is None, statement
            else:
                assert problem is not None and expected in problem, (statement, problem)
