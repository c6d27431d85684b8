"""Schema drift round trips (issue #19): baseline a schema, run DDL, and check that the plan brings
it back: it validates on the scratch copy, applies to the live database with psql's ON_ERROR_STOP
and leaves ``asymm.drift(NAME)`` empty; the annotations of the objects that survived the DDL are
still on them, under their baseline names.  Shared by the tests and by ``bench/drift.py``'s soak.

The DDL comes from :data:`MUTATIONS`: each kind reads the live catalog, picks its objects through a
:class:`Chooser` (hypothesis' draws in a test, a seeded ``random.Random`` in the soak) and returns
statements, or None when nothing fits; PostgreSQL refusing a mutation skips it.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import sql

import asymm.drift as drift
from asymm.db import with_dbname
from asymm.drift.api import PlanStep, lock_timeout, render_sql
from asymm.drift.scratch import _pg_tool, tool_env

T = TypeVar("T")
Conn = psycopg.Connection[Any]
ROLE = "drift_gen_role"


class Chooser(Protocol):
    def choice(self, options: Sequence[T]) -> T: ...


class RandomChooser:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choice(self, options: Sequence[T]) -> T:
        return self.rng.choice(list(options))


@dataclass
class RoundTrip:
    steps: list[PlanStep]
    rewrote_t: bool = False  # whether applying the plan gave table t a new relfilenode
    applied: list[str] = field(default_factory=list)  # the mutations that ran

    @property
    def statements(self) -> list[str]:
        return [st.statement for st in self.steps]

    def hazards_of(self, needle: str) -> list[str]:
        return [h for st in self.steps if needle in st.statement for h in st.hazards]


class RoundTripFailed(AssertionError):
    """The plan did not bring the schema back: ``stage`` says where (validate, apply, converge)."""

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage = stage


def apply_with_psql(dsn: str, conn: Conn, steps: list[PlanStep]) -> None:
    """What a DBA does with ``asymm drift NAME --sql``: psql -v ON_ERROR_STOP=1 -f plan.sql."""
    script = render_sql(steps, lock_timeout(conn), None)
    run = subprocess.run(
        [_pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn],
        input=script,
        capture_output=True,
        text=True,
        env=tool_env(conn),
    )
    if run.returncode != 0:
        raise RoundTripFailed("apply", f"{run.stderr.strip()}\n{script}")


@contextlib.contextmanager
def drift_database(admin_dsn: str, name: str) -> Iterator[str]:
    """A database of its own with asymm installed (and the generator's role), dropped afterwards."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(ROLE)))
    target = with_dbname(admin_dsn, name)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("CREATE EXTENSION asymm CASCADE")
    try:
        yield target
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def fresh_schemas(conn: Conn, schemas: list[str]) -> None:
    for schema in schemas:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def check_plan(dsn: str, conn: Conn, name: str, table: str | None = None) -> RoundTrip:
    """Plan, validate on scratch, apply with psql, and check that no drift is left."""
    steps = drift.plan(conn, name)
    text = "\n".join(f"{st.phase}: {st.statement}" for st in steps)
    validation = drift.validate_plan(conn, name, steps)
    if not validation.ok:
        raise RoundTripFailed(
            "validate", f"{validation.error} (step {validation.failed_step}) {validation.remaining}\n{text}"
        )
    relfilenode = "SELECT pg_relation_filenode(to_regclass(%s))"
    before = conn.execute(relfilenode, (table,)).fetchone() if table else None
    apply_with_psql(dsn, conn, steps)
    after = conn.execute(relfilenode, (table,)).fetchone() if table else None
    left = drift.drift_items(conn, name)
    if left:
        summary = [(i["kind"], i["object_type"], i["identity"], i["property"]) for i in left]
        raise RoundTripFailed("converge", f"{summary}\n{text}")
    return RoundTrip(steps, before != after)


def forget(conn: Conn, name: str, schemas: list[str]) -> None:
    conn.execute("DELETE FROM asymm.drift_baselines WHERE name = %s", (name,))
    # annotations are kept by address: the next sequence's objects of the same names would get them
    conn.execute("DELETE FROM asymm.annotation_entries WHERE target_names[1] = ANY (%s)", (schemas,))
    for schema in schemas:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# -- a schema with one of each kind of object -------------------------------------------------------

GENERATED_SCHEMA = """
CREATE TABLE {s}.a (id int PRIMARY KEY, x int NOT NULL DEFAULT 0, y text, z varchar(20), n numeric(10,2),
                    at timestamptz DEFAULT now());
CREATE TABLE {s}.b (id int PRIMARY KEY, a_id int REFERENCES {s}.a (id), label text UNIQUE,
                    qty int CONSTRAINT b_qty_nonneg CHECK (qty >= 0));
CREATE INDEX a_y ON {s}.a (y);
CREATE INDEX a_lower_y ON {s}.a (lower(y));
CREATE INDEX b_big_qty ON {s}.b (qty) WHERE qty > 10;
CREATE VIEW {s}.v1 AS SELECT id, x, y FROM {s}.a;
CREATE VIEW {s}.v2 AS SELECT id, y FROM {s}.v1 WHERE x > 0;
CREATE MATERIALIZED VIEW {s}.mv AS SELECT a_id, count(*) AS n FROM {s}.b GROUP BY a_id;
CREATE TABLE {s}.p (id int, at date NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE {s}.p_2026_01 PARTITION OF {s}.p FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE {s}.p_2026_02 PARTITION OF {s}.p FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE INDEX p_at ON {s}.p (at);
CREATE TYPE {s}.mood AS ENUM ('sad', 'ok');
CREATE DOMAIN {s}.posint AS int CONSTRAINT posint_positive CHECK (VALUE > 0);
CREATE TYPE {s}.pair AS (l int, r text);
CREATE TABLE {s}.c (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, m {s}.mood, w int,
                    g int GENERATED ALWAYS AS (w * 2) STORED, q {s}.posint, pr {s}.pair);
ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE ON TYPES TO PUBLIC;
CREATE FUNCTION {s}.touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
CREATE TRIGGER b_touch BEFORE UPDATE ON {s}.b FOR EACH ROW EXECUTE FUNCTION {s}.touch();
ALTER TABLE {s}.b ENABLE ROW LEVEL SECURITY;
CREATE POLICY b_positive ON {s}.b FOR SELECT USING (qty > 0);
CREATE FUNCTION {s}.twice(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i * 2';
CREATE SEQUENCE {s}.counter;
"""

NAMES = ["n1", "n2", "tmp", "a", "b", "x", "y"]  # new names, some of them taken: collisions and swaps


def q(conn: Conn, query: str, *args: Any) -> list[tuple[Any, ...]]:
    return conn.execute(query.encode(), args).fetchall()


class Catalog:
    """What a mutation can pick from, read from the live catalog each time."""

    def __init__(self, conn: Conn, schemas: list[str]) -> None:
        self.conn, self.schemas = conn, schemas

    def relations(self, kinds: str, partitions: bool = False) -> list[str]:
        return [
            r[0]
            for r in q(
                self.conn,
                "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY (%s)"
                " AND c.relkind = ANY (%s) AND c.relispartition = %s ORDER BY 1",
                self.schemas,
                list(kinds),
                partitions,
            )
        ]

    def tables(self) -> list[str]:
        return self.relations("r")

    def columns(self, table: str, types: tuple[str, ...] = ()) -> list[tuple[str, str, bool, str, str]]:
        """(name, type, not null, identity, generated) of a table's own columns."""
        rows = q(
            self.conn,
            "SELECT quote_ident(attname), format_type(atttypid, atttypmod), attnotnull, attidentity::text,"
            " attgenerated::text FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped AND attinhcount = 0 ORDER BY attnum",
            table,
        )
        return [r for r in rows if not types or r[1] in types]  # type: ignore[misc]

    def indexes(self) -> list[tuple[str, str]]:
        """(qualified name, table) of indexes that back no constraint and are no partition's."""
        return [
            (r[0], r[1])
            for r in q(
                self.conn,
                "SELECT format('%%I.%%I', n.nspname, ic.relname), i.indrelid::regclass::text FROM pg_index i"
                " JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace"
                " WHERE n.nspname = ANY (%s) AND NOT ic.relispartition"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY 1",
                self.schemas,
            )
        ]

    def constraints(self, types: str = "cfpu") -> list[tuple[str, str, str, bool, str]]:
        """(table, quoted name, type, validated, definition)."""
        return [
            (r[0], r[1], r[2], r[3], r[4])
            for r in q(
                self.conn,
                "SELECT k.conrelid::regclass::text, quote_ident(k.conname), k.contype::text, k.convalidated,"
                " pg_get_constraintdef(k.oid) FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY (%s)"
                " AND k.contype = ANY (%s) AND k.conparentid = 0 ORDER BY 1, 2",
                self.schemas,
                list(types),
            )
        ]

    def types(self, typtypes: str = "edc") -> list[str]:
        """Enums, domains and free-standing composite types."""
        return [
            r[0]
            for r in q(
                self.conn,
                "SELECT format('%%I.%%I', n.nspname, t.typname) FROM pg_type t"
                " JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_class c ON c.oid = t.typrelid"
                " WHERE n.nspname = ANY (%s) AND t.typtype = ANY (%s) AND coalesce(c.relkind, 'c') = 'c'"
                " ORDER BY 1",
                self.schemas,
                list(typtypes),
            )
        ]

    def triggers(self) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in q(
                self.conn,
                "SELECT t.tgrelid::regclass::text, quote_ident(t.tgname) FROM pg_trigger t"
                " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = ANY (%s) AND NOT t.tgisinternal ORDER BY 1, 2",
                self.schemas,
            )
        ]


Mutation = Callable[[Catalog, Chooser, str], "list[str] | None"]


def _name(cat: Catalog, pick: Chooser) -> str:
    return pick.choice(NAMES)


def _relname(qualified: str) -> str:
    return qualified.split(".", 1)[1]


def _column(cat: Catalog, pick: Chooser, types: tuple[str, ...] = (), plain: bool = True) -> tuple[str, str] | None:
    tables = cat.tables()
    if not tables:
        return None
    table = pick.choice(tables)
    cols = [c for c in cat.columns(table, types) if not plain or (not c[3] and not c[4])]
    return (table, pick.choice(cols)[0]) if cols else None


def m_rename_column(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick, plain=False)
    return [f"ALTER TABLE {c[0]} RENAME COLUMN {c[1]} TO {_name(cat, pick)}"] if c else None


def m_swap_columns(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    tables = [t for t in cat.tables() if len(cat.columns(t)) >= 2]
    if not tables:
        return None
    t = pick.choice(tables)
    cols = [c[0] for c in cat.columns(t)]
    a, b = pick.choice(cols), pick.choice(cols)
    if a == b:
        return None
    return [
        f"ALTER TABLE {t} RENAME COLUMN {a} TO swap_tmp",
        f"ALTER TABLE {t} RENAME COLUMN {b} TO {a}",
        f"ALTER TABLE {t} RENAME COLUMN swap_tmp TO {b}",
    ]


def _swap_relations(keyword: str, names: list[str], pick: Chooser) -> list[str] | None:
    same_schema = [(x, y) for x in names for y in names if x < y and x.split(".")[0] == y.split(".")[0]]
    if not same_schema:
        return None
    x, y = pick.choice(same_schema)
    schema = x.split(".")[0]
    return [
        f"ALTER {keyword} {x} RENAME TO swap_tmp",
        f"ALTER {keyword} {y} RENAME TO {_relname(x)}",
        f"ALTER {keyword} {schema}.swap_tmp RENAME TO {_relname(y)}",
    ]


def m_rename_table(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    tables = cat.relations("rp")
    return [f"ALTER TABLE {pick.choice(tables)} RENAME TO {_name(cat, pick)}"] if tables else None


def m_swap_tables(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    return _swap_relations("TABLE", cat.tables(), pick)


def m_rename_index(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    idx = cat.indexes()
    return [f"ALTER INDEX {pick.choice(idx)[0]} RENAME TO {_name(cat, pick)}_i"] if idx else None


def m_swap_indexes(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    return _swap_relations("INDEX", [i[0] for i in cat.indexes()], pick)


def m_rename_constraint(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    cons = cat.constraints("cf")
    if not cons:
        return None
    t, name, *_ = pick.choice(cons)
    return [f"ALTER TABLE {t} RENAME CONSTRAINT {name} TO {_name(cat, pick)}_k"]


def m_move_table(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    tables = [t for t in cat.tables() if not t.startswith(other + ".")]
    return [f"ALTER TABLE {pick.choice(tables)} SET SCHEMA {other}"] if tables else None


def m_move_view(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    views = [v for v in cat.relations("v") if not v.startswith(other + ".")]
    return [f"ALTER VIEW {pick.choice(views)} SET SCHEMA {other}"] if views else None


def m_rename_view(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    views = cat.relations("v")
    return [f"ALTER VIEW {pick.choice(views)} RENAME TO {_name(cat, pick)}_v"] if views else None


def m_int_to_bigint(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick, ("integer",))
    return [f"ALTER TABLE {c[0]} ALTER COLUMN {c[1]} TYPE bigint"] if c else None


def m_text_to_varchar(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick, ("text",))
    return [f"ALTER TABLE {c[0]} ALTER COLUMN {c[1]} TYPE varchar(40)"] if c else None


def m_varchar_to_text(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick, ("character varying(20)", "character varying(40)"))
    return [f"ALTER TABLE {c[0]} ALTER COLUMN {c[1]} TYPE text"] if c else None


def m_set_not_null(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick)
    return [f"ALTER TABLE {c[0]} ALTER COLUMN {c[1]} SET NOT NULL"] if c else None


def m_drop_not_null(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick)
    return [f"ALTER TABLE {c[0]} ALTER COLUMN {c[1]} DROP NOT NULL"] if c else None


def m_set_default(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick, ("integer", "bigint", "text"))
    return [f"ALTER TABLE {c[0]} ALTER COLUMN {c[1]} SET DEFAULT '7'"] if c else None


def m_drop_default(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick)
    return [f"ALTER TABLE {c[0]} ALTER COLUMN {c[1]} DROP DEFAULT"] if c else None


def m_add_column(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    tables = cat.tables()
    kind = pick.choice(["int", "text DEFAULT 'd'", "bigint NOT NULL DEFAULT 1", "numeric", "serial"])
    return [f"ALTER TABLE {pick.choice(tables)} ADD COLUMN {_name(cat, pick)} {kind}"] if tables else None


def m_drop_column(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick, plain=False)
    return [f"ALTER TABLE {c[0]} DROP COLUMN {c[1]} CASCADE"] if c else None


def m_add_check(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick, ("integer", "bigint"))
    valid = pick.choice(["", " NOT VALID"])
    return [f"ALTER TABLE {c[0]} ADD CONSTRAINT {_name(cat, pick)}_k CHECK ({c[1]} > -1000){valid}"] if c else None


def m_drop_constraint(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    cons = cat.constraints()
    if not cons:
        return None
    t, name, *_ = pick.choice(cons)
    return [f"ALTER TABLE {t} DROP CONSTRAINT {name} CASCADE"]


def m_readd_not_valid(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    cons = [k for k in cat.constraints("cf") if k[3]]
    if not cons:
        return None
    t, name, _, _, definition = pick.choice(cons)
    return [f"ALTER TABLE {t} DROP CONSTRAINT {name}", f"ALTER TABLE {t} ADD CONSTRAINT {name} {definition} NOT VALID"]


def m_validate(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    cons = [k for k in cat.constraints("cf") if not k[3]]
    if not cons:
        return None
    t, name, *_ = pick.choice(cons)
    return [f"ALTER TABLE {t} VALIDATE CONSTRAINT {name}"]


def m_create_index(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick, plain=False)
    if not c:
        return None
    form = pick.choice(["({c})", "({c}) WHERE {c} IS NOT NULL", "(({c} IS NULL))", "({c} DESC NULLS LAST)"])
    return [f"CREATE INDEX {_name(cat, pick)}_i ON {c[0]} " + form.format(c=c[1])]


def m_drop_index(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    idx = cat.indexes()
    return [f"DROP INDEX {pick.choice(idx)[0]}"] if idx else None


def m_redefine_index(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    idx = [i for i in cat.indexes() if i[1] in cat.tables()]
    if not idx:
        return None
    name, table = pick.choice(idx)
    cols = cat.columns(table)
    return [f"DROP INDEX {name}", f"CREATE INDEX {_relname(name)} ON {table} ({pick.choice(cols)[0]})"]


def m_create_view(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    rels = cat.relations("rv")
    view = f"CREATE VIEW {other}.{_name(cat, pick)}_v AS SELECT * FROM {pick.choice(rels)}" if rels else None  # noqa: S608
    return [view] if view else None


def m_drop_view(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    views = cat.relations("v")
    return [f"DROP VIEW {pick.choice(views)} CASCADE"] if views else None


def m_drop_matview(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    views = cat.relations("m")
    return [f"DROP MATERIALIZED VIEW {pick.choice(views)}"] if views else None


def m_add_foreign_key(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick, ("integer",))
    targets = [k[0] for k in cat.constraints("p")]
    if not c or not targets:
        return None
    target = pick.choice(targets)
    pk = q(
        cat.conn,
        "SELECT quote_ident(a.attname) FROM pg_constraint k JOIN pg_attribute a"
        " ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] WHERE k.conrelid = %s::regclass"
        " AND k.contype = 'p' AND cardinality(k.conkey) = 1",
        target,
    )
    if not pk:
        return None
    return [f"ALTER TABLE {c[0]} ADD FOREIGN KEY ({c[1]}) REFERENCES {target} ({pk[0][0]}) NOT VALID"]


def m_drop_table(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    tables = cat.relations("rp")
    return [f"DROP TABLE {pick.choice(tables)} CASCADE"] if tables else None


def m_create_table(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    return [f"CREATE TABLE {other}.{_name(cat, pick)}_t (id int PRIMARY KEY, v text)"]


def m_grant(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    rels = cat.relations("rvp")
    what = pick.choice(["SELECT", "INSERT, UPDATE", "ALL"])
    return [f"GRANT {what} ON {pick.choice(rels)} TO {ROLE}"] if rels else None


def m_revoke(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    rels = cat.relations("rvp")
    return [f"REVOKE ALL ON {pick.choice(rels)} FROM {pick.choice([ROLE, 'PUBLIC'])}"] if rels else None


def m_owner(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    rels = cat.relations("r")
    return [f"ALTER TABLE {pick.choice(rels)} OWNER TO {ROLE}"] if rels else None


def m_detach_partition(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    parts = cat.relations("r", partitions=True)
    if not parts:
        return None
    part = pick.choice(parts)
    parent = q(cat.conn, "SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = %s::regclass", part)
    return [f"ALTER TABLE {parent[0][0]} DETACH PARTITION {part}"] if parent else None


def m_attach_partition(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    parents = cat.relations("p")
    loose = [t for t in cat.tables() if [c[0] for c in cat.columns(t)] == ["id", "at", "v"]]
    if not parents or not loose:
        return None
    month = pick.choice(["01", "02", "03", "04"])
    bound = f"FOR VALUES FROM ('2026-{month}-01') TO ('2026-{month}-01'::date + 31)"
    return [f"ALTER TABLE {pick.choice(parents)} ATTACH PARTITION {pick.choice(loose)} {bound}"]


def m_create_partition(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    parents = cat.relations("p")
    if not parents:
        return None
    parent = pick.choice(parents)
    month = pick.choice(["03", "04", "05"])
    name = f"{parent.split('.')[0]}.p_2026_{month}"
    return [f"CREATE TABLE {name} PARTITION OF {parent} FOR VALUES FROM ('2026-{month}-01') TO ('2026-{month}-28')"]


def m_enum_value(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    types = cat.types("e")
    return [f"ALTER TYPE {types[0]} ADD VALUE IF NOT EXISTS '{pick.choice(['happy', 'meh'])}'"] if types else None


def m_enum_rename_value(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    types = cat.types("e")
    return [f"ALTER TYPE {types[0]} RENAME VALUE 'ok' TO '{pick.choice(['fine', 'sad'])}'"] if types else None


def m_rename_type(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    types = cat.types()
    return [f"ALTER TYPE {pick.choice(types)} RENAME TO {_name(cat, pick)}"] if types else None


def m_move_type(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    types = cat.types()
    return [f"ALTER TYPE {pick.choice(types)} SET SCHEMA {other}"] if types else None


HEADS_OR_TAILS: list[bool] = [True, False]


def m_drop_or_create_type(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    types = cat.types()
    if types and bool(pick.choice(HEADS_OR_TAILS)):
        return [f"DROP TYPE {pick.choice(types)} CASCADE"]
    return [f"CREATE TYPE {pick.choice(cat.schemas)}.{_name(cat, pick)} AS ENUM ('x', 'y')"]


def m_domain(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    domains = cat.types("d")
    if not domains:
        return None
    change = pick.choice(
        [
            "SET DEFAULT 5",
            "DROP DEFAULT",
            "SET NOT NULL",
            "DROP NOT NULL",
            "ADD CONSTRAINT small CHECK (VALUE < 1000) NOT VALID",
            "DROP CONSTRAINT IF EXISTS posint_positive",
            "RENAME CONSTRAINT posint_positive TO positive",
        ]
    )
    return [f"ALTER DOMAIN {pick.choice(domains)} {change}"]


def m_composite(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    types = cat.types("c")
    if not types:
        return None
    change = pick.choice(["ADD ATTRIBUTE z numeric", "DROP ATTRIBUTE IF EXISTS l", "DROP ATTRIBUTE IF EXISTS r"])
    return [f"ALTER TYPE {pick.choice(types)} {change} CASCADE"]


def m_default_privileges(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    what = pick.choice(
        [
            f"GRANT SELECT ON TABLES TO {ROLE}",
            "REVOKE USAGE ON TYPES FROM PUBLIC",
            f"GRANT EXECUTE ON FUNCTIONS TO {ROLE}",
        ]
    )
    return [f"ALTER DEFAULT PRIVILEGES IN SCHEMA {pick.choice(cat.schemas)} {what}"]


def m_extension(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    mine = q(
        cat.conn,
        "SELECT e.extname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE n.nspname = ANY (%s) ORDER BY 1",
        cat.schemas,
    )
    if mine and bool(pick.choice(HEADS_OR_TAILS)):
        return [f"DROP EXTENSION {pick.choice(mine)[0]} CASCADE"]
    return [f"CREATE EXTENSION IF NOT EXISTS {pick.choice(['citext', 'seg'])} WITH SCHEMA {pick.choice(cat.schemas)}"]


def m_rename_trigger(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    trg = cat.triggers()
    if not trg:
        return None
    t, name = pick.choice(trg)
    return [f"ALTER TRIGGER {name} ON {t} RENAME TO {_name(cat, pick)}_g"]


def m_disable_trigger(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    trg = cat.triggers()
    if not trg:
        return None
    t, name = pick.choice(trg)
    return [f"ALTER TABLE {t} {pick.choice(['DISABLE', 'ENABLE ALWAYS', 'ENABLE REPLICA'])} TRIGGER {name}"]


def m_drop_trigger(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    trg = cat.triggers()
    if not trg:
        return None
    t, name = pick.choice(trg)
    return [f"DROP TRIGGER {name} ON {t}"]


def m_sequence(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    seqs = cat.relations("S")
    if not seqs:
        return None
    seq = pick.choice(seqs)
    return [
        pick.choice([f"ALTER SEQUENCE {seq} INCREMENT BY 5", f"ALTER SEQUENCE {seq} RENAME TO {_name(cat, pick)}_s"])
    ]


def m_identity(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    tables = cat.tables()
    if not tables:
        return None
    t = pick.choice(tables)
    ident = [c for c in cat.columns(t) if c[3]]
    if ident:
        return [
            pick.choice(
                [
                    f"ALTER TABLE {t} ALTER COLUMN {ident[0][0]} DROP IDENTITY",
                    f"ALTER TABLE {t} ALTER COLUMN {ident[0][0]} SET GENERATED BY DEFAULT",
                ]
            )
        ]
    plain = [c for c in cat.columns(t, ("integer", "bigint")) if c[2] and not c[4]]
    return [f"ALTER TABLE {t} ALTER COLUMN {plain[0][0]} ADD GENERATED BY DEFAULT AS IDENTITY"] if plain else None


def m_drop_expression(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    for t in cat.tables():
        gen = [c for c in cat.columns(t) if c[4]]
        if gen:
            return [f"ALTER TABLE {t} ALTER COLUMN {gen[0][0]} DROP EXPRESSION"]
    return None


def m_function(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    fns = q(
        cat.conn,
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = ANY (%s) AND p.prorettype = 'int4'::regtype",
        cat.schemas,
    )
    if not fns:
        return [f"CREATE FUNCTION {other}.twice(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i * 2'"]
    fn = pick.choice(fns)[0]
    return [
        pick.choice(
            [
                f"ALTER FUNCTION {fn} RENAME TO {_name(cat, pick)}_f",
                f"DROP FUNCTION {fn} CASCADE",
                f"ALTER FUNCTION {fn} STABLE",
            ]
        )
    ]


def m_refresh_or_rename_matview(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    views = cat.relations("m")
    return [f"ALTER MATERIALIZED VIEW {pick.choice(views)} RENAME TO {_name(cat, pick)}_m"] if views else None


def m_row_security(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    tables = cat.relations("rp")
    how = pick.choice(["ENABLE", "DISABLE", "FORCE", "NO FORCE"])
    return [f"ALTER TABLE {pick.choice(tables)} {how} ROW LEVEL SECURITY"] if tables else None


def _policies(cat: Catalog) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in q(
            cat.conn,
            "SELECT y.polrelid::regclass::text, quote_ident(y.polname) FROM pg_policy y"
            " JOIN pg_class c ON c.oid = y.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ANY (%s) ORDER BY 1, 2",
            cat.schemas,
        )
    ]


def m_policy(cat: Catalog, pick: Chooser, other: str) -> list[str] | None:
    c = _column(cat, pick, ("integer", "bigint"))
    policies = _policies(cat)
    choices = ["create"] + (["drop", "rename", "alter"] if policies else [])
    what = pick.choice(choices)
    if what == "create":
        if not c:
            return None
        form = pick.choice(["FOR SELECT USING ({c} > 0)", "AS RESTRICTIVE FOR UPDATE WITH CHECK ({c} IS NOT NULL)"])
        return [f"CREATE POLICY {_name(cat, pick)}_p ON {c[0]} " + form.format(c=c[1])]
    t, name = pick.choice(policies)
    if what == "drop":
        return [f"DROP POLICY {name} ON {t}"]
    if what == "rename":
        return [f"ALTER POLICY {name} ON {t} RENAME TO {_name(cat, pick)}_p"]
    return [f"ALTER POLICY {name} ON {t} TO {pick.choice([ROLE, 'PUBLIC'])}"]


MUTATIONS: dict[str, Mutation] = {
    name[2:]: fn for name, fn in sorted(globals().items()) if name.startswith("m_") and callable(fn)
}


def run_mutations(conn: Conn, schemas: list[str], pick: Chooser, count: int) -> list[str]:
    """Up to ``count`` mutations, each in its own transaction (a refused one is skipped): the
    statements that ran."""
    catalog = Catalog(conn, schemas)
    ran: list[str] = []
    for _ in range(count):
        kind = pick.choice(sorted(MUTATIONS))
        statements = MUTATIONS[kind](catalog, pick, schemas[1])
        if not statements:
            continue
        try:
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement.encode())
        except psycopg.Error:
            continue
        ran.extend(statements)
    return ran


def generated_round_trip(dsn: str, conn: Conn, name: str, pick: Chooser, count: int) -> RoundTrip:
    """One generated sequence on a fresh copy of :data:`GENERATED_SCHEMA`: the property of issue #19."""
    schemas = [f"gen_{name}", f"gen_{name}_x"]
    fresh_schemas(conn, schemas)
    conn.execute(GENERATED_SCHEMA.format(s=schemas[0]).encode())
    # a random baseline: the fixed schema after a few mutations of its own (new tables, views,
    # types, renames, drops), then the sequence under test
    prelude = run_mutations(conn, schemas, pick, pick.choice(PRELUDE_LENGTHS))
    annotated = annotate(conn, schemas[0])
    drift.capture_baseline(conn, name, schemas)
    try:
        ran = run_mutations(conn, schemas, pick, count)
        surviving = [a for a in annotated if a.survives(conn)]
        try:
            trip = check_plan(dsn, conn, name)
            lost = [(a.label, a.now(conn)) for a in surviving if a.now(conn) != (a.label, True)]
            if lost:
                raise RoundTripFailed("annotations", f"annotations of surviving objects moved or lost: {lost}")
        except RoundTripFailed as exc:
            exc.args = (f"{exc.args[0]}\nbaseline after:\n" + ";\n".join(prelude) + "\nmutations:\n" + ";\n".join(ran),)
            raise
        trip.applied = ran
        return trip
    finally:
        forget(conn, name, schemas)


PRELUDE_LENGTHS = [0, 2, 5]

ANNOTATED = [("a", None), ("a", "x"), ("b", "qty"), ("v1", None), ("a_y", None), ("mv", None)]
"""What the generator annotates in :data:`GENERATED_SCHEMA`: tables, columns, a view, an index."""


@dataclass
class Annotated:
    """An annotation the round trip must keep on its object, if the object survives the mutations."""

    id: str
    label: str
    oid: int
    attnum: int | None

    def survives(self, conn: Conn) -> bool:
        """The same object (OID, and column number) still exists after the mutations."""
        if self.attnum is None:
            return bool(q(conn, "SELECT 1 FROM pg_class WHERE oid = %s", self.oid))
        return bool(
            q(
                conn,
                "SELECT 1 FROM pg_attribute WHERE attrelid = %s AND attnum = %s AND NOT attisdropped",
                self.oid,
                self.attnum,
            )
        )

    def now(self, conn: Conn) -> tuple[str, bool] | None:
        """(target, resolved) of this annotation: by its id, else (its object dropped and created
        again by the plan) the user's annotation written back at the same address."""
        rows = q(conn, "SELECT target, resolved FROM asymm.annotations WHERE id = %s", self.id) or q(
            conn,
            "SELECT target, resolved FROM asymm.annotations WHERE target = %s AND source = 'user'"
            " AND derived_from IS NULL",
            self.label,
        )
        return (rows[0][0], rows[0][1]) if rows else None


def annotate(conn: Conn, schema: str) -> list[Annotated]:
    out = []
    for relation, column in ANNOTATED:
        target = f"{schema}.{relation}"
        if not q(
            conn,
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = coalesce(%s, attname)"
            " AND attnum > 0 AND NOT attisdropped",
            target,
            column,
        ):
            continue  # gone in the baseline's own mutations
        args: tuple[Any, ...] = (target,) if column is None else (target, column)
        placeholders = "%s::regclass" + (", %s" if column else "")
        (ident,) = q(
            conn,
            f"SELECT asymm.annotate({placeholders}, 'dataEntity', 'global', 'Stabilization', 'O(log n)', '{{query}}')",
            *args,
        )[0]
        ((label, oid, attnum),) = q(
            conn,
            "SELECT a.target, %s::regclass::oid, (SELECT attnum FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attname = %s) FROM asymm.annotations a WHERE a.id = %s",
            target,
            target,
            column,
            ident,
        )
        out.append(Annotated(str(ident), label, oid, attnum))
    return out
