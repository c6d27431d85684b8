"""One canonical key text per row (issue #16, point 8), shared by the capture, the daemon and the cache.

``Cache.get`` used to spell the key as Python's ``str()`` does (``'007'``, an upper-case uuid) and
fill a shadow key the daemon never updated; and the capture spelled keys with the writer's session
settings, so a timestamptz key written under two time zones had two Redis keys.
"""

from __future__ import annotations

import datetime
import re
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asymm.cache import Cache
from asymm.errors import AsymmError
from asymm.sync import SyncEngine
from asymm.sync.keys import KEY_SETTINGS
from asymm.sync.redis_io import keyset_key, redis_name
from tests.harness.sync_helpers import full_compare

Conn = psycopg.Connection[Any]

TABLES = {  # table -> key column types
    "k_int": ["integer"],
    "k_big": ["bigint"],
    "k_text": ["text"],
    "k_uuid": ["uuid"],
    "k_num": ["numeric"],
    "k_tstz": ["timestamp with time zone"],
    "k_date": ["date"],
    "k_bool": ["boolean"],
    "k_bytea": ["bytea"],
    "k_float": ["double precision"],
    "k_comp": ["integer", "text", "timestamp with time zone", "uuid"],
}


def _create(conn: Conn) -> None:
    for table, types in TABLES.items():
        cols = ", ".join(f"k{i} {t}" for i, t in enumerate(types))
        keys = ", ".join(f"k{i}" for i in range(len(types)))
        conn.execute(f"CREATE TABLE {table} ({cols}, v int NOT NULL, PRIMARY KEY ({keys}))")
        conn.execute("SELECT asymm.track(%s)", (table,))


def _row_keys(client: redis.Redis, table: str) -> set[bytes]:
    """The table's keys that hold a live row (tombstones of deleted rows left out)."""
    members = client.smembers(keyset_key(redis_name("public", table)))
    return {m for m in members if client.hexists(m, "d") and not client.hexists(m, "t")}


def test_the_sql_and_the_c_pin_the_settings_the_python_names(conn: Conn) -> None:
    """The canonical key's settings are written in Python, in the SET clauses of
    asymm.sync_key_text and in the capture's C (key_settings, set only for key types that read
    them): all three agree."""
    config = conn.execute(
        "SELECT p.proconfig FROM pg_proc p WHERE p.pronamespace = 'asymm'::regnamespace AND p.proname = 'sync_key_text'"
    ).fetchone()
    assert config is not None
    assert {f"{k}={v}" for k, v in KEY_SETTINGS} <= set(config[0])
    source = (Path(__file__).parents[2] / "extension" / "src" / "sync.c").read_text()
    table = source[source.index("key_settings[][2] = {") :]
    in_c = re.findall(r'\{"([^"]+)", "([^"]+)"\}', table[: table.index("};")])
    assert sorted(in_c) == sorted(KEY_SETTINGS)


def test_cache_spellings_reach_the_daemons_key(
    db: str, conn: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str
) -> None:
    """'007' for an int key, an upper-case or braced uuid, non-ASCII text: each is the key the daemon
    writes, so an update made after the read is what the next read returns."""
    conn.execute("CREATE TABLE ki (k int PRIMARY KEY, v text)")
    conn.execute("CREATE TABLE ku (k uuid PRIMARY KEY, v text)")
    conn.execute("CREATE TABLE kt (k text PRIMARY KEY, v text)")
    u = uuid.uuid4()
    conn.execute("INSERT INTO ki VALUES (7, 'old')")
    conn.execute("INSERT INTO ku VALUES (%s, 'old')", (u,))
    conn.execute("INSERT INTO kt VALUES ('é\u00e9😀', 'old')")
    for table in ("ki", "ku", "kt"):
        conn.execute("SELECT asymm.track(%s)", (table,))
    engine.run_until_idle()
    r.flushdb()  # every read below misses and fills
    engine.run_until_idle()  # (re-synced: keys back; clear the rows again, keep the meta)
    for table in ("ki", "ku", "kt"):
        for key in _row_keys(r, table):
            r.delete(key)
            r.srem(keyset_key(redis_name("public", table)), key)
    cache = Cache(db, redis_url)
    try:
        spellings = {
            "ki": ["007", " 7", 7, "+7"],
            "ku": [str(u).upper(), "{" + str(u) + "}", u, u.hex],
            "kt": ["é\u00e9😀"],
        }
        for table, keys in spellings.items():
            for key in keys:
                assert cache.get(table, key) == {
                    "k": 7 if table == "ki" else str(u) if table == "ku" else "é\u00e9😀",
                    "v": "old",
                }, (table, key)
            conn.execute(f"UPDATE {table} SET v = 'new'")  # noqa: S608 (constant names)
        engine.run_until_idle()
        for table, keys in spellings.items():
            assert len(_row_keys(r, table)) == 1, table
            for key in keys:
                assert cache.get(table, key)["v"] == "new", (table, key)  # type: ignore[index]
        with pytest.raises(AsymmError, match="invalid key"):
            cache.get("ki", "abc")
        with pytest.raises(AsymmError, match="invalid key"):
            cache.get("ku", "not-a-uuid")
        with pytest.raises(AsymmError, match="2 value"):
            cache.get("ki", (1, 2))
    finally:
        cache.close()
    assert full_compare(db, redis_url).total == 0


TIMEZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Europe/Berlin"]
DATESTYLES = ["ISO, MDY", "SQL, DMY", "German", "Postgres, YMD", "ISO, DMY"]
SESSION = st.fixed_dictionaries(
    {
        "TimeZone": st.sampled_from(TIMEZONES),
        "DateStyle": st.sampled_from(DATESTYLES),
        "IntervalStyle": st.sampled_from(["postgres", "iso_8601", "sql_standard", "postgres_verbose"]),
        "extra_float_digits": st.integers(-15, 3).map(str),
        "bytea_output": st.sampled_from(["hex", "escape"]),
    }
)
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=8)
OFFSETS = [
    datetime.UTC,
    datetime.timezone(datetime.timedelta(hours=5, minutes=45)),
    datetime.timezone(-datetime.timedelta(hours=3)),
]
INSTANT = st.datetimes(
    min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(2100, 1, 1), timezones=st.sampled_from(OFFSETS)
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "integer": st.integers(-(2**31), 2**31 - 1),
    "bigint": st.integers(-(2**63), 2**63 - 1),
    "text": TEXT,
    "uuid": st.uuids(),
    "numeric": st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**9), max_value=10**9),
    "timestamp with time zone": INSTANT,
    "date": st.dates(),
    "boolean": st.booleans(),
    "bytea": st.binary(max_size=6),
    "double precision": st.floats(allow_nan=False, width=64),
}


def _spellings(key_type: str, value: Any) -> list[Any]:
    """Python spellings of one value that all name the same key (the stored value's own spelling
    included: numeric and float keys are looked up as stored, their equal spellings differ)."""
    if key_type in ("integer", "bigint"):
        return [value, str(value), ("-" if value < 0 else "+") + "00" + str(abs(value))]
    if key_type == "uuid":
        return [value, str(value).upper(), "{" + str(value) + "}"]
    if key_type == "timestamp with time zone":
        return [value, value.astimezone(datetime.UTC), value.isoformat()]
    if key_type == "date":
        return [value, value.isoformat()]
    if key_type == "boolean":
        return [value, "yes" if value else "no"]
    if key_type == "bytea":
        return [value, "\\x" + value.hex().upper()]
    if key_type == "numeric":
        return [value, str(value)]
    return [value]


def _key_of(types: list[str], values: list[Any]) -> Any:
    return values[0] if len(types) == 1 else tuple(values)


@pytest.fixture
def tracked(conn: Conn) -> Conn:
    _create(conn)
    return conn


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_key_per_row_whatever_the_sessions_and_spellings(
    db: str, tracked: Conn, engine: SyncEngine, r: redis.Redis, redis_url: str, data: st.DataObject
) -> None:
    """Rows written by sessions with random TimeZone/DateStyle/IntervalStyle/extra_float_digits/
    bytea_output, read through Cache.get under other spellings of their keys, then updated by another
    such session: one Redis key per row, and every read after the sync returns the current row."""
    for table in TABLES:
        tracked.execute(f"DELETE FROM {table}")  # noqa: S608 (each example starts empty)
    rows: dict[str, list[list[Any]]] = {}
    for table, types in TABLES.items():
        part = st.tuples(*(VALUES[t] for t in types)).map(list)
        rows[table] = data.draw(st.lists(part, min_size=1, max_size=3, unique_by=lambda v: repr(v)), label=table)
    with psycopg.connect(db, autocommit=True) as writer:
        for name, value in data.draw(SESSION, label="writer").items():
            writer.execute("SELECT set_config(%s, %s, false)", (name, value))
        for table, values in rows.items():
            cols = ", ".join(f"k{i}" for i in range(len(TABLES[table])))
            marks = ", ".join(["%s"] * len(TABLES[table]))
            for row in values:
                writer.execute(
                    f"INSERT INTO {table} VALUES ({marks}, 1) ON CONFLICT ({cols}) DO NOTHING",  # noqa: S608
                    row,
                )
    engine.run_until_idle()
    cache = Cache(db, redis_url)
    try:
        for table, values in rows.items():
            for row in values:
                assert cache.get(table, _key_of(TABLES[table], row)) is not None, (table, row)
                if len(TABLES[table]) == 1:
                    for spelling in _spellings(TABLES[table][0], row[0]):
                        assert cache.get(table, spelling) is not None, (table, spelling)
        with psycopg.connect(db, autocommit=True) as writer:
            for name, value in data.draw(SESSION, label="updater").items():
                writer.execute("SELECT set_config(%s, %s, false)", (name, value))
            for table in TABLES:
                writer.execute(f"UPDATE {table} SET v = v + 1")  # noqa: S608 (constant names)
        engine.run_until_idle()
        for table, values in rows.items():
            count = tracked.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            assert count is not None and len(_row_keys(r, table)) == count[0], table
            for row in values:
                spellings = _spellings(TABLES[table][0], row[0]) if len(TABLES[table]) == 1 else [tuple(row)]
                for spelling in spellings:
                    got = cache.get(table, spelling)
                    assert got is not None and got["v"] == 2, (table, spelling, got)  # (inserted as 1)
    finally:
        cache.close()
    assert full_compare(db, redis_url).total == 0


def test_an_invalid_key_part_is_echoed_short(conn: Conn) -> None:
    """A 100 kB key part must not come back whole in the error (the SQL fuzzer found it did)."""
    conn.execute("CREATE TABLE k (id int PRIMARY KEY)")
    conn.execute("SELECT asymm.track('k')")
    with pytest.raises(psycopg.errors.InvalidTextRepresentation) as caught:
        conn.execute("SELECT asymm.sync_key_text('k', ARRAY[repeat('x', 100000)])")
    message = caught.value.diag.message_primary or ""
    assert message.startswith("invalid key for public.k: invalid input syntax for type integer")
    assert len(message) < 300 and "characters)" in message
