"""Redis sync capture cost alone (no daemon): the C capture trigger vs none vs the old PL/pgSQL one.

Usage (any PostgreSQL where asymm is installed; the script creates and drops its own database):
    flock /tmp/asymm-bench.lock .venv/bin/python bench/capture.py --dsn "$ASYMM_DSN"
or, when other checkouts may install their version of the extension meanwhile:
    scripts/locked.sh sh -c 'make install && .venv/bin/python bench/capture.py --setup-only'
    flock /tmp/asymm-bench.lock .venv/bin/python bench/capture.py --reuse

Measures, in one run, on one pgbench_accounts (scale 5) carrying both trigger sets, switched with
ALTER TABLE ... ENABLE/DISABLE TRIGGER between runs:
* pgbench simple-update (``-N -M prepared``) TPS with 1 and 4 clients, for: no capture (``DISABLE
  TRIGGER USER``), the C capture (``asymm._sync_capture``), and the PL/pgSQL capture asymm used
  before it (re-created here from its last version, for comparison); each with the worker's wake
  flag down (``asymm.sync_wake.listening = false``: what writers see while the worker drains, so no
  NOTIFY) and, for the two captures, up (every transaction NOTIFYs, as when the worker sleeps).
  Interleaved rounds, the order of the variants rotating each round; the outbox is truncated
  and the pgbench tables vacuumed before every run.  Ratios are per round (variant TPS /
  no-capture TPS of the same round).
* backend CPU time per transaction: the postmaster's cumulative CPU of its exited children
  (``/proc/<postmaster>/stat`` cutime + cstime) before and after each pgbench run, divided by the
  transactions pgbench processed.  Less sensitive to other load on the machine than TPS (CPU
  time is what the backends used, however long they waited for a core).  Autovacuum is off for
  the tables involved so that no worker's CPU lands in the window.
* a 200,000-row INSERT ... SELECT into an untracked table, one with the C capture and one with the
  PL/pgSQL capture (interleaved, medians).

``--lib NAME=PATH`` adds a variant "C NAME": the capture function of another build of the library
(e.g. main's ``extension/asymm.so`` copied aside), on its own triggers, to compare two versions of
the C capture in one run; the copy is loaded by its absolute path, so it is also immune to other
checkouts installing theirs meanwhile.  ``--variants`` keeps only the named variants.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

BENCH_DB = "asymm_capture_bench"

# The capture function asymm.track() generated per table before the C capture (the last version,
# SECURITY INVOKER, one-column key), kept here only to measure against.
LEGACY = """
CREATE OR REPLACE FUNCTION public.legacy_capture_{key}() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER
AS $body$
DECLARE
    k pg_catalog.text[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT pg_catalog.array_agg(u.k) INTO k
          FROM (SELECT n.{key}::pg_catalog.text AS k FROM new_rows n
                UNION ALL SELECT o.{key}::pg_catalog.text FROM old_rows o) u;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT pg_catalog.array_agg(n.{key}::pg_catalog.text) INTO k FROM new_rows n;
    ELSE
        SELECT pg_catalog.array_agg(o.{key}::pg_catalog.text) INTO k FROM old_rows o;
    END IF;
    IF k IS NULL THEN
        RETURN NULL;
    END IF;
    IF (pg_catalog.date_part('epoch', pg_catalog.now())::bigint / 10) % 2 = 0 THEN
        INSERT INTO asymm.sync_outbox_0 (slot, xid, rel, op, keys)
        VALUES (0, pg_catalog.pg_current_xact_id(), TG_RELID, pg_catalog.left(TG_OP, 1)::"char", k);
    ELSE
        INSERT INTO asymm.sync_outbox_1 (slot, xid, rel, op, keys)
        VALUES (1, pg_catalog.pg_current_xact_id(), TG_RELID, pg_catalog.left(TG_OP, 1)::"char", k);
    END IF;
    IF (SELECT w.listening FROM asymm.sync_wake w) IS NOT FALSE THEN
        PERFORM pg_catalog.pg_notify('asymm_sync', '');
    END IF;
    RETURN NULL;
END
$body$;
"""

# variant -> (trigger set enabled, wake flag)
VARIANTS: dict[str, tuple[str | None, bool]] = {
    "none": (None, False),
    "C": ("asymm", False),
    "PL/pgSQL": ("legacy", False),
    "C, NOTIFY": ("asymm", True),
    "PL/pgSQL, NOTIFY": ("legacy", True),
}


def pgbench_bin() -> str:
    return shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"


def add_legacy_triggers(conn: psycopg.Connection[Any], table: str, key: str) -> None:
    conn.execute(LEGACY.format(key=key))
    tbl, fn = sql.Identifier(table), sql.Identifier(f"legacy_capture_{key}")
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER legacy_sync_ins AFTER INSERT ON {} REFERENCING NEW TABLE AS new_rows"
            " FOR EACH STATEMENT EXECUTE FUNCTION {}()"
        ).format(tbl, fn)
    )
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER legacy_sync_upd AFTER UPDATE ON {} REFERENCING OLD TABLE AS old_rows"
            " NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {}()"
        ).format(tbl, fn)
    )
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER legacy_sync_del AFTER DELETE ON {} REFERENCING OLD TABLE AS old_rows"
            " FOR EACH STATEMENT EXECUTE FUNCTION {}()"
        ).format(tbl, fn)
    )


def add_lib_triggers(conn: psycopg.Connection[Any], table: str, key: str, name: str, path: str) -> None:
    """Capture triggers named ``<name>_sync_*`` running asymm_sync_capture from the library at path."""
    tbl, fn = sql.Identifier(table), sql.Identifier(f"capture_{name}")
    conn.execute(
        sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE C AS {}, 'asymm_sync_capture'").format(
            fn, sql.Literal(path)
        )
    )
    for op, event, refs in (
        ("ins", "INSERT", "NEW TABLE AS new_rows"),
        ("upd", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("del", "DELETE", "OLD TABLE AS old_rows"),
    ):
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(f"{name}_sync_{op}"), tbl))
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} AFTER {} ON {} REFERENCING {} FOR EACH STATEMENT EXECUTE FUNCTION {}({})"
            ).format(sql.Identifier(f"{name}_sync_{op}"), sql.SQL(event), tbl, sql.SQL(refs), fn, sql.Literal(key))
        )


def use_triggers(conn: psycopg.Connection[Any], table: str, which: str | None) -> None:
    tbl = sql.Identifier(table)
    conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(tbl))
    if which is not None:
        for op in ("ins", "upd", "del"):
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(tbl, sql.Identifier(f"{which}_sync_{op}")))


def children_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the exited, reaped children of ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after "pid (comm)": field 3 is fields[0]; cutime and cstime are fields 16 and 17
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def postmaster_pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT current_setting('data_directory')").fetchone()
    assert row is not None
    with open(os.path.join(row[0], "postmaster.pid")) as f:
        return int(f.readline())


def run_pgbench(dsn: str, clients: int, seconds: int, pm: int) -> tuple[float, float]:
    """(TPS, backend CPU microseconds per transaction)."""
    before = children_cpu_s(pm)
    out = subprocess.run(
        [
            pgbench_bin(),
            "-N",
            "-M",
            "prepared",
            "-n",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(seconds),
            dsn,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    time.sleep(0.3)  # let the postmaster reap the backends
    cpu = children_cpu_s(pm) - before
    tps = re.search(r"tps = ([\d.]+)", out)
    done = re.search(r"number of transactions actually processed: (\d+)", out)
    assert tps and done, out
    return float(tps.group(1)), cpu / int(done.group(1)) * 1e6


def bench_pgbench(
    dsn: str, conn: psycopg.Connection[Any], pm: int, clients: int, rounds: int, seconds: int
) -> dict[str, dict[str, list[float]]]:
    names = list(VARIANTS)
    result: dict[str, dict[str, list[float]]] = {n: {"tps": [], "cpu": []} for n in names}
    for i in range(rounds):
        order = names[i % len(names) :] + names[: i % len(names)]
        if i % 2:
            order.reverse()
        for name in order:
            which, listening = VARIANTS[name]
            use_triggers(conn, "pgbench_accounts", which)
            conn.execute("UPDATE asymm.sync_wake SET listening = %s", (listening,))
            conn.execute("TRUNCATE asymm.sync_outbox")
            conn.execute("VACUUM pgbench_accounts, pgbench_branches, pgbench_tellers")  # same start for each run
            tps, cpu = run_pgbench(dsn, clients, seconds, pm)
            result[name]["tps"].append(tps)
            result[name]["cpu"].append(cpu)
    use_triggers(conn, "pgbench_accounts", "asymm")
    return result


BULK_TABLES = {"untracked": "bulk_plain", "C": "bulk_c", "PL/pgSQL": "bulk_plpgsql"}


def setup(admin_dsn: str, dsn: str) -> None:
    """A fresh database: asymm, pgbench scale 5 with both trigger sets, the bulk tables."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    subprocess.run([pgbench_bin(), "-i", "-q", "-s", "5", dsn], capture_output=True, check=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("CREATE EXTENSION asymm CASCADE")
        tables = [
            "asymm.sync_outbox_0",
            "asymm.sync_outbox_1",
            "pgbench_accounts",
            "pgbench_branches",
            "pgbench_tellers",
            "pgbench_history",
        ]
        for tbl in tables:
            conn.execute(f"ALTER TABLE {tbl} SET (autovacuum_enabled = false)")
        conn.execute("SELECT asymm.track('pgbench_accounts')")
        add_legacy_triggers(conn, "pgbench_accounts", "aid")
        for name in BULK_TABLES.values():
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (id int PRIMARY KEY, a int, b text, c timestamptz)"
                    " WITH (autovacuum_enabled = false)"
                ).format(sql.Identifier(name))
            )
        conn.execute("SELECT asymm.track('bulk_c')")
        conn.execute("SELECT asymm.track('bulk_plpgsql')")
        add_legacy_triggers(conn, "bulk_plpgsql", "id")
        use_triggers(conn, "bulk_plpgsql", "legacy")
        conn.execute("VACUUM ANALYZE")


def bench_bulk(conn: psycopg.Connection[Any], rows: int, reps: int) -> dict[str, list[float]]:
    conn.execute("UPDATE asymm.sync_wake SET listening = false")
    times: dict[str, list[float]] = {k: [] for k in BULK_TABLES}
    names = list(BULK_TABLES)
    for i in range(reps):
        for variant in names[i % 3 :] + names[: i % 3]:
            tbl = sql.Identifier(BULK_TABLES[variant])
            conn.execute(sql.SQL("TRUNCATE {}").format(tbl))
            conn.execute("TRUNCATE asymm.sync_outbox")
            started = time.perf_counter()
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT g, g %% 1000, md5(g::text), now() FROM generate_series(1, %s) g").format(
                    tbl
                ),
                (rows,),
            )
            times[variant].append(time.perf_counter() - started)
    return times


def report(res: dict[str, dict[str, list[float]]]) -> list[str]:
    """One line per variant: TPS, per-round TPS ratios to "none", CPU per transaction."""
    base = res["none"]
    lines = [
        f"  {'variant':<17} {'TPS median (min..max)':<22} {'TPS/none % per round':<22} {'(median)':<9}"
        f" {'CPU us/tx':>9} {'vs none':>8}  CPU us/tx per round"
    ]
    for name, r in res.items():
        ratios = [t / b * 100 for t, b in zip(r["tps"], base["tps"], strict=True)]
        med_cpu = statistics.median(r["cpu"])
        tps = f"{statistics.median(r['tps']):.0f} ({min(r['tps']):.0f}..{max(r['tps']):.0f})"
        per_round = " ".join(f"{x:.0f}" for x in ratios)
        lines.append(
            f"  {name:<17} {tps:<22} {per_round:<22} {statistics.median(ratios):5.1f} %"
            f" {med_cpu:>9.1f} {med_cpu / statistics.median(base['cpu']):>7.3f}x  "
            + " ".join(f"{x:.0f}" for x in r["cpu"])
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("ASYMM_DSN", ""))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: bulk,pgbench")
    parser.add_argument(
        "--setup-only",
        action="store_true",
        help="create the database and stop (run it under scripts/locked.sh right after"
        " make install: the extension scripts are shared by every checkout)",
    )
    parser.add_argument("--reuse", action="store_true", help="use the database --setup-only created")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument(
        "--lib",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also measure the C capture of the library at PATH (variant 'C NAME')",
    )
    parser.add_argument("--variants", default="", help="comma-separated variants to run (default: all)")
    args = parser.parse_args()
    libs = dict(spec.split("=", 1) for spec in args.lib)
    for name in libs:
        VARIANTS[f"C {name}"] = (name, False)
    if args.variants:
        keep = set(args.variants.split(","))
        for name in [n for n in VARIANTS if n not in keep]:
            del VARIANTS[name]
    skip = set(filter(None, args.skip.split(",")))
    dsn = make_conninfo(**{**conninfo_to_dict(args.dsn), "dbname": BENCH_DB})
    if not args.reuse:
        setup(args.dsn, dsn)
    if args.setup_only:
        return
    load_before = os.getloadavg()
    lines: list[str] = []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            pm = postmaster_pid(conn)
            for name, path in libs.items():
                add_lib_triggers(conn, "pgbench_accounts", "aid", name, path)
            if "bulk" not in skip:
                times = bench_bulk(conn, args.rows, reps=5)
                plain = statistics.median(times["untracked"])
                lines.append(
                    f"INSERT ... SELECT {args.rows} rows, median of 5 (s): "
                    + ", ".join(
                        f"{k} {statistics.median(v):.3f} ({statistics.median(v) / plain:.2f}x)"
                        for k, v in times.items()
                    )
                )
            if "pgbench" not in skip:
                for clients in (int(c) for c in args.clients.split(",")):
                    res = bench_pgbench(dsn, conn, pm, clients, args.rounds, args.seconds)
                    lines.append(
                        f"pgbench -N -M prepared, {clients} client(s), {args.rounds} interleaved rounds"
                        f" of {args.seconds} s:"
                    )
                    lines += report(res)
    finally:
        if not args.keep:
            with psycopg.connect(args.dsn, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
    load_after = os.getloadavg()
    print("\n".join(lines))
    print(
        f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)},"
        f" after: {' '.join(f'{x:.2f}' for x in load_after)}"
    )


if __name__ == "__main__":
    main()
