"""The query fingerprint, computed exactly as the server computes it (``asymm.query_fingerprint``).

Why our own: ``queryid`` changes when a table is recreated, and libpg_query is not available to
the server's PL/Python. One tokenizer (:mod:`asymm.annotations.normalize`) serves both: build.py
splices it into ``asymm.normalize_query`` and this module imports it (docs/architecture.md).
"""

from __future__ import annotations

import hashlib

import pglast

from asymm.annotations.normalize import normalize_query
from asymm.errors import AsymmError

__all__ = ["check_single_statement", "normalize_query", "query_fingerprint"]


def query_fingerprint(query: str) -> str:
    """First 16 hex digits of the SHA-256 of :func:`normalize_query` (the shape of pglast's)."""
    return hashlib.sha256(normalize_query(query).encode("utf-8")).hexdigest()[:16]


def check_single_statement(query: str) -> None:
    """Raise :class:`AsymmError` unless ``query`` parses (pglast) as exactly one statement."""
    try:
        statements = pglast.parse_sql(query)
    except pglast.parser.ParseError as exc:
        raise AsymmError(f"the query does not parse: {exc}") from None
    if len(statements) != 1:
        raise AsymmError(f"give exactly one SQL statement, not {len(statements)}")
