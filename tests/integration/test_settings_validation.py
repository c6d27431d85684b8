"""Every setting has a rule, asymm.set_setting() enforces it, and readers refuse a stored value that breaks it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import errors

Conn = psycopg.Connection[tuple[Any, ...]]

# The values issue 15 found accepted; each broke something later, far from the mistake.
ISSUE_VALUES = [
    ("sync.batch_rows", "-1"),
    ("daemon.pulse_period", "-1 s"),
    ("advisor.budget_mb", "-5"),
    ("sync.sensitive_mode", "encrypt"),
    ("sync.key_prefix", "a{b}c"),
]


def rules(conn: Conn) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return list(
        cur.execute(
            "SELECT d.name, d.value_type, d.default_value, d.min_value, d.max_value, d.allowed_values, d.pattern,"
            "       s.allowed FROM asymm.setting_defaults d JOIN asymm.settings s USING (name) ORDER BY d.name"
        )
    )


def effective(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT name, value, changed FROM asymm.settings ORDER BY name").fetchall()


def within_rule(conn: Conn, rule: dict[str, Any], value: str) -> bool:
    """Is ``value`` inside the declared rule?  Computed here, independently of asymm.setting_check()."""
    if rule["allowed_values"] is not None and value not in rule["allowed_values"]:
        return False
    if rule["pattern"] is not None:
        matched = conn.execute("SELECT %s::text ~ %s::text", (value, rule["pattern"])).fetchone()
        if not (matched and matched[0]):
            return False
    kind = rule["value_type"]
    if kind == "integer":  # parsed as PostgreSQL parses it, compared here; the daemon parses it too
        parsed = conn.execute("SELECT %s::text::bigint", (value,)).fetchone()
        assert parsed is not None
        return int(rule["min_value"]) <= int(parsed[0]) == int(value) <= int(rule["max_value"])
    if kind == "number":
        parsed = conn.execute("SELECT %s::text::float8", (value,)).fetchone()
        assert parsed is not None
        number = float(parsed[0])
        return (
            math.isfinite(number)
            and number == float(value)
            and float(rule["min_value"]) <= number <= float(rule["max_value"])
        )
    if kind == "interval":
        row = conn.execute(
            "SELECT %s::text::interval BETWEEN %s::text::interval AND %s::text::interval",
            (value, rule["min_value"], rule["max_value"]),
        ).fetchone()
        return bool(row and row[0])
    if kind == "boolean":
        return conn.execute("SELECT %s::text::boolean IS NOT NULL", (value,)).fetchone() == (True,)
    return True


@pytest.mark.parametrize(("name", "value"), ISSUE_VALUES)
def test_the_values_of_the_issue_are_refused(conn: Conn, name: str, value: str) -> None:
    before = effective(conn)
    with pytest.raises(errors.InvalidParameterValue) as refused:
        conn.execute("SELECT asymm.set_setting(%s, %s)", (name, value))
    diag = refused.value.diag
    assert name in (diag.message_primary or "")
    allowed = conn.execute("SELECT allowed FROM asymm.settings WHERE name = %s", (name,)).fetchone()
    assert allowed is not None and allowed[0] in (diag.message_hint or "")
    assert effective(conn) == before


def test_the_hint_says_what_is_allowed(conn: Conn) -> None:
    with pytest.raises(errors.InvalidParameterValue) as refused:
        conn.execute("SELECT asymm.set_setting('sync.batch_rows', '-1')")
    assert refused.value.diag.message_hint == "sync.batch_rows takes an integer from 1 to 100000."
    with pytest.raises(errors.InvalidParameterValue) as refused:
        conn.execute("SELECT asymm.set_setting('sync.sensitive_mode', 'encrypt')")
    assert refused.value.diag.message_hint == "sync.sensitive_mode takes one of drop, hmac."
    with pytest.raises(errors.InvalidParameterValue):
        conn.execute("SELECT asymm.set_setting('advisor.min_gain_fraction', 'NaN')")
    with pytest.raises(errors.InvalidParameterValue):
        conn.execute("SELECT asymm.set_setting('telemetry.spike_factor', 'Infinity')")
    # a lock_timeout is pasted into SET lock_timeout: only the GUC's own spelling passes
    with pytest.raises(errors.InvalidParameterValue):
        conn.execute("SELECT asymm.set_setting('drift.lock_timeout', '2 seconds')")
    with pytest.raises(errors.InvalidParameterValue):
        conn.execute("SELECT asymm.set_setting('drift.lock_timeout', '1s''; DROP TABLE x; --')")


def test_every_setting_has_a_rule_its_default_follows(conn: Conn) -> None:
    every = rules(conn)
    assert len(every) > 30
    for rule in every:
        if rule["value_type"] in ("integer", "number", "interval"):
            assert rule["min_value"] is not None and rule["max_value"] is not None, rule["name"]
        elif rule["value_type"] == "text":
            assert rule["allowed_values"] is not None or rule["pattern"] is not None, rule["name"]
        assert rule["allowed"], rule["name"]
        assert within_rule(conn, rule, rule["default_value"]), rule["name"]
        assert conn.execute("SELECT asymm.setting_check(%s, %s)", (rule["name"], rule["default_value"])).fetchone() == (
            None,
        ), rule["name"]
        # both bounds are inside, the rule really is the declared one
        for bound in (rule["min_value"], rule["max_value"]):
            if bound is not None and rule["pattern"] is None:
                assert conn.execute("SELECT asymm.set_setting(%s, %s)", (rule["name"], bound)).fetchone() == (bound,)
    conn.execute("DELETE FROM asymm.setting_values")


def test_a_setting_without_a_rule_cannot_be_declared(conn: Conn) -> None:
    with pytest.raises(errors.CheckViolation):
        conn.execute(
            "INSERT INTO asymm.setting_defaults (name, default_value, value_type, description)"
            " VALUES ('x.unbounded', '1', 'integer', 'no range')"
        )


def _candidates(rule: dict[str, Any]) -> st.SearchStrategy[str]:
    """Values near the rule (bounds, allowed values, their neighbours) and anywhere else."""
    near = [v for v in (rule["default_value"], rule["min_value"], rule["max_value"]) if v is not None]
    near += list(rule["allowed_values"] or [])
    numbers = st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "inf", " 5 ", "+1", "1e3", "0x10"]),
    )
    intervals = st.builds(
        lambda n, unit: f"{n} {unit}",
        st.integers(min_value=-(10**7), max_value=10**7),
        st.sampled_from(["us", "ms", "s", "min", "h", "d", "days", "mon", "years", "seconds"]),
    )
    texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=300)
    return st.one_of(
        st.sampled_from(near),
        numbers,
        intervals,
        texts,
        st.sampled_from(["", "true", "false", "on", "{", "a{b}c", "'; SELECT 1; --", "é" * 2000]),
    )


@st.composite
def _setting_and_value(draw: st.DrawFn, every: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    rule = draw(st.sampled_from(every))
    return rule, draw(_candidates(rule))


def test_fuzz_every_setting_either_takes_a_value_inside_its_rule_or_refuses_it(make_db: Callable[..., str]) -> None:
    with psycopg.connect(make_db(), autocommit=True) as conn:
        every = rules(conn)

        @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(_setting_and_value(every))
        def check(case: tuple[dict[str, Any], str]) -> None:
            rule, value = case
            before = effective(conn)
            try:
                stored = conn.execute("SELECT asymm.set_setting(%s, %s)", (rule["name"], value)).fetchone()
            except errors.InvalidParameterValue as exc:
                assert rule["name"] in (exc.diag.message_primary or "")
                assert rule["name"] in (exc.diag.message_hint or "")
                assert effective(conn) == before
                assert not within_rule_safely(conn, rule, value), (rule["name"], value)
                return
            assert stored == (value,)
            assert within_rule(conn, rule, value), (rule["name"], value)
            # what is stored is read back as it is, and readers take it
            assert conn.execute("SELECT asymm.setting(%s)", (rule["name"],)).fetchone() == (value,)

        check()


def within_rule_safely(conn: Conn, rule: dict[str, Any], value: str) -> bool:
    """:func:`within_rule`, with "cannot even be parsed" meaning outside."""
    try:
        return within_rule(conn, rule, value)
    except (ValueError, psycopg.DataError):
        return False


def test_a_stored_value_that_breaks_the_rule_is_refused_when_read(conn: Conn) -> None:
    # as if stored before the rules existed (or written into the table directly)
    conn.execute("INSERT INTO asymm.setting_values (name, value) VALUES ('sync.batch_rows', '-1')")
    with pytest.raises(errors.InvalidParameterValue) as refused:
        conn.execute("SELECT asymm.setting('sync.batch_rows')")
    assert "sync.batch_rows" in (refused.value.diag.message_primary or "")
    assert "asymm.reset_setting('sync.batch_rows')" in (refused.value.diag.message_hint or "")
    # the advisor reads its settings through asymm.setting() too
    conn.execute("INSERT INTO asymm.setting_values (name, value) VALUES ('advisor.budget_mb', '-5')")
    from asymm.advisor.advise import settings_from_db

    with pytest.raises(errors.InvalidParameterValue, match=r"advisor\.budget_mb"):
        settings_from_db(conn)
    conn.execute("SELECT asymm.reset_setting('sync.batch_rows')")
    assert conn.execute("SELECT asymm.setting('sync.batch_rows')").fetchone() == ("2000",)


def test_upgrade_warns_about_stored_values_the_rules_refuse(make_db: Callable[..., str]) -> None:
    dsn = make_db(extension=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION asymm VERSION '0.1.0' CASCADE")
        conn.execute("SELECT asymm.set_setting('daemon.stale_after', '-1 s')")  # 0.1.0 takes it
        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(f"{diag.severity}: {diag.message_primary}"))
        conn.execute("ALTER EXTENSION asymm UPDATE")
        assert any(n.startswith("WARNING") and "daemon.stale_after" in n for n in notices), notices
        with pytest.raises(errors.InvalidParameterValue, match=r"daemon\.stale_after"):
            conn.execute("SELECT asymm.status()")
