"""Errors that carry a message meant for the person at the terminal.

The CLI turns an :class:`AsymmError` into one line on stderr and exit code 1; anything else that
escapes is a bug and is reported as such (still without a traceback unless ``ASYMM_DEBUG=1``).
"""

from __future__ import annotations

from typing import Any


class AsymmError(Exception):
    """An operational failure the user can act on: a server down, a missing extension, bad data."""


class SandboxError(AsymmError):
    """The throwaway PostgreSQL/Redis sandbox could not be started, found or stopped."""


class UnsafeDirectoryError(SandboxError):
    """A state directory (or file in it) that someone else could have made or changed: refused, never used."""


def _flat(text: str) -> str:
    return " ".join(text.split())


def pg_error_line(exc: Any) -> str:
    """One line for a PostgreSQL error: its primary message, then its hint.

    Why not ``str(exc)``: that is libpq's whole report, and for an error raised in PL/pgSQL its
    CONTEXT lines quote every statement on the way (whole queries, flattened into one unreadable
    line).  The CONTEXT is for debugging (``ASYMM_DEBUG=1`` or the server log); the person at the
    terminal needs what went wrong and what to do.  Errors without a server message (a refused
    connection, a broken socket) are libpq's text, folded into one line.
    """
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if not primary:
        return "; ".join(part.strip() for part in str(exc).strip().splitlines() if part.strip())
    hint = getattr(diag, "message_hint", None)
    return _flat(primary) + (f" (hint: {_flat(hint)})" if hint else "")
