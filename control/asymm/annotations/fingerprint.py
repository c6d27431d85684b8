"""The query fingerprint, computed exactly as the server computes it (``asymm.query_fingerprint``).

Why a fingerprint of our own: query annotations must not be keyed by ``queryid`` (it changes when a
table is dropped and recreated), and pglast's fingerprint (libpg_query) is not available inside the
server, whose PL/Python has only the standard library.  So the extension normalizes the text with a
small tokenizer ("asymm fingerprint v1", :mod:`asymm.annotations.normalize`, which
``extension/build.py`` splices into ``asymm.normalize_query``) and hashes it; this module hashes
the same normalization for the control plane, and ``tests/test_annotations_properties.py`` checks
that both give identical results.  pglast is used here only to check that a text is one
parseable statement before it is sent to the server.
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
