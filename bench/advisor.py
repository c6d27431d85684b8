#!/usr/bin/env python3
"""Index advisor benchmark (issue 18): asymm's advisor against no indexes, pg_qualstats and an expert's set.

Usage: ``.venv/bin/python bench/advisor.py [--dsn DSN] [--scale 1.0] [--only WORKLOAD] [--quick]``
against a throwaway server started with ``asymm sandbox up --preload pg_qualstats --shared-buffers 3GB``
(the bench refuses to run without pg_qualstats preloaded, and says what to set when the buffer
pool is small).  It creates and drops databases ``asymm_bench_adv_*``.

Per workload (``bench/advisor_workloads/``: tpch, joblike, saas, events, and the hold-out
timeseries), in one run:

1. create the database, load it (generate_series, only primary keys), VACUUM ANALYZE; autovacuum
   is off on its tables so that statistics do not change between the index sets;
2. reset pg_stat_statements and pg_qualstats, run one pass of the workload (the "feed", with
   ``pg_qualstats.sample_rate = 1``): what both tools observe;
3. compute four index sets: none; pg_qualstats (``pg_qualstats_index_advisor(min_filter => 0,
   min_selectivity => 0)``: its defaults, min_filter 1000 and min_selectivity 30, leave out quals
   that filter few rows or are unselective, so the permissive call, everything pg_qualstats can
   offer, is the one the goals use; when the defaults give another set it is measured too, as
   ``qs_defaults``); the module's ``EXPERT``
   (written before asymm's advisor ever ran on the workload); asymm (``advise(conn)``, default
   settings: it plans with the parameter values pg_qualstats observed, asymm.advisor.observed);
   when it differs, asymm without those values (``asymm_stats``, ``--no-observed-values``: only
   the column statistics), measured beside it;
4. for each set, a file-level copy of the loaded database (``CREATE DATABASE ... TEMPLATE``: same
   data, statistics and OIDs) in which every definition is executed (each one PostgreSQL rejects
   is recorded), then ANALYZE of the tables that got an expression index; index count and real
   storage (pg_relation_size of the created indexes); all copies prewarmed;
5. an interleaved replay (:func:`replay`): a fixed seeded parameter list identical for every set
   and round, a warm-up round, then per round and shape each set's block back to back in a
   rotating order; the median over ``--rounds`` rounds per shape of the client wall time, and
   pg_stat_statements execution time per shape beside it;
6. print the table, per shape times, and the goals check.  A read shape over 1.10x of its
   no-index time whose custom and generic plans (:func:`shape_plans`) are those of the no-index
   copy is printed as "same plans as with no index" and not counted against the
   slower-statements goal: the set did not change how it runs (a full scan run once per round).

Then 1,000 distinct statements over the saas schema through the advisor: its runtime (goal < 30 s).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from advisor_workloads import Shape, Workload, load, names
from psycopg import sql
from psycopg.types.numeric import Int8Dumper

from asymm.advisor.advise import advise, settings_from_db
from asymm.advisor.constants import sample_constants
from asymm.advisor.workload import Statement
from asymm.db import connect, one_line, resolve_dsn, with_dbname

DB_PREFIX = "asymm_bench_adv_"
FEED_SEED = 7
REPLAY_SEED = 1009
WANT_SHARED_BUFFERS = 2 * 2**30
FAST_SET_SECONDS = 2.0  # replay.__doc__: the indexed sets' rounds are raised until they record this much
QUALSTATS_CALL = "SELECT pg_qualstats_index_advisor(min_filter => 0, min_selectivity => 0)"
QUALSTATS_DEFAULT_CALL = "SELECT pg_qualstats_index_advisor()"


# -- connections ----------------------------------------------------------------------------------


def workload_conn(dsn: str, *, tracked: bool = True) -> psycopg.Connection[Any]:
    """A connection that runs the workload's text as an application would.

    ``$n`` placeholders are sent as they are (RawCursor), so pg_stat_statements shows the shapes'
    own text; every Python int is sent as int8 (psycopg would pick int2, int4 or int8 by value,
    and the parameter type is part of the queryid, which would split one shape into several
    entries).  ``tracked=False`` keeps this connection's statements out of pg_stat_statements.
    """
    options = "-c pg_qualstats.sample_rate=1 -c statement_timeout=600s"
    if not tracked:
        options += " -c pg_stat_statements.track=none"
    conn = psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.RawCursor, options=options)
    conn.adapters.register_dumper(int, Int8Dumper)
    return conn


def control(dsn: str) -> psycopg.Connection[Any]:
    """The bench's own connection (DDL, resets, sizes): kept out of pg_stat_statements and pg_qualstats."""
    return psycopg.connect(dsn, autocommit=True, options="-c pg_stat_statements.track=none -c pg_qualstats.enabled=off")


def create_db(admin: str, name: str) -> None:
    with control(admin) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_db(admin: str, name: str) -> None:
    with control(admin) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- the server -----------------------------------------------------------------------------------


def check_server(admin: str) -> dict[str, str]:
    """Versions to print; exits with one line when pg_qualstats is not preloaded or an extension is missing."""
    with control(admin) as conn:
        libs = str(conn.execute("SHOW shared_preload_libraries").fetchone()[0])  # type: ignore[index]
        if "pg_qualstats" not in [x.strip() for x in libs.split(",")]:
            sys.exit(
                "bench/advisor.py: pg_qualstats is not in shared_preload_libraries"
                f" ({libs or 'empty'}): start the server with it, e.g."
                " 'asymm sandbox up --dir DIR --preload pg_qualstats --shared-buffers 3GB'"
            )
        available = dict(
            conn.execute(
                "SELECT name, default_version FROM pg_available_extensions"
                " WHERE name IN ('hypopg', 'pg_qualstats', 'pg_prewarm', 'asymm', 'pg_stat_statements')"
            ).fetchall()
        )
        lacking = {"hypopg", "pg_qualstats", "pg_prewarm", "asymm", "pg_stat_statements"} - set(available)
        if lacking:
            sys.exit(f"bench/advisor.py: extensions not available on the server: {', '.join(sorted(lacking))}")
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('shared_buffers'),"
            " (SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers')"
        ).fetchone()
    assert row is not None
    if int(row[2]) < WANT_SHARED_BUFFERS:
        print(
            f"WARNING: shared_buffers is {row[1]}: a workload's tables and an index set (about 1 GB at scale 1)"
            " do not stay cached, so the sets' replays also measure reads from outside the buffer pool."
            " Use 'asymm sandbox up --shared-buffers 3GB' (new sandbox) or ALTER SYSTEM SET shared_buffers ="
            " '3GB' and restart the server."
        )
    return {
        "server": str(row[0]),
        "shared_buffers": str(row[1]),
        "hypopg": str(available["hypopg"]),
        "pg_qualstats": str(available["pg_qualstats"]),
    }


# -- load, feed, advice -----------------------------------------------------------------------------


def load_db(dsn: str, wl: Workload, scale: float) -> float:
    """Extensions, schema and data, autovacuum off on every table, VACUUM ANALYZE; seconds taken."""
    started = time.perf_counter()
    with control(dsn) as conn:
        for ext in ("pg_stat_statements", "hypopg", "pg_qualstats", "pg_prewarm"):
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
        conn.execute("CREATE EXTENSION IF NOT EXISTS asymm CASCADE")
        conn.execute(wl.schema(scale))
        for (table,) in conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        ).fetchall():
            conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = off)").format(sql.Identifier(str(table))))
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def param_lists(shapes: list[Shape], seed: int) -> list[list[tuple[Any, ...]]]:
    """``weight`` parameter tuples per shape, from one seeded generator per shape (order-independent)."""
    out = []
    for k, shape in enumerate(shapes):
        rng = random.Random(seed * 1_000_003 + k)
        out.append([shape.params(rng) for _ in range(shape.weight)])
    return out


def run_block(conn: psycopg.Connection[Any], shape: Shape, params: list[tuple[Any, ...]]) -> float:
    """Seconds for running ``shape`` once per parameter tuple, results fetched."""
    started = time.perf_counter()
    for values in params:
        cur = conn.execute(shape.sql, values)
        if cur.description is not None:
            cur.fetchall()
    return time.perf_counter() - started


def feed(dsn: str, shapes: list[Shape]) -> float:
    """One pass of the workload, what pg_stat_statements and pg_qualstats record (after a reset)."""
    with control(dsn) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SELECT pg_qualstats_reset()")
    return feed_shapes(dsn, shapes)[0]


def feed_shapes(dsn: str, shapes: list[Shape]) -> tuple[float, int]:
    """Run each shape's feed block; after each, sample its grammar constants as the daemon would.

    Why after each block: pg_stat_activity shows only a session's last statement, so a second
    (untracked) connection sees the feeding one idle with that shape's raw text and stores the
    constants normalization took (``payload->>'session'``, asymm.advisor.constants).  The sampling
    is outside the timed blocks.  Returns (seconds in the blocks, statements whose constants were stored).
    """
    spent = 0.0
    stored = 0
    with workload_conn(dsn) as conn, control(dsn) as sampler:
        for shape, params in zip(shapes, param_lists(shapes, FEED_SEED), strict=True):
            spent += run_block(conn, shape, params)
            stored += int(sample_constants(sampler)["stored"])
    return spent, stored


def shape_queryids(dsn: str, shapes: list[Shape]) -> list[int | None]:
    """Each shape's queryid (EXPLAIN VERBOSE's "Query Identifier", same parameter types as the replay)."""
    out: list[int | None] = []
    with workload_conn(dsn, tracked=False) as conn:
        for shape, params in zip(shapes, param_lists(shapes, FEED_SEED), strict=True):
            row = conn.execute("EXPLAIN (VERBOSE, FORMAT JSON) " + shape.sql, params[0]).fetchone()
            qid = row[0][0].get("Query Identifier") if row else None
            out.append(int(qid) if qid is not None else None)
    return out


def qualstats_advice(dsn: str) -> dict[str, Any]:
    """pg_qualstats' index advisor, permissive (what is measured) and with its defaults (printed)."""
    out: dict[str, Any] = {}
    with control(dsn) as conn:
        for key, call in (("permissive", QUALSTATS_CALL), ("defaults", QUALSTATS_DEFAULT_CALL)):
            started = time.perf_counter()
            try:
                row = conn.execute(call).fetchone()
                doc = row[0] if row else {}
                result = json.loads(doc) if isinstance(doc, str) else dict(doc or {})
            except psycopg.Error as exc:
                result = {"indexes": [], "unoptimised": [], "error": one_line(str(exc))}
            result["runtime_s"] = round(time.perf_counter() - started, 3)
            out[key] = result
    return out


def asymm_advice(dsn: str, observed: bool = True) -> dict[str, Any]:
    """asymm's advice with its default settings; ``observed=False``: without the parameter values
    pg_qualstats observed (``asymm advise --no-observed-values``), measured beside it."""
    with connect(dsn) as conn:  # as `asymm advise` connects
        started = time.perf_counter()
        settings = settings_from_db(conn)
        settings.observed_values = observed
        result = advise(conn, settings)
        result["wall_s"] = round(time.perf_counter() - started, 3)
    return result


# -- one index set ----------------------------------------------------------------------------------


@dataclass
class SetResult:
    """What one index set built and how the workload ran with it."""

    name: str
    definitions: list[str]
    created: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    storage_bytes: int = 0
    build_s: float = 0.0
    rounds: int = 0
    shape_ms: list[float] = field(default_factory=list)  # median over rounds of each shape's block, client
    plans: list[str | None] = field(default_factory=list)  # each read shape's plans (shape_plans)
    server_ms: list[float | None] = field(default_factory=list)  # pg_stat_statements exec time per round

    def total(self, shapes: list[Shape], writes: bool | None = None) -> float:
        return sum(ms for s, ms in zip(shapes, self.shape_ms, strict=True) if writes is None or s.write == writes)


def public_indexes(conn: psycopg.Connection[Any]) -> set[int]:
    rows = conn.execute(
        "SELECT i.indexrelid FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
        " WHERE c.relnamespace = 'public'::regnamespace"
    ).fetchall()
    return {int(r[0]) for r in rows}


def build(dsn: str, result: SetResult) -> list[int]:
    """Create the set's indexes (each refusal recorded), ANALYZE tables that got an expression index."""
    started = time.perf_counter()
    with control(dsn) as conn:
        before = public_indexes(conn)
        for definition in result.definitions:
            try:
                conn.execute(definition)
            except psycopg.Error as exc:
                result.rejected.append((definition, one_line(str(exc))))
        created = sorted(public_indexes(conn) - before)
        for (table,) in conn.execute(
            "SELECT DISTINCT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
            " WHERE i.indexrelid = ANY(%s) AND i.indexprs IS NOT NULL",
            (created,),
        ).fetchall():
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(str(table))))
        row = conn.execute(
            "SELECT coalesce(sum(pg_relation_size(oid)), 0) FROM pg_class WHERE oid = ANY(%s)", (created,)
        ).fetchone()
    result.created = len(created)
    result.storage_bytes = int(row[0]) if row else 0
    result.build_s = time.perf_counter() - started
    return created


def prewarm(dsn: str) -> tuple[int, int]:
    """Load the database's relations into shared_buffers; (database bytes, pool bytes)."""
    with control(dsn) as conn:
        row = conn.execute(
            "SELECT pg_database_size(current_database()),"
            " (SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers')"
        ).fetchone()
        conn.execute(
            "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
            " AND c.relkind IN ('r', 'i', 't', 'm') AND c.relpersistence = 'p'"
        )
    assert row is not None
    return int(row[0]), int(row[1])


def server_times(dsn: str, queryids: list[int | None]) -> list[float | None]:
    """Total execution ms per shape since the last reset, from pg_stat_statements (by queryid)."""
    with control(dsn) as conn:
        rows = conn.execute(
            "SELECT queryid, sum(total_exec_time) FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) GROUP BY queryid"
        ).fetchall()
    by_id = {int(q): float(t) for q, t in rows if q is not None}
    return [by_id.get(q) if q is not None else None for q in queryids]


def shape_plans(dsn: str, shapes: list[Shape]) -> list[str | None]:
    """Each read shape's custom and generic plans (``EXPLAIN (COSTS OFF)``, the replay's first
    parameters); None for a write.

    Why: a read shape that runs a sequential scan in every set can come out over 1.10x of its
    no-index time by noise alone (one call per round, a shared machine).  Its plans, compared
    with the no-index copy's, tell whether the set changed how it runs.  Both plans, because the
    replay's connections prepare a statement after five calls and PostgreSQL may then switch to
    the generic plan.
    """
    params = param_lists(shapes, REPLAY_SEED)
    out: list[str | None] = []
    with workload_conn(dsn, tracked=False) as conn:
        conn.prepare_threshold = None  # its own PREPARE only
        for shape, values in zip(shapes, params, strict=True):
            if shape.write:
                out.append(None)
                continue
            first = values[0]
            custom = "\n".join(r[0] for r in conn.execute("EXPLAIN (COSTS OFF) " + shape.sql, first).fetchall())
            literals = sql.SQL(", ").join(sql.Literal(v) for v in first).as_string(conn)
            try:
                conn.execute("PREPARE bench_plan AS " + shape.sql)
            except psycopg.Error as exc:
                generic = f"(no generic plan: {one_line(str(exc))})"
            else:
                conn.execute("SET plan_cache_mode = force_generic_plan")
                rows = conn.execute(f"EXPLAIN (COSTS OFF) EXECUTE bench_plan({literals})").fetchall()
                generic = "\n".join(r[0] for r in rows)
                conn.execute("DEALLOCATE bench_plan")
                conn.execute("RESET plan_cache_mode")
            out.append(custom + "\n--- generic ---\n" + generic)
    return out


def block_order(names: list[str], j: int) -> list[str]:
    """The ``j``-th order of the sets' blocks: rotated, and reversed every other cycle, so that each
    set runs first, last and between as often over ``2 x len(names)`` blocks."""
    shift = j % len(names)
    order = names[shift:] + names[:shift]
    return order[::-1] if (j // len(names)) % 2 else order


def replay(
    dsns: dict[str, str],
    shapes: list[Shape],
    queryids: list[int | None],
    results: dict[str, SetResult],
    rounds: int,
    max_round_s: float,
    feed_s: float,
) -> None:
    """Interleaved replay of every set, each in its own copy of the database.

    Per round and per shape, each set runs the shape's block (its ``weight`` calls, the same
    parameters in every set and every round) back to back, in an order that rotates
    (:func:`block_order`): a burst of load from other jobs on this shared machine hits the sets
    alike.  A warm-up round first (not recorded) decides each set's recorded rounds: ``rounds``,
    or one when the warm-up took over ``max_round_s``.  The no-index set's warm-up is the feed
    itself (the same weights on the same data): when that took over ``max_round_s`` it gets no
    further warm-up (the prewarm loaded its tables) and one recorded round.  The indexed sets,
    compared with each other to a few percent, share one round count, raised (up to 4 x
    ``rounds``) until the slowest of them records ``FAST_SET_SECONDS`` in all: a workload whose
    sets take 0.1 s a round gets 20 rounds, whose medians move less with a burst of load.
    """
    params = param_lists(shapes, REPLAY_SEED)
    names = list(dsns)
    conns = {n: workload_conn(d) for n, d in dsns.items()}
    warms: dict[str, float] = {}
    try:
        for name in names:
            if name == "none" and feed_s > max_round_s:
                results[name].rounds = 1
                continue
            warm = sum(run_block(conns[name], s, p) for s, p in zip(shapes, params, strict=True))
            results[name].rounds = rounds if warm <= max_round_s else 1
            warms[name] = warm
        indexed = [n for n in names if n != "none" and results[n].rounds == rounds]
        if indexed:
            slowest = max(warms[n] for n in indexed)
            shared = max(rounds, min(4 * rounds, math.ceil(FAST_SET_SECONDS / max(slowest, 1e-3))))
            for name in indexed:
                results[name].rounds = shared
        with control(dsns["none"]) as ctl:
            ctl.execute("SELECT pg_stat_statements_reset()")
        samples: dict[str, list[list[float]]] = {n: [[] for _ in shapes] for n in names}
        j = 0
        for round_no in range(max(r.rounds for r in results.values())):
            for k, (shape, values) in enumerate(zip(shapes, params, strict=True)):
                for name in block_order(names, j):
                    if round_no < results[name].rounds:
                        samples[name][k].append(run_block(conns[name], shape, values) * 1000)
                j += 1
    finally:
        for conn in conns.values():
            conn.close()
    for name in names:
        res = results[name]
        res.shape_ms = [statistics.median(x) for x in samples[name]]
        res.server_ms = [t / res.rounds if t is not None else None for t in server_times(dsns[name], queryids)]


def copy_db(admin: str, template: str, name: str) -> None:
    """A file-level copy: same data, visibility, statistics and relation OIDs (so the same queryids)."""
    with control(admin) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))


# -- one workload -----------------------------------------------------------------------------------


def run_workload(admin: str, wl: Workload, args: argparse.Namespace) -> dict[str, Any]:
    db = DB_PREFIX + wl.name
    create_db(admin, db)
    dsn = with_dbname(admin, db)
    out: dict[str, Any] = {"workload": wl.name}
    copies: list[str] = []
    try:
        print(f"\n== {wl.name}{' (hold-out)' if wl.holdout else ''}: {wl.description}; scale {args.scale} ==")
        loaded = load_db(dsn, wl, args.scale)
        with control(dsn) as conn:
            sizes = conn.execute(
                "SELECT relname, reltuples::bigint, pg_total_relation_size(oid) FROM pg_class"
                " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY reltuples DESC"
            ).fetchall()
        print(
            f"loaded in {loaded:.1f} s: "
            + ", ".join(f"{n} {int(r):,} rows ({int(b) / 2**20:.0f} MB)" for n, r, b in sizes)
        )
        shapes = wl.shapes(args.scale)
        fed = feed(dsn, shapes)
        print(f"feed: {sum(s.weight for s in shapes)} calls of {len(shapes)} shapes in {fed:.1f} s")
        queryids = shape_queryids(dsn, shapes)
        qual = qualstats_advice(dsn)
        adv = asymm_advice(dsn)
        own = asymm_advice(dsn, observed=False)
        out.update(qualstats=qual, asymm=adv, asymm_stats=own, queryids=queryids)
        describe_advice(qual, adv)
        sets = {
            "none": [],
            "pg_qualstats": list(qual["permissive"].get("indexes", [])),
            "expert": list(wl.expert),
            "asymm": [item["definition"] for item in adv["indexes"]],
        }
        defaults = list(qual["defaults"].get("indexes", []))
        if sorted(defaults) != sorted(sets["pg_qualstats"]):  # measured too, beside the permissive call's
            sets = {**dict(list(sets.items())[:2]), "qs_defaults": defaults, **dict(list(sets.items())[2:])}
        own_set = [item["definition"] for item in own["indexes"]]
        if sorted(own_set) != sorted(sets["asymm"]):  # without pg_qualstats' values: measured too
            sets["asymm_stats"] = own_set
        print(
            f"asymm without observed values (--no-observed-values): {len(own_set)} indexes"
            + (" (the same set)" if "asymm_stats" not in sets else ": " + "; ".join(own_set))
        )
        results: dict[str, SetResult] = {}
        dsns: dict[str, str] = {}
        started = time.perf_counter()
        for name, definitions in sets.items():
            if name != "none":
                copy_db(admin, db, f"{db}_{name}")
                copies.append(f"{db}_{name}")
            dsns[name] = with_dbname(admin, db if name == "none" else f"{db}_{name}")
            results[name] = SetResult(name, definitions)
            build(dsns[name], results[name])
            results[name].plans = shape_plans(dsns[name], shapes)
        print(f"copies made and index sets built in {time.perf_counter() - started:.1f} s")
        total_db, pool = 0, 0
        for name in sets:
            db_bytes, pool = prewarm(dsns[name])
            total_db += db_bytes
        print(
            f"buffer pool: shared_buffers {pool / 2**20:.0f} MB, the {len(sets)} copies {total_db / 2**20:.0f} MB"
            + (" (prewarmed)" if total_db < 0.9 * pool else " (do NOT fit: replays also read from outside it)")
        )
        started = time.perf_counter()
        replay(dsns, shapes, queryids, results, args.rounds, args.max_round_s, fed)
        print(
            f"interleaved replay in {time.perf_counter() - started:.1f} s; recorded rounds per set: "
            + ", ".join(f"{n} {r.rounds}" for n, r in results.items())
        )
        out["sets"] = {
            n: {
                "definitions": r.definitions,
                "created": r.created,
                "rejected": r.rejected,
                "storage_bytes": r.storage_bytes,
                "rounds": r.rounds,
                "shape_ms": r.shape_ms,
                "server_ms": r.server_ms,
            }
            for n, r in results.items()
        }
        out["goals"] = report(wl, shapes, queryids, results, adv)
        if wl.name == "saas" and not args.no_distinct:
            out["distinct"] = distinct_check(dsn)
    finally:
        if not args.keep:
            for name in [*copies, db]:
                drop_db(admin, name)
    return out


def describe_advice(qual: dict[str, Any], adv: dict[str, Any]) -> None:
    perm, dflt = qual["permissive"], qual["defaults"]
    print(
        f"pg_qualstats (min_filter => 0, min_selectivity => 0): {len(perm.get('indexes', []))} indexes,"
        f" {len(perm.get('unoptimised', []))} unoptimised quals, {perm['runtime_s']:.2f} s"
        + (f"; error: {perm['error']}" if "error" in perm else "")
    )
    for definition in perm.get("indexes", []):
        print(f"  {definition}")
    same = sorted(perm.get("indexes", [])) == sorted(dflt.get("indexes", []))
    print(
        f"pg_qualstats with its defaults: {len(dflt.get('indexes', []))} indexes"
        + (" (the same set)" if same else ": " + "; ".join(dflt.get("indexes", [])))
    )
    skipped = adv.get("skipped", [])
    accounted = adv["planned"] + len(skipped)
    share = "100 %" if accounted == adv["statements"] else f"{accounted} of {adv['statements']}"
    print(
        f"asymm advisor: {adv['runtime_s']:.2f} s ({adv['wall_s']:.2f} s wall), {adv['statements']} statements,"
        f" {adv['planned']} planned, {len(skipped)} skipped"
        f" ({share} accounted for),"
        f" {adv['whatif_calls']} what-if calls, {adv.get('observed_value_plans', 0)} planned with observed values,"
        f" stopped by {adv.get('stopped_by')};"
        f" estimated cost {adv['workload_cost_before']:.0f} -> {adv['workload_cost_after']:.0f}"
    )
    for item in skipped:
        print(f"  skipped {item['queryid']}: {item['reason']}")
    for item in adv["indexes"]:
        estimate = f", estimate: {item['estimate']}" if "estimate" in item else ""
        print(
            f"  {item['definition']}  (benefit {item['estimated_benefit']:.0f},"
            f" modelled size {item['size_bytes'] / 2**20:.1f} MB{estimate})"
        )
    for item in adv.get("unverified", []):
        print(f"  unverified: {item['definition']} ({item['reason']})")
    for item in adv.get("refused_write_bound", []):
        print(f"  refused by the write bound: {item['definition']}")
    for item in adv.get("slower_statements", []):
        print(f"  slower_statements: {item['queryid']} {item.get('query', '')[:90]}")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "-"


def report(
    wl: Workload, shapes: list[Shape], queryids: list[int | None], res: dict[str, SetResult], adv: dict[str, Any]
) -> dict[str, Any]:
    """The per-set and per-shape tables and the goals check; returns the goals."""
    expert = res["expert"].total(shapes)
    print()
    print(
        f"{'set':13} {'indexes':>7} {'rejected':>8} {'storage MB':>10} {'reads ms':>10} {'writes ms':>10}"
        f" {'total ms':>10} {'/ expert':>8}"
    )
    order = list(res)
    for name in order:
        r = res[name]
        print(
            f"{name:13} {r.created:7} {len(r.rejected):8} {r.storage_bytes / 2**20:10.1f}"
            f" {r.total(shapes, False):10.1f} {r.total(shapes, True):10.1f} {r.total(shapes):10.1f}"
            f" {ratio(r.total(shapes), expert):>8}"
        )
    for name in order:
        for definition, error in res[name].rejected:
            print(f"  rejected ({name}): {definition}: {error}")
    print()
    print(
        f"{'shape: ms per round (median client time); server = asymm/none by exec time':60} {'w':>3}"
        + "".join(f" {n:>12}" for n in order)
        + f" {'asymm/none':>10}"
    )
    for k, shape in enumerate(shapes):
        srv, srv_none = res["asymm"].server_ms[k], res["none"].server_ms[k]
        print(
            f"{(shape.name + (' [W]' if shape.write else ''))[:60]:60} {shape.weight:3}"
            + "".join(f" {res[n].shape_ms[k]:12.2f}" for n in order)
            + f" {ratio(res['asymm'].shape_ms[k], res['none'].shape_ms[k]):>10}"
            + f" {ratio(srv, srv_none) if srv is not None and srv_none is not None else '-':>7}"
        )
    named = {int(item["queryid"]) for item in adv.get("slower_statements", [])}
    slower = [
        (shape, queryids[k])
        for k, shape in enumerate(shapes)
        if res["asymm"].shape_ms[k] > 1.10 * res["none"].shape_ms[k]
    ]
    # a read shape whose plans are those of the no-index copy was not made slower by the set
    plans_asymm, plans_none = res["asymm"].plans, res["none"].plans
    unchanged = {
        shape.name
        for k, shape in enumerate(shapes)
        if k < len(plans_asymm) and plans_asymm[k] is not None and plans_asymm[k] == plans_none[k]
    } & {shape.name for shape, _ in slower}
    unnamed = [shape.name for shape, qid in slower if (qid is None or qid not in named) and shape.name not in unchanged]
    a = res["asymm"]
    goals = {
        "asymm total <= 1.25x expert": a.total(shapes) <= 1.25 * expert,
        "asymm index count <= expert": a.created <= res["expert"].created,
        "asymm storage <= 1.1x expert": a.storage_bytes <= 1.1 * res["expert"].storage_bytes,
        "asymm faster than pg_qualstats": a.total(shapes) < res["pg_qualstats"].total(shapes),
        "asymm better than none": a.total(shapes) < res["none"].total(shapes),
        "every shape > 1.10x none is in slower_statements": not unnamed,
    }
    print()
    print(
        f"goals ({wl.name}): asymm/expert {ratio(a.total(shapes), expert)}, indexes {a.created} vs"
        f" {res['expert'].created}, storage {a.storage_bytes / 2**20:.1f} vs"
        f" {res['expert'].storage_bytes / 2**20:.1f} MB, asymm/pg_qualstats"
        f" {ratio(a.total(shapes), res['pg_qualstats'].total(shapes))}, asymm/none"
        f" {ratio(a.total(shapes), res['none'].total(shapes))}"
        + (
            f", asymm/qs_defaults {ratio(a.total(shapes), res['qs_defaults'].total(shapes))} (not a goal)"
            if "qs_defaults" in res
            else ""
        )
        + (
            f", asymm_stats/expert {ratio(res['asymm_stats'].total(shapes), expert)}, asymm_stats/pg_qualstats"
            f" {ratio(res['asymm_stats'].total(shapes), res['pg_qualstats'].total(shapes))} (not goals)"
            if "asymm_stats" in res
            else ""
        )
    )
    for goal, held in goals.items():
        print(f"  {'holds ' if held else 'MISSED'}  {goal}")
    if slower:
        print(
            "  shapes over 1.10x none with asymm: "
            + "; ".join(
                f"{s.name} ("
                + (
                    "named"
                    if q in named
                    else "same plans as with no index: not counted"
                    if s.name in unchanged
                    else "not named"
                )
                + ")"
                for s, q in slower
            )
        )
    return {"goals": goals, "slower_unnamed": unnamed, "slower_same_plan": sorted(unchanged)}


# -- 1,000 distinct statements ------------------------------------------------------------------------

DISTINCT_TABLES = {
    "tasks": (
        ["id", "tenant_id", "project_id", "assignee_id", "status", "priority", "created_at", "due_date"],
        ["tenant_id", "project_id", "assignee_id", "status"],
        ["created_at", "due_date", "priority"],
    ),
    "users": (
        ["id", "tenant_id", "email", "name", "status", "created_at"],
        ["tenant_id", "email", "status"],
        ["created_at"],
    ),
    "comments": (
        ["id", "tenant_id", "task_id", "author_id", "created_at"],
        ["tenant_id", "task_id", "author_id"],
        ["created_at"],
    ),
    "projects": (
        ["id", "tenant_id", "owner_id", "name", "archived", "created_at"],
        ["tenant_id", "owner_id", "name"],
        ["created_at"],
    ),
}


def distinct_statements(n: int) -> list[Statement]:
    """``n`` distinct normalized statements over the saas tables: select lists, filters, sorts, limits."""
    rng = random.Random(11)
    seen: set[str] = set()
    out: list[Statement] = []
    while len(out) < n:
        table = rng.choice(sorted(DISTINCT_TABLES))
        cols, eqs, ranges = DISTINCT_TABLES[table]
        select = ", ".join(rng.sample(cols, rng.randint(1, len(cols))))
        preds, k = [], 1
        for col in rng.sample(eqs, rng.randint(0, min(2, len(eqs)))):
            preds.append(f"{col} = ${k}")
            k += 1
        if rng.random() < 0.6:
            col = rng.choice(ranges)
            if rng.random() < 0.5:
                preds.append(f"{col} >= ${k} AND {col} < ${k + 1}")
                k += 2
            else:
                preds.append(f"{col} > ${k}")
                k += 1
        text = f"SELECT {select} FROM {table}"  # noqa: S608 - generated from the fixed lists above
        if preds:
            text += " WHERE " + " AND ".join(preds)
        if rng.random() < 0.4:
            text += f" ORDER BY {rng.choice(ranges)}{rng.choice(['', ' DESC'])} LIMIT ${k}"
        if text in seen:
            continue
        seen.add(text)
        out.append(Statement(len(out) + 1, text, rng.randint(1, 1000), 1.0, 1))
    return out


def distinct_check(dsn: str) -> dict[str, Any]:
    many = distinct_statements(1000)
    with connect(dsn) as conn:  # as `asymm advise` connects
        started = time.perf_counter()
        big = advise(conn, None, many)
        elapsed = time.perf_counter() - started
    print(
        f"\n1,000 distinct statements (saas schema): {elapsed:.1f} s, {big['whatif_calls']} what-if calls"
        f" ({big['whatif_cache_hits']} cache hits), {big['planned']} planned, {len(big['skipped'])} skipped,"
        f" {len(big['indexes'])} indexes: goal < 30 s {'holds' if elapsed < 30 else 'MISSED'}"
    )
    return {"seconds": round(elapsed, 2), "whatif_calls": big["whatif_calls"], "planned": big["planned"]}


# -- driver ---------------------------------------------------------------------------------------


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dsn", default="")
    parser.add_argument("--scale", type=float, default=None, help="data scale (1.0: largest tables 1.2M-1.5M rows)")
    parser.add_argument("--only", choices=names(), action="append", help="run only this workload (repeatable)")
    parser.add_argument("--quick", action="store_true", help="scale 0.1 (unless --scale) and 1 recorded round")
    parser.add_argument("--rounds", type=int, default=None, help="recorded rounds after the warm-up [default 5]")
    parser.add_argument(
        "--max-round-s", type=float, default=40.0, help="a set whose warm-up round takes longer records one round"
    )
    parser.add_argument("--no-distinct", action="store_true", help="skip the 1,000-distinct-statements check")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    if args.scale is None:
        args.scale = 0.1 if args.quick else 1.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    admin = resolve_dsn(args.dsn)
    versions = check_server(admin)
    print(
        f"PostgreSQL {versions['server']}, shared_buffers {versions['shared_buffers']}, HypoPG {versions['hypopg']},"
        f" pg_qualstats {versions['pg_qualstats']}; load average {loadavg()}"
    )
    started = time.perf_counter()
    results = []
    for name in args.only or names():
        results.append(run_workload(admin, load(name), args))
        print(f"(load average {loadavg()}, {time.perf_counter() - started:.0f} s so far)")
    print("\n== goals per workload ==")
    goal_names = list(results[0]["goals"]["goals"]) if results else []
    print(f"{'goal':52}" + "".join(f" {r['workload']:>10}" for r in results))
    for goal in goal_names:
        print(f"{goal:52}" + "".join(f" {'holds' if r['goals']['goals'][goal] else 'MISSED':>10}" for r in results))
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"versions": versions, "args": vars(args), "results": results}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
