"""What one statement touches, as the graph needs it: relations read and written, column references.

A thin view over :mod:`asymm.sqlparse` (the one pglast walk asymm has), in the shape the graph's
``reads``/``writes`` edges and impact analysis use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asymm import sqlparse


@dataclass
class StatementUse:
    """What one statement touches: relations read and written, and column references."""

    reads: set[tuple[str | None, str]] = field(default_factory=set)
    writes: set[tuple[str | None, str]] = field(default_factory=set)
    aliases: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    column_refs: set[tuple[str | None, str]] = field(default_factory=set)  # (qualifier, column)


def statement_uses(statement: str) -> StatementUse | None:
    """Parse ``statement`` (pg_stat_statements text, ``$1`` placeholders are fine); None if unparsable."""
    info = sqlparse.statement_info(statement)
    if info is None:
        return None
    return StatementUse(info.reads, info.writes, dict(info.aliases), set(info.column_refs))
