"""Redis key names: no two tracked tables, and no row and bookkeeping key, ever share a Redis key.

Rows used to reach Redis as ``<prefix>:{schema.table}:<key>`` with the names spliced in as they
are: table ``public."kv}:abc"`` with key ``def`` and table ``public.kv`` with key ``abc}:def`` both
named ``asymm:{public.kv}:abc}:def``, so the owner of one table (any role that can create a table,
once a DBA tracks it) replaced another table's cached rows, and its meta hash landed on the key of
row ``abc}``.  Now names are percent-encoded where needed (:func:`asymm.sync.redis_io.redis_name`).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from asymm.cache import Cache
from asymm.sync import SyncEngine
from asymm.sync.keys import fast_key_text
from asymm.sync.redis_io import (
    check_prefix,
    dropped_name,
    keyset_key,
    parse_key,
    parse_redis_name,
    query_key,
    redis_name,
    results_key,
    row_key,
    table_tag,
)
from asymm.sync.tables import TrackedTable
from tests.harness.roles import role_dsn
from tests.harness.sync_helpers import ASYMM, full_compare, settled, start_daemon, stop_daemon, wait_for

Conn = psycopg.Connection[Any]

# Characters that matter to the encoding (and look like its escapes), then anything else.
_TRICKY = st.sampled_from([*'.%{}:#[]",\\ 2EB5D7é', "%7D", "%2E", "%25", "}:", "\U0001f600"])
NAMES = st.lists(_TRICKY | st.characters(exclude_categories=["Cs"]), max_size=6).map("".join)
PREFIXES = st.from_regex(r"[A-Za-z0-9_.:/@-]{1,12}", fullmatch=True)  # sync.key_prefix's pattern (shorter)


def _hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text between the first ``{`` and the first ``}`` after it."""
    start = key.index("{")
    return key[start + 1 : key.index("}", start + 1)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(PREFIXES, NAMES, NAMES, NAMES), min_size=1, max_size=12))
def test_every_key_names_one_thing_and_decodes_back_to_it(items: list[tuple[str, str, str, str]]) -> None:
    """Injective over (prefix, schema, table, kind, row key), bookkeeping keys included, and
    :func:`parse_key` is its inverse; every key of a table carries that table's tag, and only it."""
    owners: dict[str, tuple[str, str, str, str, str | None]] = {}
    for prefix, schema, table, key in items:
        name = redis_name(schema, table)
        assert check_prefix(prefix) == prefix and parse_redis_name(name) == (schema, table)
        for built, owner in (
            (table_tag(name, prefix), (prefix, schema, table, "meta", None)),
            (keyset_key(name, prefix), (prefix, schema, table, "keys", None)),
            (results_key(name, prefix), (prefix, schema, table, "results", None)),
            (row_key(name, key, prefix), (prefix, schema, table, "row", key)),
        ):
            assert owners.setdefault(built, owner) == owner, f"{built!r} names {owner} and {owners[built]}"
            assert parse_key(built) == owner
            assert _hash_tag(built) == name  # one Cluster slot per table, the scripts' precondition
        with pytest.raises(ValueError):
            parse_key(query_key(prefix, "0" * 64))  # a cached result is no table's key


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NAMES, NAMES), min_size=1, max_size=8), st.lists(st.tuples(NAMES, NAMES), max_size=8))
def test_table_names_never_collide(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> None:
    names = {redis_name(s, t): (s, t) for s, t in a + b}
    assert len(names) == len(set(a + b))
    assert all("}" not in n and "{" not in n for n in names)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NAMES, NAMES | st.integers()), min_size=2, max_size=8, unique=True))
def test_composite_key_texts_are_injective(keys: list[tuple[str, str | int]]) -> None:
    """Parts holding the separator (``", "``), quotes or brackets cannot fake a boundary."""
    table = TrackedTable(
        oid=1,
        name="public.t",
        schema="public",
        table="t",
        key_columns=["a", "b"],
        key_types=["text", "text"],
        sensitive=[],
        state="done",
        cursor=None,
        epoch=None,
    )
    # (text columns: the parts as text; no NUL, which PostgreSQL's text cannot hold: no fast path)
    parts = {tuple(str(p) for p in key) for key in keys if "\x00" not in "".join(map(str, key))}
    texts = {fast_key_text(table.key_types, list(key)): key for key in parts}
    assert len(texts) == len(parts)
    assert all(json.loads(str(text)) == list(key) for text, key in texts.items())


def test_ordinary_names_keep_their_keys() -> None:
    assert row_key(redis_name("public", "orders"), "42") == "asymm:{public.orders}:42"
    assert keyset_key(redis_name("public", "orders"), "asymm:shop") == "asymm:shop:{public.orders}#keys"
    assert row_key(redis_name("public", "kv}:abc"), "def") == "asymm:{public.kv%7D:abc}:def"
    assert redis_name("a.b", "c") == "a%2Eb.c" and redis_name("a", "b.c") == "a.b.c"
    assert dropped_name('["a.b", "c"]') == "a%2Eb.c"
    assert dropped_name("public.kv}:abc") == "public.kv}:abc"  # queued by an older version: its old tag


def _keys_by_table(client: redis.Redis) -> dict[tuple[str, str], set[tuple[str, str | None]]]:
    """Every table key in Redis, decoded, grouped by (schema, table)."""
    out: dict[tuple[str, str], set[tuple[str, str | None]]] = {}
    for raw in client.scan_iter("asymm:{*"):
        _, schema, table, kind, key = parse_key(raw.decode())
        out.setdefault((schema, table), set()).add((kind, key))
    return out


def _row(client: redis.Redis, schema: str, table: str, key: str) -> Any:
    stored = client.hget(row_key(redis_name(schema, table), key), "d")
    return None if stored is None else json.loads(stored)


VICTIM_KEYS = ["abc}:def", "abc}", "abc}#keys", "x"]


def test_hostile_table_names_keep_to_their_own_keys(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    """Tables named to collide with another table's rows and bookkeeping (a brace, a percent
    escape, a dot in a schema name, a composite key whose parts hold the separator, a % in table
    and column names) are synced,
    truncated, re-synced after a flush, renamed and dropped without touching the other tables."""
    conn.execute('CREATE SCHEMA "a.b"')
    conn.execute("CREATE SCHEMA a")
    conn.execute("CREATE TABLE public.kv (k text PRIMARY KEY, v text)")
    conn.execute("INSERT INTO public.kv SELECT k, 'victim ' || k FROM unnest(%s::text[]) k", (VICTIM_KEYS,))
    conn.execute('CREATE TABLE public."kv}:abc" (k text PRIMARY KEY, v text)')
    conn.execute("INSERT INTO public.\"kv}:abc\" VALUES ('def', 'attacker'), ('', 'empty key')")
    conn.execute('CREATE TABLE public."kv%7D:abc" ("k%" text PRIMARY KEY, v text, "s%" text)')
    conn.execute("INSERT INTO public.\"kv%7D:abc\" VALUES ('def', 'percent', 'secret')")
    conn.execute('CREATE TABLE "a.b".c (k int PRIMARY KEY, v text)')
    conn.execute('CREATE TABLE a."b.c" (k int PRIMARY KEY, v text)')
    conn.execute("INSERT INTO \"a.b\".c VALUES (1, 'schema a.b')")
    conn.execute("INSERT INTO a.\"b.c\" VALUES (1, 'schema a')")
    conn.execute('CREATE TABLE public."p""}" (a text, b text, v text, PRIMARY KEY (a, b))')
    conn.execute("INSERT INTO public.\"p\"\"}\" VALUES ('x\", \"y', 'z', '1'), ('x', 'y\", \"z', '2'), ('é', '}', '3')")
    tables = ["public.kv", 'public."kv}:abc"', 'public."kv%7D:abc"', '"a.b".c', 'a."b.c"', 'public."p""}"']
    for table in tables:  # (a % in a name is no placeholder of the sync's statements)
        conn.execute("SELECT asymm.track(%s, sensitive => %s)", (table, ["s%"] if "%" in table else []))
    engine.run_until_idle()

    def intact() -> None:
        assert full_compare(db, redis_url).total == 0
        for key in VICTIM_KEYS:
            assert _row(r, "public", "kv", key) == {"k": key, "v": "victim " + key}, key
        assert _row(r, "a", "b.c", "1") == {"k": 1, "v": "schema a"}
        assert {kind for kind, _ in _keys_by_table(r)[("public", "kv")]} == {"meta", "keys", "row"}
        assert {key for kind, key in _keys_by_table(r)[("public", "kv")] if kind == "row"} == set(VICTIM_KEYS)

    intact()
    assert _row(r, "public", "kv}:abc", "def") == {"k": "def", "v": "attacker"}
    assert _row(r, "public", "kv%7D:abc", "def") == {"k%": "def", "v": "percent"}
    assert _row(r, "a.b", "c", "1") == {"k": 1, "v": "schema a.b"}
    assert _row(r, "public", 'p"}', '["x\\", \\"y", "z"]') == {"a": 'x", "y', "b": "z", "v": "1"}

    cache = Cache(db, redis_url)
    try:
        assert cache.get('public."p""}"', ("é", "}")) == {"a": "é", "b": "}", "v": "3"}
        assert cache.stats.hits == 1  # the key the sync wrote, not a \u-escaped twin
        query = 'SELECT v FROM public."p""}" WHERE a = %s'
        assert cache.query(query, ("x",)) == cache.query(query, ("x",)) == [{"v": "2"}]
        assert cache.stats.query_hits == 1
        conn.execute("UPDATE public.\"p\"\"}\" SET v = 'two' WHERE a = 'x'")
        engine.run_until_idle()
        assert cache.query(query, ("x",)) == [{"v": "two"}]  # the table's generation moved
    finally:
        cache.close()

    conn.execute("UPDATE public.\"kv}:abc\" SET v = 'attacker again'")
    conn.execute("INSERT INTO public.\"kv}:abc\" VALUES ('abc}:def', 'x')")
    conn.execute('TRUNCATE "a.b".c')
    engine.run_until_idle()
    intact()

    r.flushdb()  # Redis lost everything: every table is re-synced, by oid (their names are no regclass)
    engine.run_until_idle()
    intact()

    conn.execute('ALTER TABLE public."kv}:abc" RENAME TO "kv}:abd"')
    engine.run_until_idle()
    intact()
    assert ("public", "kv}:abc") not in _keys_by_table(r)
    assert _row(r, "public", "kv}:abd", "def") == {"k": "def", "v": "attacker again"}

    conn.execute('DROP TABLE public."kv}:abd"')
    conn.execute('DROP SCHEMA "a.b" CASCADE')
    conn.execute('DROP TABLE public."kv%7D:abc"')
    engine.run_until_idle()
    intact()
    assert set(_keys_by_table(r)) == {("public", "kv"), ("a", "b.c"), ("public", 'p"}')}


def test_two_tracked_tables_never_share_a_redis_key(db: str, redis_url: str) -> None:
    """The red-team finding, through the daemon: another role's table, tracked by the DBA, whose
    name splices into the victim's keys, never replaces the victim's row."""
    m_name, m_pw = f"mallory_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(m_name), sql.Literal(m_pw)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(m_name)))
        conn.execute("CREATE TABLE public.kv (k text PRIMARY KEY, v text)")
        conn.execute("INSERT INTO public.kv VALUES ('abc}:def', 'victim'), ('abc}', 'victim too')")
        conn.execute("SELECT asymm.track('public.kv')")
    mallory = role_dsn(db, m_name, m_pw)
    with psycopg.connect(mallory, autocommit=True) as conn:
        conn.execute('CREATE TABLE public."kv}:abc" (k text PRIMARY KEY, v text)')
        conn.execute("INSERT INTO public.\"kv}:abc\" VALUES ('def', 'attacker')")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT asymm.track('public.\"kv}:abc\"')")

    proc = subprocess.Popen(
        [ASYMM, "daemon", "--dsn", db, "--period", "0.05", "--http-port", "0"],
        env={**os.environ, "ASYMM_REDIS_URL": redis_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with psycopg.connect(db, autocommit=True) as conn:
            assert wait_for(
                lambda: (
                    conn.execute("SELECT bool_and(backfill_state = 'done') FROM asymm.sync_tables").fetchone()
                    == (True,)
                ),
                timeout=20,
            )
    finally:
        stop_daemon(proc)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("SELECT asymm.untrack('public.\"kv}:abc\"')")
            conn.execute('DROP TABLE public."kv}:abc"')
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(m_name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(m_name)))

    client = redis.Redis.from_url(redis_url)
    try:
        victim = "asymm:{public.kv}:abc}:def"
        assert client.type(victim) == b"hash"
        assert json.loads(client.hget(victim, "d") or b"null") == {"k": "abc}:def", "v": "victim"}
        assert json.loads(client.hget("asymm:{public.kv}:abc}", "d") or b"null") == {"k": "abc}", "v": "victim too"}
        assert client.hget("asymm:{public.kv%7D:abc}:def", "d") is not None  # the attacker's row, under its own tag
    finally:
        client.close()


def test_keys_under_an_old_unencoded_name_are_cleared_after_an_upgrade(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    """A table tracked by a build that spliced names in unencoded (its ``redis_name`` is
    ``schema.table``, its keys under that text): the next ALTER TABLE clears the old keys and copies
    the table under its encoded name; an ordinary name keeps its keys."""
    conn.execute('CREATE TABLE public."old}:x" (k int PRIMARY KEY, v text)')
    conn.execute("CREATE TABLE public.plain (k int PRIMARY KEY, v text)")
    conn.execute("INSERT INTO public.\"old}:x\" VALUES (1, 'odd')")
    conn.execute("INSERT INTO public.plain VALUES (1, 'plain')")
    conn.execute("SELECT asymm.track('public.\"old}:x\"')")
    conn.execute("SELECT asymm.track('public.plain')")
    engine.run_until_idle()
    conn.execute(
        "UPDATE asymm.sync_tables SET redis_name = CASE WHEN rel = 'public.plain'::regclass"
        " THEN 'public.plain' ELSE 'public.old}:x' END"
    )  # names spliced in, as before
    legacy = "asymm:{public.old}:x}"  # the old meta key, key set and row
    r.hset(legacy, mapping={"epoch": "e", "gen": 1})
    r.hset(legacy + ":1", mapping={"v": 1, "d": "{}"})
    r.sadd(legacy + "#keys", legacy + ":1")
    conn.execute("CREATE TABLE unrelated (i int)")
    conn.execute("ALTER TABLE unrelated ADD COLUMN j int")
    engine.run_until_idle()
    assert not r.exists(legacy, legacy + ":1", legacy + "#keys")
    assert _row(r, "public", "old}:x", "1") == {"k": 1, "v": "odd"}
    assert _row(r, "public", "plain", "1") == {"k": 1, "v": "plain"}
    assert conn.execute("SELECT count(*) FROM asymm.sync_tables WHERE redis_name LIKE '[%'").fetchone() == (2,)
    assert full_compare(db, redis_url).total == 0


def test_dotted_names_sync_apart_through_the_daemon(db: str, redis_url: str) -> None:
    """Issue #16 point 10: ``x."y.z"`` and ``"x.y".z`` used to share ``asymm:{x.y.z}:<key>``, and a
    tracked table with a dot in its name stopped the sync of every table; through the daemon, both
    and an ordinary table keep syncing, each under its own keys."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA x; CREATE SCHEMA "x.y"')
        conn.execute('CREATE TABLE x."y.z" (k int PRIMARY KEY, v text)')
        conn.execute('CREATE TABLE "x.y".z (k int PRIMARY KEY, v text)')
        conn.execute("CREATE TABLE plain (k int PRIMARY KEY, v text)")
        for table, value in (('x."y.z"', "schema x"), ('"x.y".z', "schema x.y"), ("plain", "plain")):
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1, %s)").format(sql.SQL(table)), (value,))
            conn.execute("SELECT asymm.track(%s)", (table,))
        proc = start_daemon(db, redis_url)
        try:
            assert wait_for(lambda: settled(db), timeout=30)
            for table in ('x."y.z"', '"x.y".z', "plain"):
                conn.execute(sql.SQL("UPDATE {} SET v = v || ' again'").format(sql.SQL(table)))
                conn.execute(sql.SQL("INSERT INTO {} VALUES (2, 'two')").format(sql.SQL(table)))
            assert wait_for(lambda: settled(db), timeout=30)
        finally:
            stop_daemon(proc)
    client = redis.Redis.from_url(redis_url)
    try:
        assert _row(client, "x", "y.z", "1") == {"k": 1, "v": "schema x again"}
        assert _row(client, "x.y", "z", "1") == {"k": 1, "v": "schema x.y again"}
        assert _row(client, "public", "plain", "2") == {"k": 2, "v": "two"}
    finally:
        client.close()
    assert full_compare(db, redis_url).total == 0
