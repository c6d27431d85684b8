"""The whole advisor pipeline: workload → rewrite → candidates → what-if → selection → result.

:func:`advise` returns the JSON document ``asymm advise --json`` prints (``{"indexes": [...],
"skipped": [...], ...}``).  It can run on a connection the caller owns (the caller's prepared
statements and hypothetical indexes survive) or open its own.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from asymm.advisor import candidates as cand_mod
from asymm.advisor import observed as observed_mod
from asymm.advisor.analysis import Analysis
from asymm.advisor.catalog import Catalog, Table, quote_ident
from asymm.advisor.constants import renumbering
from asymm.advisor.rewrite import Unplannable, rewrite
from asymm.advisor.selection import Options, Workload, select
from asymm.advisor.validate import rejection
from asymm.advisor.whatif import PlanError, WhatIf
from asymm.advisor.workload import Statement, read_workload
from asymm.db import extension_schema

log = logging.getLogger("asymm.advisor")
SIZE_NOTE = "HypoPG's estimate corrected for btree deduplication from the column statistics"
SAMPLE_SIZE_NOTE = "measured on the sample copy, scaled to the table's rows"


@dataclass
class Settings:
    """Options of one run; :func:`settings_from_db` reads the defaults from asymm.settings."""

    budget_mb: float | None = 1024
    max_indexes: int | None = None  # a user limit; None (the setting's 0): no cap
    min_gain_fraction: float = 0.01
    write_cost_per_row: float = 0.5
    # no write statement more than this much costlier per call (None: no bound); see selection
    max_write_regression: float | None = 0.50
    statement_overhead_ms: float = 0.15
    index_entry_ms: float = 0.012
    brin_entry_ms: float = Options.brin_entry_ms
    near_tie: float = 0.15  # net gains this close (x the residual cost) tie, broken by gain per byte
    # an index as big as the data it indexes must save this fraction of the remaining cost
    storage_weight: float = Options.storage_weight
    limit: int = 2000
    # plan with the parameter values pg_qualstats observed, when it is installed (asymm.advisor.observed)
    observed_values: bool = True

    def options(self) -> Options:
        budget = int(self.budget_mb * 1024 * 1024) if self.budget_mb is not None else None
        return Options(
            budget_bytes=budget,
            max_indexes=self.max_indexes,
            min_gain_fraction=self.min_gain_fraction,
            write_cost_per_row=self.write_cost_per_row,
            max_write_regression=self.max_write_regression,
            statement_overhead_ms=self.statement_overhead_ms,
            index_entry_ms=self.index_entry_ms,
            brin_entry_ms=self.brin_entry_ms,
            near_tie=self.near_tie,
            storage_weight=self.storage_weight,
        )


def settings_from_db(conn: psycopg.Connection[Any]) -> Settings:
    """Defaults from asymm.settings when the extension is installed, built-in ones otherwise."""
    settings = Settings()
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'asymm'").fetchone() is None:
        return settings
    # asymm.setting(), not the view's value: it refuses a stored value that breaks the setting's rule
    values = dict(
        conn.execute("SELECT name, asymm.setting(name) FROM asymm.settings WHERE name LIKE 'advisor.%'").fetchall()
    )
    if "advisor.budget_mb" in values:
        settings.budget_mb = float(str(values["advisor.budget_mb"]))
    if "advisor.max_indexes" in values:
        settings.max_indexes = int(str(values["advisor.max_indexes"])) or None
    if "advisor.min_gain_fraction" in values:
        settings.min_gain_fraction = float(str(values["advisor.min_gain_fraction"]))
    if "advisor.write_cost_per_row" in values:
        settings.write_cost_per_row = float(str(values["advisor.write_cost_per_row"]))
    if "advisor.storage_weight" in values:
        settings.storage_weight = float(str(values["advisor.storage_weight"]))
    if "advisor.max_write_regression" in values:
        settings.max_write_regression = write_bound(float(str(values["advisor.max_write_regression"])))
    return settings


def write_bound(value: float) -> float | None:
    """The setting's value as the write bound: a negative one (or NaN, infinity) turns it off.

    Why a number and not 'off': the setting is typed ``number`` like its neighbours, so that
    asymm.set_setting() rejects a typo instead of the advisor running with no bound by accident."""
    return value if 0.0 <= value < math.inf else None


def advise(
    conn: psycopg.Connection[Any], settings: Settings | None = None, statements: list[Statement] | None = None
) -> dict[str, Any]:
    """Run the advisor on ``conn`` (autocommit); ``statements`` overrides pg_stat_statements.

    Each statement is planned as its ``userid`` (the current role for those without one); those
    whose role is gone or may not be assumed are listed in ``skipped`` with the reason.
    """
    started = time.monotonic()
    settings = settings or settings_from_db(conn)
    catalog = Catalog(conn)
    if statements is None:
        statements = read_workload(conn, limit=settings.limit)
    skipped: list[dict[str, Any]] = []
    trgm = extension_schema(conn, "pg_trgm")
    trgm_schema = quote_ident(trgm) if trgm is not None else None
    observations = observed_mod.read_observed(conn) if settings.observed_values else {}
    with WhatIf(conn, catalog) as whatif:
        workload = Workload([], [], [])
        per_statement: list[list[cand_mod.Candidate]] = []
        analyses: list[tuple[Analysis, int, float]] = []
        for stmt in statements:
            try:
                refused = whatif.refusal(stmt.userid) if stmt.userid is not None else None
                if refused is not None:  # before anything else: its tables may have gone with the role
                    raise PlanError(refused)
                rw = rewrite(stmt.query, catalog, stmt.constants)
                seen = observed_mod.values_by_param(stmt.query, observations.get(stmt.queryid, []))
                seen = observed_mod.renumbered(seen, renumbering(stmt.query, stmt.constants))
                prepared = whatif.prepare(rw, author=stmt.userid, observed=seen)
                suggested = cand_mod.for_statement(rw.analysis, stmt.queryid, trgm_schema)
            except (Unplannable, PlanError) as exc:
                skipped.append({"queryid": stmt.queryid, "query": stmt.query, "reason": str(exc)})
                continue
            except psycopg.OperationalError:
                raise  # the connection is gone: nothing else can be planned either
            except Exception as exc:  # one statement the advisor cannot read must not end the run
                log.warning("advisor: cannot analyse statement %s", stmt.queryid, exc_info=True)
                skipped.append(
                    {"queryid": stmt.queryid, "query": stmt.query, "reason": f"cannot analyse: {_one_line(exc)}"}
                )
                continue
            workload.prepared.append(prepared)
            workload.weights.append(float(stmt.calls))
            workload.queryids.append(stmt.queryid)
            workload.rows.append(stmt.rows)
            workload.mean_ms.append(stmt.mean_exec_time)
            per_statement.append(suggested)
            analyses.append((rw.analysis, stmt.queryid, float(stmt.calls)))
        tables: dict[int, Table] = {}
        for prepared in workload.prepared:
            for table in prepared.rewritten.analysis.tables:
                tables[table.oid] = table
        candidates: list[cand_mod.Candidate] = []
        redundant = 0
        for cand in cand_mod.merge([*per_statement, cand_mod.across_statements(analyses)]):
            owner = tables.get(cand.table_oid)
            if owner is None or cand_mod.covered_by_existing(cand, owner) is not None:
                redundant += 1
                continue
            candidates.append(cand)
        whatif.price_by_sample(workload.prepared, workload.queryids, workload.weights, candidates)
        refusals: dict[cand_mod.Candidate, str | None] = {}

        def refusal(cand: cand_mod.Candidate) -> str | None:
            """PostgreSQL's message if it refuses the exact definition (checked once, rolled back)."""
            if cand not in refusals:
                refusals[cand] = rejection(conn, cand.table, cand.body(), cand.name)
            return refusals[cand]

        chosen, summary = select(whatif, workload, candidates, tables, settings.options(), refusal)
        rejected = {c.definition(): whatif.failure(c) for c in candidates if whatif.failure(c)}
        refused_by_pg = [{"definition": c.definition(), "reason": r} for c, r in refusals.items() if r is not None]
        unverified = _unverified(conn, whatif, workload, candidates)
        indexes = []
        for item in chosen:
            cand = item.candidate
            indexes.append(
                {
                    "table": cand.table,
                    "columns": cand.columns,
                    "include": list(cand.include),
                    "method": cand.method,
                    "name": cand.name,
                    "definition": cand.definition(),
                    "estimated_benefit": round(item.benefit, 1),
                    "gross_benefit": round(item.gross, 1),
                    "maintenance_penalty": round(item.penalty, 1),
                    "size_bytes": item.size_bytes,
                    "size_note": SAMPLE_SIZE_NOTE if whatif.sample_price(cand) else SIZE_NOTE,
                    "estimate": whatif.estimate(cand),
                    "queryids": item.queryids,
                    "cost_before": {str(k): round(v, 2) for k, v in item.cost_before.items()},
                    "cost_after": {str(k): round(v, 2) for k, v in item.cost_after.items()},
                }
            )
        modes = [p.mode for p in workload.prepared]
        planned = len(workload.prepared)
        result = {
            "run_id": str(uuid.uuid4()),
            "indexes": indexes,
            "skipped": skipped,
            "statements": len(statements),
            "planned": planned,
            "planned_fraction": round(planned / len(statements), 4) if statements else 1.0,
            "custom_plans": modes.count("custom"),
            "observed_value_plans": sum(p.observed for p in workload.prepared),
            "generic_plans": modes.count("generic"),
            "candidates": len(candidates),
            "candidates_covered_by_existing_indexes": redundant,
            "candidates_rejected_by_hypopg": rejected,
            "candidates_rejected": refused_by_pg,
            "refused_write_bound": summary.get("refused_write_bound", []),
            "slower_statements": _with_text(summary.get("slower_statements", []), statements),
            "unverified": unverified,
            "sample_copies": [asdict(run) for run in whatif.sample_runs],
            "whatif_calls": whatif.calls,
            "whatif_cache_hits": whatif.cache_hits,
            "workload_cost_before": round(summary.get("workload_cost_before", 0.0), 1),
            "workload_cost_after": round(summary.get("workload_cost_after", 0.0), 1),
            "storage_bytes": int(summary.get("storage_bytes", 0.0)),
            "stopped_by": summary.get("stopped_by", "marginal_benefit"),
            "beneficial_candidates_left": summary.get("beneficial_candidates_left", 0),
            "size_note": SIZE_NOTE,
            "runtime_s": 0.0,
        }
    result["runtime_s"] = round(time.monotonic() - started, 3)
    return result


def _one_line(exc: BaseException) -> str:
    """An exception as one short line (its type when it says nothing)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return _short(text, 200)


def _with_text(slower: list[dict[str, Any]], statements: list[Statement]) -> list[dict[str, Any]]:
    """``slower`` with each statement's normalized text, on one line and short (the DBA reads a table)."""
    texts = {s.queryid: " ".join(s.query.split()) for s in statements}
    return [{**item, "query": _short(texts.get(item["queryid"], ""))} for item in slower]


def _short(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _unverified(
    conn: psycopg.Connection[Any], whatif: WhatIf, workload: Workload, candidates: list[cand_mod.Candidate]
) -> list[dict[str, Any]]:
    """Candidates nothing could price: reported for a DBA to judge, never chosen.

    HypoPG 1.3 simulates btree-like access methods and BRIN, not GIN; a GIN candidate is priced
    on a sample copy instead (:mod:`asymm.advisor.sample`), and lands here only when that was not
    possible either (the advisor may not read the table, row-level security, a column type from
    outside pg_catalog, the per-run limit, ...): silence would hide the one index such statements
    need.  Each entry gives the statement that would create it, the statements asking for it with
    their calls and current estimated cost, and why it is unverified.  It is not in ``indexes``,
    not stored as a suggestion, and ``--apply`` ignores it.
    """
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'hypopg'").fetchone()
    version = str(row[0]) if row else "?"
    by_queryid = {q: i for i, q in enumerate(workload.queryids)}
    out: list[dict[str, Any]] = []
    for cand in candidates:
        failure = whatif.failure(cand)
        unpriced = whatif.unpriced(cand)
        if cand.method != "gin" or failure is None or unpriced is None:
            continue
        users = sorted(q for q in cand.queryids if q in by_queryid)
        if not users:
            continue
        costs = workload.base if len(workload.base) == len(workload.queryids) else []
        out.append(
            {
                "table": cand.table,
                "columns": cand.columns,
                "method": cand.method,
                "definition": cand.definition(),
                "queryids": users,
                "calls": int(sum(workload.weights[by_queryid[q]] for q in users)),
                "cost_now": {str(q): round(costs[by_queryid[q]], 2) for q in users} if costs else {},
                "reason": f"HypoPG {version} cannot simulate {cand.method} indexes ({failure}) and {unpriced}; "
                "benefit not estimated, so not chosen: create it on a copy and compare",
            }
        )
    out.sort(key=lambda item: -item["calls"])
    return out


def may_write(conn: psycopg.Connection[Any], table: str, privilege: str) -> bool:
    """Whether this role may ``privilege`` (INSERT, UPDATE) the asymm table: a reader role may not."""
    row = conn.execute("SELECT pg_catalog.has_table_privilege(%s, %s)", (f"asymm.{table}", privilege)).fetchone()
    return bool(row and row[0])


def store(conn: psycopg.Connection[Any], result: dict[str, Any]) -> list[int]:
    """Record the suggestions in asymm.index_suggestions; returns their ids (in result order).

    A role that may not (a reader, see asymm.grant_reader) still gets its advice: nothing is
    stored and ``result["stored"]`` is False, so that the caller can say so.
    """
    ids: list[int] = []
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'asymm'").fetchone() is None:
        return ids
    result["stored"] = may_write(conn, "index_suggestions", "INSERT")
    if not result["stored"]:
        return ids
    for item in result["indexes"]:
        row = conn.execute(
            "INSERT INTO asymm.index_suggestions (run_id, table_name, columns, method, index_name, definition,"
            "  estimated_benefit, size_bytes, queryids) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING suggestion_id",
            (
                result["run_id"],
                item["table"],
                item["columns"],
                item["method"],
                item["name"],
                item["definition"],
                item["estimated_benefit"],
                item["size_bytes"],
                item["queryids"],
            ),
        ).fetchone()
        assert row is not None
        item["suggestion_id"] = int(str(row[0]))
        ids.append(item["suggestion_id"])
    return ids
