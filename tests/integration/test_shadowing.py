"""No code an untrusted role plants in ``public`` ever runs inside asymm (issue 15, defect 2).

The attacker is a role that may create objects in ``public`` (and nothing else).  It plants, for
every pg_catalog function and operator whose name asymm's SQL or Python text uses, overloads with
a better type match than pg_catalog's (``lower(name)`` where pg_catalog has ``lower(text)``, an
operator ``=(name, character varying)``, an exactly typed ``jsonb_build_object(...)`` for asymm's
variadic calls), and relations named like asymm's (``public.pg_stat_statements``,
``public.settings``).  Each planted body bumps a sequence (not rolled back with a failing
statement) and logs ``current_user``.  Then a superuser, with the usual ``"$user", public``
search_path, calls every asymm function, runs every CLI command and asks the daemon for its
dashboard and graph: the sequence must not have moved.

pg_stat_statements and HypoPG are installed in schemas of their own here, so that a planted
``public.pg_stat_statements`` or ``public.hypopg_create_index`` would be found by any unqualified
reference to them.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.harness.daemon_process import Running

REPO = Path(__file__).resolve().parents[2]
ASYMM = str(Path(sys.executable).with_name("asymm"))

# A planted overload wins over pg_catalog's when it matches the call's types better: for each
# argument type of a pg_catalog overload, the types a caller may really pass there.
BAIT: dict[str, list[str]] = {
    "text": ["name", "character varying"],
    "name": ["text"],
    "character varying": ["text", "name"],
    "integer": ["bigint", "smallint", "numeric"],
    "bigint": ["integer", "numeric"],
    "smallint": ["integer"],
    "oid": ["regclass", "integer", "bigint"],
    "regclass": ["oid", "text"],
    "regproc": ["oid", "text"],
    "regprocedure": ["oid", "text"],
    "regnamespace": ["oid", "text"],
    "regrole": ["oid", "text", "name"],
    "jsonb": ["json", "text"],
    "json": ["jsonb", "text"],
    '"char"': ["text"],
    "text[]": ["name[]", "character varying[]"],
    "name[]": ["text[]"],
    "double precision": ["numeric", "integer", "real"],
    "numeric": ["integer", "bigint", "double precision"],
    "timestamp with time zone": ["timestamp without time zone", "date"],
    "interval": ["text"],
    "xid8": ["bigint", "text"],
    "boolean": ["text"],
}
# What a polymorphic or "any" argument is really given at asymm's call sites.
CONCRETE = ["text", "integer", "bigint", "name", "oid", "jsonb", "numeric", "text[]"]
VARIADIC_ANY = {
    "format",
    "concat",
    "concat_ws",
    "jsonb_build_object",
    "jsonb_build_array",
    "json_build_object",
    "json_build_array",
}
# Exactly typed overloads of asymm's own variadic calls (defect 2: asymm.coherence() of 0.2.0-dev
# called this one unqualified, with these argument types).
EXACT = [
    (
        "jsonb_build_object",
        "text, numeric, text, integer, text, integer, text, integer, text, integer, text, integer, text, jsonb",
        "jsonb",
    ),
]
OPERATORS = [
    "=",
    "<>",
    "<",
    ">",
    "<=",
    ">=",
    "~",
    "!~",
    "~*",
    "!~*",
    "~~",
    "!~~",
    "||",
    "+",
    "-",
    "*",
    "/",
    "%",
    "->",
    "->>",
    "#>>",
    "@>",
    "<@",
    "&&",
    "?",
    "&",
]
PSEUDO = {
    "record",
    "void",
    "trigger",
    "event_trigger",
    "internal",
    "cstring",
    '"any"',
    "anyelement",
    "anyarray",
    "anynonarray",
    "anyenum",
    "anyrange",
    "anycompatible",
    "anycompatiblearray",
    "anycompatiblenonarray",
    "anymultirange",
    "anycompatiblerange",
    "anycompatiblemultirange",
    "language_handler",
    "fdw_handler",
    "table_am_handler",
    "index_am_handler",
    "tsm_handler",
    "unknown",
    "opaque",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ASYMM, *args], capture_output=True, text=True, timeout=120)


def names_in_sources() -> set[str]:
    """Every identifier that asymm's SQL or Python text calls like a function."""
    found: set[str] = set()
    call = re.compile(r"(?<![\w.\"])([a-z_][a-z0-9_]*)\s*\(")
    for path in [*(REPO / "sql").rglob("*.sql"), *(REPO / "control" / "asymm").rglob("*.py")]:
        found.update(call.findall(path.read_text().lower()))
    return found


def _bait_signatures(args: list[str]) -> Iterator[list[str]]:
    """Argument lists that match some call better than ``args`` does (one or two substitutions)."""
    choices = [BAIT.get(a, []) if a not in PSEUDO else CONCRETE for a in args]
    for i, options in enumerate(choices):
        for option in options:
            yield [*args[:i], option, *args[i + 1 :]]
    if len(args) == 2:
        for left, right in itertools.product(choices[0], choices[1]):
            yield [left, right]


def plant(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Plant the overloads and relations (run as the attacker); returns how many of each."""
    conn.execute("SET search_path = pg_catalog, pg_temp")  # the planting itself must not meet its plants
    conn.execute("CREATE SEQUENCE public.shadow_hits")
    conn.execute("CREATE TABLE public.shadow_log (who name, what text, at timestamptz DEFAULT now())")
    conn.execute("GRANT USAGE, UPDATE ON SEQUENCE public.shadow_hits TO PUBLIC")
    conn.execute("GRANT INSERT ON public.shadow_log TO PUBLIC")
    conn.execute("""CREATE FUNCTION public.shadow_hit(what text) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_catalog.nextval('public.shadow_hits');
            INSERT INTO public.shadow_log (who, what) VALUES (current_user, what);
            RAISE NOTICE 'planted code ran as %: %', current_user, what;
        END $$""")
    wanted = names_in_sources()
    existing = {
        (str(n), str(a))
        for n, a in conn.execute(
            "SELECT p.proname, pg_get_function_identity_arguments(p.oid) FROM pg_proc p"
            " WHERE p.pronamespace IN ('pg_catalog'::regnamespace, 'public'::regnamespace)"
        )
    }
    overloads = conn.execute(
        """
        SELECT p.proname, ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t),
               format_type(p.prorettype, NULL), p.proretset, p.provariadic <> 0
          FROM pg_proc p
         WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind = 'f' AND p.pronargs BETWEEN 1 AND 3
           AND p.proname = ANY (%s)""",
        (sorted(wanted),),
    ).fetchall()
    signatures: dict[tuple[str, str], tuple[str, bool]] = {}
    for name, args, rettype, retset, variadic in overloads:
        if rettype in PSEUDO or (variadic and name not in VARIADIC_ANY):
            continue
        args = [a for a in args if a != '"any"'] or ["text"]
        for bait in _bait_signatures(list(args)):
            signatures[(name, ", ".join(bait))] = (rettype, retset)
    for name in sorted(VARIADIC_ANY & wanted):
        rettype = "text" if name.startswith("concat") or name == "format" else name.split("_")[0]
        for arity in (1, 2, 3):
            for combo in itertools.product(
                ["text", "name", "integer", "bigint", "numeric", "jsonb", "oid"], repeat=arity
            ):
                if name == "format" and combo[0] != "text":
                    continue
                if arity == 3 and combo[0] not in ("text", "name"):
                    continue
                signatures[(name, ", ".join(combo))] = (rettype, False)
    for name, args, rettype in EXACT:
        signatures[(name, args)] = (rettype, False)
    functions = 0
    for (name, args), (rettype, retset) in sorted(signatures.items()):
        if (name, args) in existing:
            continue
        returns = f"SETOF {rettype}" if retset else rettype
        finish = "RETURN;" if retset else "RETURN NULL;"
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL(
                        "CREATE FUNCTION public.{name}({args}) RETURNS {returns} LANGUAGE plpgsql AS $$"
                        " BEGIN PERFORM public.shadow_hit({what}); {finish} END $$"
                    ).format(
                        name=sql.Identifier(name),
                        args=sql.SQL(args),
                        returns=sql.SQL(returns),
                        what=sql.Literal(f"{name}({args})"),
                        finish=sql.SQL(finish),
                    )
                )
            functions += 1
        except psycopg.Error:
            pass  # a type that cannot be an argument here: nothing planted
    operators = plant_operators(conn)
    plant_relations(conn)
    return {"functions": functions, "operators": operators}


def plant_operators(conn: psycopg.Connection[Any]) -> int:
    existing = {
        (str(n), str(left), str(right))
        for n, left, right in conn.execute(
            "SELECT o.oprname, format_type(o.oprleft, NULL), format_type(o.oprright, NULL) FROM pg_operator o"
        )
    }
    rows = conn.execute(
        """
        SELECT o.oprname, format_type(o.oprleft, NULL), format_type(o.oprright, NULL), format_type(o.oprresult, NULL)
          FROM pg_operator o WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprkind = 'b'
           AND o.oprname = ANY (%s)""",
        (OPERATORS,),
    ).fetchall()
    planted: set[tuple[str, str, str]] = set()
    count = 0
    for name, left, right, result in rows:
        if result in PSEUDO:
            continue
        for new_left, new_right in _bait_signatures([left, right]):
            key = (name, new_left, new_right)
            if key in existing or key in planted or new_left in PSEUDO or new_right in PSEUDO:
                continue
            planted.add(key)
            fn = f"shadow_op_{len(planted)}"
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL(
                            "CREATE FUNCTION public.{fn}({l}, {r}) RETURNS {res} LANGUAGE plpgsql AS $$"
                            " BEGIN PERFORM public.shadow_hit({what}); RETURN NULL; END $$"
                        ).format(
                            fn=sql.Identifier(fn),
                            l=sql.SQL(new_left),
                            r=sql.SQL(new_right),
                            res=sql.SQL(result),
                            what=sql.Literal(f"operator {name}({new_left}, {new_right})"),
                        )
                    )
                    conn.execute(
                        sql.SQL(
                            "CREATE OPERATOR public.{op} (LEFTARG = {l}, RIGHTARG = {r}, FUNCTION = public.{fn})"
                        ).format(op=sql.SQL(name), l=sql.SQL(new_left), r=sql.SQL(new_right), fn=sql.Identifier(fn))
                    )
                count += 1
            except psycopg.Error:
                pass
    return count


def plant_relations(conn: psycopg.Connection[Any]) -> None:
    """Relations and functions named like the ones asymm reads outside pg_catalog."""
    conn.execute(
        "CREATE FUNCTION public.pg_stat_statements(boolean) RETURNS SETOF pgss.pg_stat_statements"
        " LANGUAGE plpgsql AS $$ BEGIN PERFORM public.shadow_hit('pg_stat_statements(boolean)'); END $$"
    )
    conn.execute("CREATE VIEW public.pg_stat_statements AS SELECT * FROM public.pg_stat_statements(true)")
    conn.execute(
        "CREATE FUNCTION public.pg_stat_statements_reset() RETURNS void LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM public.shadow_hit('pg_stat_statements_reset()'); END $$"
    )
    for fn, args, ret in (
        ("hypopg_create_index", "text", "TABLE (indexrelid oid, indexname text)"),
        ("hypopg_drop_index", "oid", "boolean"),
        ("hypopg_drop_index", "bigint", "boolean"),
        ("hypopg_drop_index", "integer", "boolean"),
        ("hypopg_relation_size", "oid", "bigint"),
        ("hypopg_relation_size", "integer", "bigint"),
        ("hypopg_reset", "", "void"),
    ):
        body = "RETURN;" if ret.startswith("TABLE") or ret == "void" else "RETURN NULL;"
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION public.{fn}({args}) RETURNS {ret} LANGUAGE plpgsql AS $$"
                " BEGIN PERFORM public.shadow_hit({what}); {body} END $$"
            ).format(
                fn=sql.Identifier(fn),
                args=sql.SQL(args),
                ret=sql.SQL(ret),
                what=sql.Literal(f"{fn}({args})"),
                body=sql.SQL(body),
            )
        )
    for relation in (
        "settings",
        "setting_defaults",
        "setting_values",
        "daemons",
        "annotations",
        "queries",
        "query_stats",
        "sync_tables",
        "sync_state",
        "drift_baselines",
        "index_suggestions",
        "index_suggestions_latest",
        "telemetry_state",
        "ddl_log",
    ):
        conn.execute(
            sql.SQL("CREATE VIEW public.{} AS SELECT public.shadow_hit({})::text AS hit").format(
                sql.Identifier(relation), sql.Literal(f"relation public.{relation}")
            )
        )


@pytest.fixture
def shop(make_db: Callable[..., str], admin_dsn: str) -> Iterator[dict[str, str]]:
    """A populated database with asymm, pgss and HypoPG in their own schemas, and an attacker role."""
    dsn = make_db(extension=False)
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    attacker = f"{dbname}_mallory"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA pgss")
        conn.execute("CREATE EXTENSION pg_stat_statements SCHEMA pgss")
        conn.execute("CREATE SCHEMA hypo")
        conn.execute("CREATE EXTENSION hypopg SCHEMA hypo")
        conn.execute("GRANT USAGE ON SCHEMA pgss, hypo TO PUBLIC")
        conn.execute("CREATE EXTENSION asymm CASCADE")
        conn.execute("""
            CREATE TABLE public.customers (id integer PRIMARY KEY, email text NOT NULL, country text);
            CREATE TABLE public.orders (id integer PRIMARY KEY, customer_id integer REFERENCES public.customers,
                                        status text NOT NULL, total integer NOT NULL);
            CREATE VIEW public.paid AS SELECT id, total FROM public.orders WHERE status = 'paid';
            INSERT INTO public.customers SELECT g, 'user' || g || '@example.com', 'FR' FROM generate_series(1, 3000) g;
            INSERT INTO public.orders SELECT g, 1 + g % 3000, (ARRAY['new', 'paid'])[1 + g % 2], g % 500
              FROM generate_series(1, 6000) g;
            INSERT INTO public.orders SELECT 6000 + g, 1, 'new', 7 FROM generate_series(1, 3) g;
            ANALYZE public.customers, public.orders;
        """)
        for i in range(30):  # a workload for pg_stat_statements, asymm.snapshot and the advisor
            conn.execute("SELECT * FROM public.orders WHERE total = %s", (i,))
            conn.execute("SELECT * FROM public.customers WHERE email = %s", (f"user{i}@example.com",))
        conn.execute("SELECT asymm.snapshot()")
        conn.execute(
            "SELECT asymm.annotate('public.orders'::regclass, 'order', 'local', 'Balance', 'O(log n)',"
            " '{create,query}')"
        )
        conn.execute(
            "SELECT asymm.annotate('public.orders'::regclass, 'status', 'orderState', 'local',"
            " 'Stabilization', 'O(1)', '{query}')"
        )
        conn.execute(
            "SELECT asymm.annotate_query('SELECT * FROM public.orders WHERE id = $1', 'orderById',"
            " 'local', 'Stabilization', 'O(log n)', '{query}')"
        )
        conn.execute("SELECT asymm.track('public.customers')")
        conn.execute("SELECT asymm.baseline('b1', ARRAY['public'])")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(attacker)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(attacker)))
    try:
        yield {"dsn": dsn, "attacker": attacker}
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(dbname))))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(attacker)))


def hits(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        called = conn.execute("SELECT is_called FROM public.shadow_hits").fetchone()
        rows = [(str(w), str(x)) for w, x in conn.execute("SELECT who, what FROM public.shadow_log ORDER BY at")]
        assert called is not None
        if called[0] and not rows:
            rows = [("?", "planted code ran inside a statement that failed (the log rolled back)")]
        return rows


# Arguments for asymm's functions, by type (names of the shop above); a function may refuse them
# (an ERROR is fine here: what matters is that no planted code runs).
ARGS: dict[str, str] = {
    "regclass": "'public.orders'::regclass",
    "text": "'public.orders'::text",
    "text[]": "'{}'::text[]",
    "jsonb": "'{}'::jsonb",
    "oid": "'public.orders'::regclass::oid",
    "integer": "0::integer",
    "smallint": "0::smallint",
    "bigint": "0::bigint",
    "boolean": "false",
    "name": "'pgss'::name",
    "double precision": "0.5::float8",
    "uuid": "gen_random_uuid()",
    '"char"': "'r'::\"char\"",
    "regprocedure": "'asymm.version()'::regprocedure",
    "oid[]": "'{}'::oid[]",
    "interval": "'1 s'::interval",
    "asymm.annotation_tuple": "NULL::asymm.annotation_tuple",
    "asymm.annotation_entries": "NULL::asymm.annotation_entries",
}
CALLS: dict[str, list[str]] = {  # sensible calls of the public API, each of which must succeed
    "asymm.coherence()": ["SELECT asymm.coherence()"],
    "asymm.annotate(text,text,text,text,text,text[])": [
        "SELECT asymm.annotate('public.customers', 'customer', 'local', 'Balance', 'O(log n)', '{create}')"
    ],
    "asymm.resolve(text)": ["SELECT asymm.resolve('public.orders')"],
    "asymm.find_duplicates(regclass,text[])": ["SELECT * FROM asymm.find_duplicates('public.orders', NULL)"],
    "asymm.drift(text)": ["SELECT * FROM asymm.drift('b1')"],
    "asymm.drift_sql(text)": ["SELECT asymm.drift_sql('b1')"],
    "asymm.baseline(text,text[])": ["SELECT asymm.baseline('b2', ARRAY['public'])"],
    "asymm.set_setting(text,text)": ["SELECT asymm.set_setting('daemon.stale_after', '11 s')"],
    "asymm.grant_reader(regrole)": ["SELECT asymm.grant_reader(current_user::regrole)"],
}
# Not called directly: being rewritten to plan as the statement's author (issue 15, defect 1); it
# is exercised here through asymm.coherence(), which runs it under its own pinned search_path.
NOT_DIRECT = {"asymm.generic_plan(text)"}
SKIP = {"asymm.untrack(regclass,boolean)"}  # would end the tracking the CLI's sync status reads: run last


def call_every_function(conn: psycopg.Connection[Any], planted: dict[str, list[str]]) -> dict[str, str]:
    """Call every function of schema asymm as the connection's role; returns the error per call."""
    errors: dict[str, str] = {}
    noticed: list[str] = []
    conn.add_notice_handler(
        lambda d: noticed.append(str(d.message_primary)) if "planted code ran" in str(d.message_primary) else None
    )
    conn.execute("SET search_path = pg_catalog, pg_temp")  # the test's own catalog query
    functions = conn.execute("""
        SELECT p.oid::regprocedure::text, p.proretset,
               ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes[0:p.pronargs - 1]) t)
          FROM pg_proc p WHERE p.pronamespace = 'asymm'::regnamespace AND p.prokind = 'f'
           AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
         ORDER BY p.proname LIKE '\\_%', p.oid""").fetchall()
    assert len(functions) > 60
    conn.execute("RESET search_path")  # asymm is called the way a DBA's session calls it
    for signature, retset, argtypes in [*functions, *[(s, True, None) for s in SKIP]]:
        if signature in NOT_DIRECT or (signature in SKIP and argtypes is not None):
            continue
        if argtypes is None:
            statements = ["SELECT asymm.untrack('public.customers')"]
        else:
            call = f"{signature.split('(')[0]}({', '.join(ARGS.get(t, f'NULL::{t}') for t in argtypes)})"
            generic = f"SELECT * FROM {call}" if retset else f"SELECT {call}"  # noqa: S608 (catalog names)
            statements = CALLS.get(signature.replace(" ", ""), [generic])
        for statement in statements:
            noticed.clear()
            try:
                conn.execute(statement).fetchall()
            except psycopg.Error as exc:
                errors[signature] = (exc.diag.message_primary or str(exc)).strip()
            if noticed:
                planted[statement] = list(noticed)
    return errors


def test_planted_overloads_never_run_inside_asymm(shop: dict[str, str], start_daemon: Callable[..., Running]) -> None:
    dsn = shop["dsn"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        path = conn.execute("SHOW search_path").fetchone()
        assert path is not None and "public" in str(path[0])  # the superuser's usual path reaches the plants
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
    with psycopg.connect(dsn + f" user={shop['attacker']}", autocommit=True) as attacker:
        counts = plant(attacker)
    assert counts["functions"] > 500 and counts["operators"] > 100, counts
    with psycopg.connect(dsn, autocommit=True) as conn:
        planted: dict[str, list[str]] = {}
        errors = call_every_function(conn, planted)
    assert planted == {}, json.dumps(planted, indent=1)
    for must_work in CALLS:
        assert must_work not in errors, errors
    found = hits(dsn)
    assert found == [], found

    commands = [
        ["status"],
        ["top"],
        ["top", "--slow-ms", "0"],
        ["health"],
        ["duplicates", "orders"],
        ["duplicates", "public.orders", "--columns", "customer_id,status"],
        ["advise"],
        ["verify"],
        [
            "annotate",
            "customers",
            "--column",
            "email",
            "--symbol",
            "email",
            "--scope",
            "local",
            "--regime",
            "Balance",
            "--cost",
            "O(1)",
            "--lineage",
            "create",
        ],
        [
            "annotate",
            "--query",
            "SELECT * FROM public.customers WHERE email = $1",
            "--symbol",
            "byEmail",
            "--scope",
            "local",
            "--regime",
            "Balance",
            "--cost",
            "O(log n)",
        ],
        ["annotations"],
        ["coherence"],
        ["graph"],
        ["graph", "--format", "dot"],
        ["impact", "orders.status"],
        ["baseline", "b3", "--schema", "public"],
        ["drift", "b1"],
        ["drift", "b1", "--json"],
        ["sync", "status"],
    ]
    failed = []
    for command in commands:
        out = run(*command, "--dsn", dsn)
        if out.returncode not in (0, 3) or "Traceback" in out.stderr:
            failed.append((command, out.returncode, out.stderr.strip()[-300:]))
    assert failed == []
    assert hits(dsn) == [], "planted code ran in an asymm command"

    daemon = start_daemon(dsn)
    for api_path in ("/api/dashboard", "/api/graph"):
        code, body = daemon.get(api_path)
        assert code == 200, body
        json.loads(body)
    daemon.stop()
    assert hits(dsn) == [], "planted code ran in the daemon"
