"""Issue #16, privacy: no protected value reaches Redis in clear, and protection changes nothing else.

* ``hmac`` mode keeps every other value exactly as the ``drop`` mode does (it used to round every
  number through a Python float);
* a sensitive column stays sensitive when it is renamed (sensitivity follows the column's identity);
* ``Cache.query`` results get the same protection as rows.

Every test scans Redis itself for the secrets (the full comparison trusts the same table list the
sync uses, so it cannot see a leak by itself) and ends with the full PostgreSQL-vs-Redis comparison.
"""

from __future__ import annotations

import json
import re
import subprocess
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asymm.cache import Cache
from asymm.sync import SyncEngine
from asymm.sync.tables import Protector, load_tables
from tests.harness.leaks import leaks
from tests.harness.sync_helpers import full_compare

Conn = psycopg.Connection[Any]
HMAC_KEY = "test-key"  # the key full_compare() protects with


def exact(doc: str) -> Any:
    """A JSON text parsed without losing any number (compare two documents by value, exactly)."""
    return json.loads(doc, parse_float=Decimal, parse_int=Decimal)


# -- point 3: hmac mode keeps every other value exactly --------------------------------------------

NUMBERS = "CREATE TABLE nums (id int PRIMARY KEY, n numeric, f float8, j jsonb, t text, card text)"


def test_hmac_mode_keeps_numbers_exact_through_the_sync(db: str, conn: Conn, r: redis.Redis, redis_url: str) -> None:
    conn.execute(NUMBERS)
    conn.execute(
        "INSERT INTO nums VALUES (1, 12345678901234568856.123456789, 1e300,"
        " '{\"x\": 0.1000000000000000055511}', 'é\"\\', '4111111111111111'),"
        " (2, -0.000000000000000000001, 'NaN', '[1e400]', NULL, NULL)"
    )
    conn.execute("SELECT asymm.track('nums', sensitive => '{card}')")
    conn.execute("SELECT asymm.set_setting('sync.sensitive_mode', 'hmac')")
    eng = SyncEngine(db, redis_url, hmac_key=HMAC_KEY)
    try:
        eng.run_until_idle()
    finally:
        eng.close()
    expected = {str(k): exact(d) for k, d in conn.execute("SELECT id, (to_jsonb(t.*) - 'card')::text FROM nums t")}
    for key, want in expected.items():
        stored = exact(r.hget("asymm:{public.nums}:" + key, "d"))  # type: ignore[arg-type]
        card = stored.pop("card")
        assert stored == want
        assert card is None or card.startswith("hmac:")
    assert exact(r.hget("asymm:{public.nums}:1", "d"))["n"] == Decimal("12345678901234568856.123456789")  # type: ignore[arg-type]
    assert leaks(r, ["4111111111111111"]) == []
    assert full_compare(db, redis_url).total == 0


SAFE_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SAFE_TEXT, inner, max_size=4),
    max_leaves=12,
)
NUMERIC_TEXT = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "0", "-0.0", "1e-30"]),
    st.builds(
        lambda sign, whole, frac: f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}",
        st.sampled_from(["", "-"]),
        st.integers(min_value=0, max_value=10**40),
        st.text("0123456789", max_size=30),
    ),
)
ROWS = st.lists(
    st.tuples(NUMERIC_TEXT, st.floats(), JSON_VALUES, st.none() | SAFE_TEXT, st.none() | SAFE_TEXT),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_hmac_doc_equals_drop_doc_on_every_other_column(conn: Conn, rows: list[tuple[Any, ...]]) -> None:
    """Random numerics (huge, many decimals, negative, NaN and infinities), float8 (exponents),
    jsonb and text with escapes and Unicode: the hmac-mode document of each row, sensitive column
    aside, is the drop-mode document exactly."""
    conn.execute(NUMBERS.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
    conn.execute("TRUNCATE nums")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO nums VALUES (%s, %s::numeric, %s, %s::jsonb, %s, %s)",
            [(i, n, f, json.dumps(j), t, c) for i, (n, f, j, t, c) in enumerate(rows)],
        )
    table = next(t for t in load_tables_or_track(conn).values() if t.table == "nums")
    protector = Protector("hmac", HMAC_KEY)
    for hmac_doc, drop_doc, card in conn.execute(sql_text("SELECT {hmac}, {drop}, card FROM nums t", table)).fetchall():
        protected = exact(protector.protect(table, hmac_doc) or "null")
        digest = protected.pop("card")
        assert protected == exact(drop_doc)
        assert (digest is None) == (card is None)
        assert digest is None or re.fullmatch("hmac:[0-9a-f]{64}", digest)


def load_tables_or_track(conn: Conn) -> dict[int, Any]:
    if conn.execute("SELECT NOT EXISTS (SELECT FROM asymm.sync_tables WHERE rel = 'nums'::regclass)").fetchone()[0]:  # type: ignore[index]
        conn.execute("SELECT asymm.track('nums', sensitive => '{card}')")
    return load_tables(conn)


def sql_text(template: str, table: Any) -> str:
    return template.format(hmac=table.doc_expr("hmac").as_string(), drop=table.doc_expr("drop").as_string())


# -- point 2: a sensitive column stays sensitive when renamed ---------------------------------------

CARDS = "CARD-%s-4111"  # a format() string of PostgreSQL and Python alike; distinctive: a scan finds it


def make_cards(dsn: str, rows: int = 20, dropped_first: bool = False) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE cards (id int PRIMARY KEY, gone int, name text, card text, qty int)")
        if dropped_first:  # a restored copy has no dropped column: its attnums differ from the source's
            conn.execute("ALTER TABLE cards DROP COLUMN gone")
        conn.execute(
            "INSERT INTO cards (id, name, card, qty) SELECT g, 'name ' || g, format(%s, g), g"
            " FROM generate_series(1, %s) g",
            (CARDS, rows),
        )
        conn.execute("SELECT asymm.track('cards', sensitive => '{card}')")


def sync_engine(db: str, conn: Conn, redis_url: str, mode: str) -> SyncEngine:
    conn.execute("SELECT asymm.set_setting('sync.sensitive_mode', %s)", (mode,))
    return SyncEngine(db, redis_url, hmac_key=HMAC_KEY)


def all_cards() -> list[str]:
    """Every card value ever written in the test (current rows and the ones the test wrote)."""
    return [CARDS % i for i in range(1, 200)]


def test_the_cards_are_what_the_scan_looks_for(conn: Conn) -> None:
    make_cards(conn.info.dsn, rows=3)
    assert [c for (c,) in conn.execute("SELECT card FROM cards ORDER BY id")] == all_cards()[:3]


@pytest.mark.parametrize("mode", ["drop", "hmac"])
def test_a_renamed_sensitive_column_stays_protected(
    db: str, conn: Conn, r: redis.Redis, redis_url: str, mode: str
) -> None:
    make_cards(db)
    eng = sync_engine(db, conn, redis_url, mode)
    try:
        eng.run_until_idle()
        conn.execute("ALTER TABLE cards RENAME COLUMN card TO card_no")
        assert conn.execute("SELECT sensitive FROM asymm.sync_tables").fetchone() == (["card_no"],)
        conn.execute("UPDATE cards SET qty = qty + 1, card_no = format(%s, id + 100) WHERE id <= 10", (CARDS,))
        conn.execute(
            "INSERT INTO cards (id, name, card_no, qty) SELECT g, 'n', format(%s, g), 1 FROM generate_series(21, 40) g",
            (CARDS,),
        )
        eng.run_until_idle()
        assert leaks(r, all_cards()) == []
        conn.execute("SELECT asymm.sync_backfill('cards')")
        eng.run_until_idle()
        assert leaks(r, all_cards()) == []
        stored = json.loads(r.hget("asymm:{public.cards}:21", "d"))  # type: ignore[arg-type]
        assert ("card_no" not in stored) if mode == "drop" else stored["card_no"].startswith("hmac:")
        conn.execute("ALTER TABLE cards DROP COLUMN card_no")  # a dropped sensitive column leaves the list
        assert conn.execute("SELECT sensitive FROM asymm.sync_tables").fetchone() == ([],)
        conn.execute("SELECT asymm.sync_backfill('cards')")
        eng.run_until_idle()
    finally:
        eng.close()
    assert full_compare(db, redis_url).total == 0


@pytest.mark.parametrize("mode", ["drop", "hmac"])
def test_swapped_names_do_not_leak(db: str, conn: Conn, r: redis.Redis, redis_url: str, mode: str) -> None:
    make_cards(db)
    eng = sync_engine(db, conn, redis_url, mode)
    try:
        eng.run_until_idle()
        for step in ("card TO tmp", "name TO card", "tmp TO name"):
            conn.execute(f"ALTER TABLE cards RENAME COLUMN {step}")
            conn.execute("UPDATE cards SET qty = qty + 1")
            eng.run_until_idle()
            assert leaks(r, all_cards()) == []
        assert conn.execute("SELECT sensitive FROM asymm.sync_tables").fetchone() == (["name"],)
        stored = json.loads(r.hget("asymm:{public.cards}:3", "d"))  # type: ignore[arg-type]
        assert stored["card"] == "name 3"  # the column now called card is the former name: not sensitive
    finally:
        eng.close()
    assert full_compare(db, redis_url).total == 0


def test_a_missed_event_trigger_over_protects(db: str, conn: Conn, r: redis.Redis, redis_url: str) -> None:
    """Fail closed: with the event trigger off, the sync still protects the renamed column (its
    pinned attnum) and the column that took the old name."""
    make_cards(db)
    conn.execute("ALTER EVENT TRIGGER asymm_sync_ddl_end DISABLE")
    try:
        conn.execute("ALTER TABLE cards RENAME COLUMN card TO card_no")
        conn.execute("ALTER TABLE cards RENAME COLUMN name TO card")
    finally:
        conn.execute("ALTER EVENT TRIGGER asymm_sync_ddl_end ENABLE")
    assert conn.execute("SELECT sensitive FROM asymm.sync_tables").fetchone() == (["card"],)
    assert [t.sensitive for t in load_tables(conn).values()] == [["card", "card_no"]]
    eng = sync_engine(db, conn, redis_url, "drop")
    try:
        eng.run_until_idle()
    finally:
        eng.close()
    assert leaks(r, all_cards()) == []
    assert json.loads(r.hget("asymm:{public.cards}:1", "d")) == {"id": 1, "qty": 1, "gone": None}  # type: ignore[arg-type]
    assert full_compare(db, redis_url).total == 0


def test_pg_dump_restore_keeps_following_the_column(
    sandbox: Any, make_db: Any, tmp_path: Any, r: redis.Redis, redis_url: str
) -> None:
    source = make_db()
    make_cards(source, dropped_first=True)  # card is attnum 4 here, 3 in the restored copy
    dump = tmp_path / "src.dump"
    subprocess.run([sandbox.pg_bindir + "/pg_dump", "-Fc", "-f", str(dump), source], check=True, capture_output=True)
    target = make_db(extension=False)
    with psycopg.connect(target, autocommit=True) as conn:  # pg_restore creates the extension itself
        conn.execute("CREATE EXTENSION plpython3u")
        conn.execute("CREATE EXTENSION pg_stat_statements")
    done = subprocess.run(
        [sandbox.pg_bindir + "/pg_restore", "--exit-on-error", "-d", target, str(dump)], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    with psycopg.connect(target, autocommit=True) as conn:
        assert conn.execute(
            "SELECT attnum FROM pg_attribute WHERE attrelid = 'cards'::regclass AND attname = 'card'"
        ).fetchone() == (3,)
        conn.execute("ALTER TABLE cards RENAME COLUMN card TO card_no")
        conn.execute("ALTER TABLE cards RENAME COLUMN name TO card")
        assert conn.execute("SELECT sensitive FROM asymm.sync_tables").fetchone() == (["card_no"],)
        conn.execute("UPDATE cards SET qty = qty + 1 WHERE id <= 5")
        eng = sync_engine(target, conn, redis_url, "hmac")
        try:
            eng.run_until_idle()
        finally:
            eng.close()
    assert leaks(r, all_cards()) == []
    assert full_compare(target, redis_url).total == 0


# -- point 1: cached query results get the same protection as rows ----------------------------------

PROTECTED = [  # (statement, result column holding the card): cached, with that column protected
    ("SELECT * FROM cards WHERE id <= %s", "card"),
    ("SELECT id, card AS c FROM cards WHERE id <= %s", "c"),
    ("SELECT x.c FROM (SELECT card AS c FROM cards WHERE id <= %s) x", "c"),
    ("WITH w AS (SELECT id, card FROM cards) SELECT w.card FROM w WHERE id <= %s", "card"),
    ("SELECT k.* FROM cards k JOIN cards l ON l.card = k.card WHERE k.id <= %s ORDER BY k.card", "card"),
]
REFUSED = [  # a card could come out transformed: run, never stored
    "SELECT upper(card) AS u FROM cards WHERE id <= %s",
    "SELECT row_to_json(c) AS j FROM cards c WHERE id <= %s",
    "SELECT c AS whole FROM cards c WHERE id <= %s",
    "SELECT card || '' AS x FROM cards WHERE id <= %s",
    "SELECT ROW(card) AS r FROM cards WHERE id <= %s",
    "SELECT CASE WHEN id > 0 THEN card END AS x FROM cards WHERE id <= %s",
    "SELECT (SELECT card FROM cards LIMIT 1) AS s WHERE 1 <= %s",
    "SELECT lower(z) AS l FROM cards AS k(a, b, c, z) WHERE a <= %s",
    "SELECT card FROM cards WHERE id <= %s UNION SELECT name FROM cards",
    "SELECT lower(c) AS l FROM (SELECT card AS c FROM cards WHERE id <= %s) s",
    "SELECT lower(w.card) AS l FROM (SELECT * FROM cards WHERE id <= %s) w",
    "SELECT public.card_of(id) AS c FROM cards WHERE id <= %s",  # a function reading the card itself
]
CACHED_CLEAR = [  # no sensitive value in the result: cached as is
    "SELECT lower(name) AS l, count(*) AS n FROM cards WHERE id <= %s GROUP BY 1",
    "SELECT count(*) AS n FROM cards WHERE card LIKE 'CARD-1%%' AND id <= %s",
    "SELECT id, name FROM cards WHERE card IN (SELECT card FROM cards) AND id <= %s ORDER BY card",
]


@pytest.mark.parametrize("mode", ["drop", "hmac"])
def test_cached_results_protect_sensitive_columns(
    db: str, conn: Conn, r: redis.Redis, redis_url: str, mode: str
) -> None:
    make_cards(db)
    conn.execute(
        "CREATE FUNCTION public.card_of(int) RETURNS text LANGUAGE sql STABLE"
        " AS $$ SELECT card FROM public.cards WHERE id = $1 $$"
    )
    eng = sync_engine(db, conn, redis_url, mode)
    eng.run_until_idle()
    cache = Cache(db, redis_url, hmac_key=HMAC_KEY)
    try:
        row_card = json.loads(r.hget("asymm:{public.cards}:1", "d")).get("card")  # type: ignore[arg-type]
        for statement, column in PROTECTED:
            for _ in range(2):  # miss, then hit: both protected alike
                rows = cache.query(statement, (3,))
                assert rows and all(CARDS % i not in json.dumps(rows, default=str) for i in range(1, 21))
                if mode == "drop":
                    assert all(column not in row for row in rows), statement
                else:
                    assert all(row[column].startswith("hmac:") for row in rows), statement
        if mode == "hmac":  # the digest a result carries is the one its row has in Redis
            assert cache.query("SELECT card FROM cards WHERE id = %s", (1,)) == [{"card": row_card}]
        hits = cache.stats.query_hits
        assert hits >= len(PROTECTED)
        for statement in REFUSED:
            before = cache.stats.query_uncacheable
            assert cache.query(statement, (3,)), statement  # the application gets its answer
            assert cache.stats.query_uncacheable == before + 1, statement
        for statement in CACHED_CLEAR:
            cache.query(statement, (3,))
            cache.query(statement, (3,))
        assert cache.stats.query_hits == hits + len(CACHED_CLEAR)
        # a card number as a parameter: the key is a keyed digest, and the result holds no card
        assert cache.query("SELECT id FROM cards WHERE card = %s", (CARDS % 7,)) == [{"id": 7}]
        assert leaks(r, all_cards()) == []
        conn.execute("ALTER TABLE cards RENAME COLUMN card TO card_no")  # identity, not name
        conn.execute("SELECT asymm.sync_backfill('cards')")  # (the rows' documents name the column)
        eng.run_until_idle()
        renamed = Cache(db, redis_url, hmac_key=HMAC_KEY)
        try:
            rows = renamed.query("SELECT card_no FROM cards WHERE id <= %s", (3,))
            assert rows == [{}] * 3 if mode == "drop" else all(v["card_no"].startswith("hmac:") for v in rows)
        finally:
            renamed.close()
        assert leaks(r, all_cards()) == []
    finally:
        cache.close()
        eng.close()
    assert full_compare(db, redis_url).total == 0


@pytest.mark.parametrize("mode", ["drop", "hmac"])
def test_a_rename_the_running_sync_has_not_seen_yet_does_not_leak(
    db: str, conn: Conn, r: redis.Redis, redis_url: str, mode: str
) -> None:
    """The window between a RENAME COLUMN and the moment the engine (or a Cache) reloads its tables:
    statements built for the old name must not send the renamed column in clear.  The event
    trigger is off here, so the window stays open for the whole test; both read paths are used (the
    separate read of a table new to the batch, then the batch statement's own branch once it is
    hot and analyzed large), and a Cache.get read-through fill with its table cached before."""
    from asymm.cache import Cache

    make_cards(db, rows=1500)
    conn.execute("ANALYZE cards")
    eng = sync_engine(db, conn, redis_url, mode)
    cache = Cache(db, redis_url, hmac_key=HMAC_KEY)
    try:
        eng.run_until_idle()
        assert cache.get("cards", 1) is not None  # (its table info is cached from here on)
        conn.execute("ALTER EVENT TRIGGER asymm_sync_ddl_end DISABLE")
        try:
            conn.execute("ALTER TABLE cards RENAME COLUMN card TO card_no")
            for round_ in range(3):  # the first round makes the table hot in the batch statement
                conn.execute(
                    "UPDATE cards SET qty = qty + 1, card_no = format(%s, id + 100) WHERE id %% 7 = %s", (CARDS, round_)
                )
                eng.run_until_idle()
            r.delete("asymm:{public.cards}:2")
            row = cache.get("cards", 2)
            assert row is not None and "card_no" not in row and "card" not in row
        finally:
            conn.execute("ALTER EVENT TRIGGER asymm_sync_ddl_end ENABLE")
        assert leaks(r, all_cards()) == []
        conn.execute("SELECT asymm.sync_backfill('cards')")  # what the next ALTER TABLE would queue
        eng.invalidate_tables()
        eng.run_until_idle()
    finally:
        eng.close()
        cache.close()
    assert leaks(r, all_cards()) == []
    assert full_compare(db, redis_url).total == 0
