"""Connections to PostgreSQL, made the same way everywhere.

Why: asymm must not pollute the workload it observes (``application_name``, hidden from
pg_stat_statements), and its own SQL must not be hijacked by objects planted in ``public``
(``search_path`` pinned; names a person typed are looked up, never spliced).  docs/architecture.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import conninfo

from asymm.errors import AsymmError

APPLICATION_NAME = "asymm"

# A server that vanished from the network (no RST: a cable, a firewall, a dead host) would leave a
# query waiting for the kernel's retransmission timeout, about 15 minutes, with the daemon stuck in
# one tick.  Keepalives find an idle dead peer in about 11 s; tcp_user_timeout bounds how long sent
# data may stay unacknowledged.  A DSN that sets these keeps its own values.  libpq ignores them
# on Unix-domain sockets.
DEAD_PEER_DEFAULTS = {
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "15000",
}


def resolve_dsn(dsn: str | None) -> str:
    """The DSN to use: the one given, else ``ASYMM_DSN``, else empty (libpq's PG* variables)."""
    if dsn:
        return dsn
    return os.environ.get("ASYMM_DSN", "")


def with_dbname(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    params = conninfo.conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return conninfo.make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None})


def connect(
    dsn: str | None = None,
    *,
    autocommit: bool = True,
    observed: bool = False,
    application_name: str = APPLICATION_NAME,
    connect_timeout: int = 10,
    pin: bool | None = None,
) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection; ``observed=False`` keeps its statements out of pg_stat_statements.

    Hiding needs the right to set ``pg_stat_statements.track`` (a superuser setting); without it
    the connection still works and its statements are recognised by ``application_name`` instead.
    ``pin=False`` leaves the session's search_path alone: only for connections that run somebody
    else's statements (see the module docstring), whose own asymm SQL must then be fully qualified.
    By default an ``observed`` connection, which stands for the application, is not pinned.
    """
    target = resolve_dsn(dsn)
    try:
        params = conninfo.conninfo_to_dict(target)
    except psycopg.ProgrammingError as exc:
        raise AsymmError(f"invalid DSN: {one_line(str(exc))}") from None
    params.setdefault("application_name", application_name)
    params.setdefault("connect_timeout", str(connect_timeout))
    for key, value in DEAD_PEER_DEFAULTS.items():
        params.setdefault(key, value)
    try:
        conn = psycopg.connect(conninfo.make_conninfo("", **params), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise AsymmError(f"cannot connect to PostgreSQL: {one_line(str(exc))}") from None
    if pin if pin is not None else not observed:
        pin_search_path(conn)
        refuse_row_security(conn)
    if not observed:
        hide_from_pg_stat_statements(conn)
    return conn


def hide_from_pg_stat_statements(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Stop pg_stat_statements from tracking this session; False if not permitted."""
    try:
        with conn.transaction():
            conn.execute("SELECT pg_catalog.set_config('pg_stat_statements.track', 'none', false)")
    except psycopg.Error:
        return False
    return True


PINNED_SEARCH_PATH = "pg_catalog, pg_temp"


def refuse_row_security(conn: psycopg.Connection[Any]) -> None:
    """Make a read of a table whose row-level security applies to this role fail instead.

    A policy's USING expression is the table owner's code, and it runs as the reading role: with
    asymm's rights (the daemon reads every tracked table and writes asymm's state).  With
    ``row_security = off`` PostgreSQL refuses such a query before evaluating any policy; a role
    that should read those rows needs BYPASSRLS (``asymm.grant_daemon()`` gives it), as a mirror
    of the whole table must anyway.
    """
    with conn.transaction():
        conn.execute("SELECT pg_catalog.set_config('row_security', 'off', false)")


def pin_search_path(conn: psycopg.Connection[Any]) -> None:
    """Make this session resolve unqualified names in pg_catalog only (see the module docstring).

    A session-level SET (not the ``options`` startup parameter), so that the session's default,
    its ``reset_val``, stays what the role, database and DSN configured: :func:`lookup_relation`
    and the text overloads of ``asymm.annotate()`` look names up with it.
    """
    with conn.transaction():
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, false)", (PINNED_SEARCH_PATH,))


@contextmanager
def session_search_path(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Run the body with the session's own default search_path, then restore the one it had.

    Only for statements whose every name is schema-qualified except the ones that must be resolved
    the way the user would (a name they typed, or a statement text they wrote).
    """
    row = conn.execute(
        "SELECT pg_catalog.current_setting('search_path'),"  # evaluated left to right
        "       pg_catalog.set_config('search_path', s.reset_val, false)"
        "  FROM pg_catalog.pg_settings s WHERE s.name OPERATOR(pg_catalog.=) 'search_path'"
    ).fetchone()
    previous = str(row[0]) if row else PINNED_SEARCH_PATH
    try:
        yield
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR and not conn.closed:
            conn.execute("SELECT pg_catalog.set_config('search_path', %s, false)", (previous,))


def lookup_relation(conn: psycopg.Connection[Any], name: str) -> str | None:
    """The schema-qualified, quoted name of the relation a user typed, or None when there is none.

    Looked up like ``name::regclass`` in the user's own session (their default search_path); the
    result is safe to pass where asymm's pinned session expects a ``regclass``.
    """
    with session_search_path(conn):
        row = conn.execute("SELECT pg_catalog.to_regclass(%s)::pg_catalog.oid", (name,)).fetchone()
    if row is None or row[0] is None:
        return None
    found = conn.execute(
        "SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c"
        "  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
        " WHERE c.oid OPERATOR(pg_catalog.=) %s",
        (row[0],),
    ).fetchone()
    return str(found[0]) if found else None


def extension_schema(conn: psycopg.Connection[Any], extname: str) -> str | None:
    """The schema an extension (pg_stat_statements, hypopg) is installed in, or None."""
    row = conn.execute(
        "SELECT n.nspname FROM pg_catalog.pg_extension e"
        "  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace"
        " WHERE e.extname OPERATOR(pg_catalog.=) %s",
        (extname,),
    ).fetchone()
    return str(row[0]) if row else None


def require_extension(conn: psycopg.Connection[Any]) -> None:
    """A clear error instead of 'schema "asymm" does not exist' when the extension is missing."""
    if (
        conn.execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'asymm'").fetchone()
        is None
    ):
        raise AsymmError("the asymm extension is not installed in this database (CREATE EXTENSION asymm CASCADE)")


def one_line(message: str) -> str:
    """Fold a multi-line server or libpq message into one line for the terminal."""
    return "; ".join(part.strip() for part in message.strip().splitlines() if part.strip())
