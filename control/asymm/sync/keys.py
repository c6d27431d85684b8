"""The canonical key text of a row: the one spelling the capture, the daemon and the cache share.

Why: output functions read session settings (TimeZone, DateStyle, ...), so two writers with
different sessions would name one row by two Redis keys; the text is computed under
:data:`KEY_SETTINGS` everywhere, and :class:`KeyCanon` maps what an application passes to
``Cache.get`` onto it, never by guessing.  Details: docs/sync.md.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import uuid
from collections import OrderedDict
from typing import Any

import psycopg

from asymm.errors import AsymmError

# (name, value) as SET takes them; extension/src/sync.c (key_settings) and the SET clauses of
# asymm.sync_key_text repeat them (tests/integration/test_sync_canonical_keys.py checks that they agree).
KEY_SETTINGS: tuple[tuple[str, str], ...] = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)

_INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
_PG_SPACE = " \t\n\r\f\v"  # what PostgreSQL's integer input skips around the digits (isspace)
_DIGITS = re.compile(r"[+-]?[0-9]+", re.ASCII)
_UUID = re.compile(
    r"(\{)?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})(\})?", re.ASCII | re.IGNORECASE
)
# Types whose equal values have one text each (under KEY_SETTINGS): not numeric (1.5 = 1.50),
# float (0 = -0), interval (1 day = 24 hours), or any type this list does not name.
_EXACT = re.compile(
    r"smallint|integer|bigint|text|uuid|boolean|date|bytea|character varying(\([0-9]+\))?"
    r"|character(\([0-9]+\))?|timestamp(\([0-6]\))? with(out)? time zone"
)
_VARCHAR = re.compile(r"character varying\(([0-9]+)\)")


def pin_key_settings(conn: psycopg.Connection[Any], *, local: bool = False) -> None:
    """Give ``conn`` the settings the key text is computed under (``local``: this transaction only)."""
    names, values = zip(*KEY_SETTINGS, strict=True)
    conn.execute(
        "SELECT pg_catalog.set_config(s.name, s.value, %s)"
        " FROM ROWS FROM (pg_catalog.unnest(%s::text[]), pg_catalog.unnest(%s::text[])) AS s(name, value)",
        (local, list(names), list(values)),
    )


def _as_text(value: Any) -> str:
    """A Python value as text its PostgreSQL type's input function reads as the same value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, float):
        return repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()  # (an offset, if any, is in the text: no session time zone applies)
    if isinstance(value, datetime.timedelta):
        return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    raise AsymmError(f"a key part of type {type(value).__name__} is not supported: pass it as a string")


def _fast(key_type: str, value: Any) -> Any:
    """The part's canonical value (an int or a str) when Python knows it exactly, else None."""
    if key_type in _INT_RANGES:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _DIGITS.fullmatch(value.strip(_PG_SPACE)):
            number = int(value.strip(_PG_SPACE))
        else:
            return None
        bound = _INT_RANGES[key_type]
        return number if -bound <= number < bound else None  # (out of range: PostgreSQL's error)
    if key_type == "uuid":
        if isinstance(value, uuid.UUID):
            return str(value)
        match = _UUID.fullmatch(value) if isinstance(value, str) else None
        if match is None or (match.group(1) is None) != (match.group(7) is None):
            return None
        return "-".join(match.group(i) for i in range(2, 7)).lower()
    limit = _VARCHAR.fullmatch(key_type)
    if key_type in ("text", "character varying") or limit:
        if not isinstance(value, str) or "\x00" in value or (limit and len(value) > int(limit.group(1))):
            return None  # (NUL: PostgreSQL refuses it; too long: it refuses or truncates trailing spaces)
        try:
            value.encode()
        except UnicodeEncodeError:
            raise AsymmError(f"key part {value!r} is not valid text (a lone surrogate)") from None
        return value
    return None


def exact_key_types(key_types: list[str]) -> bool:
    """Whether every key column's equal values share one text, so a key text names one row exactly."""
    return all(_EXACT.fullmatch(t) for t in key_types)


def fast_key_text(key_types: list[str], parts: list[Any]) -> str | None:
    """The canonical key text of ``parts`` computed in Python, or None if some part needs PostgreSQL."""
    values = [_fast(t, p) for t, p in zip(key_types, parts, strict=True)]
    if any(v is None for v in values):
        return None
    if len(values) == 1:
        return str(values[0])
    # jsonb's text: ", " between elements, strings escaped as escape_json does (", \\, \b \f \n \r
    # \t, other control characters as lower-case \u00xx, everything else as is).
    return json.dumps(values, ensure_ascii=False)


def key_parts(key_columns: list[str], key: Any) -> list[Any]:
    """``key`` as a list of one value per key column (a scalar for a one-column key, or a sequence)."""
    if isinstance(key, (list, tuple)):
        parts = list(key)
    elif len(key_columns) == 1:
        parts = [key]
    else:
        raise AsymmError(f"the key has {len(key_columns)} columns ({', '.join(key_columns)}): pass a tuple")
    if len(parts) != len(key_columns):
        raise AsymmError(
            f"the key has {len(key_columns)} column(s) ({', '.join(key_columns)}), got {len(parts)} value(s)"
        )
    if any(p is None for p in parts):
        raise AsymmError("a primary-key value cannot be None")
    return parts


class KeyCanon:
    """Canonical key texts for one connection, with the answers PostgreSQL gave memoised (LRU)."""

    def __init__(self, conn: psycopg.Connection[Any], size: int = 10_000) -> None:
        self.conn = conn
        self.size = size
        self._memo: OrderedDict[tuple[int, tuple[str, ...], tuple[str, ...]], str] = OrderedDict()

    def text(self, oid: int, key_columns: list[str], key_types: list[str], key: Any) -> str:
        parts = key_parts(key_columns, key)
        fast = fast_key_text(key_types, parts)
        if fast is not None:
            return fast
        texts = [_as_text(p) for p in parts]
        memo = (oid, tuple(key_types), tuple(texts))  # (PostgreSQL sees only the texts)
        if memo in self._memo:
            self._memo.move_to_end(memo)
            return self._memo[memo]
        try:
            row = self.conn.execute(
                "SELECT asymm.sync_key_text(%s::oid::regclass, %s::text[])", (oid, texts)
            ).fetchone()
        except psycopg.errors.DataError as exc:
            raise AsymmError(f"invalid key {key!r}: {exc.diag.message_primary}") from None
        assert row is not None and row[0] is not None
        self._memo[memo] = str(row[0])
        if len(self._memo) > self.size:
            self._memo.popitem(last=False)
        return str(row[0])
