"""Connections to PostgreSQL, made the same way everywhere.

Every connection asymm opens identifies itself (``application_name``) so that DBAs can see it in
``pg_stat_activity``, and by default asks ``pg_stat_statements`` not to record it: the daemon and
the advisor must not pollute the workload they observe.
"""

from __future__ import annotations

import os
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
) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection; ``observed=False`` keeps its statements out of pg_stat_statements.

    Hiding needs the right to set ``pg_stat_statements.track`` (a superuser setting); without it
    the connection still works and its statements are recognised by ``application_name`` instead.
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
    if not observed:
        hide_from_pg_stat_statements(conn)
    return conn


def hide_from_pg_stat_statements(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Stop pg_stat_statements from tracking this session; False if not permitted."""
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('pg_stat_statements.track', 'none', false)")
    except psycopg.Error:
        return False
    return True


def require_extension(conn: psycopg.Connection[Any]) -> None:
    """A clear error instead of 'schema "asymm" does not exist' when the extension is missing."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'asymm'").fetchone() is None:
        raise AsymmError("the asymm extension is not installed in this database (CREATE EXTENSION asymm CASCADE)")


def one_line(message: str) -> str:
    """Fold a multi-line server or libpq message into one line for the terminal."""
    return "; ".join(part.strip() for part in message.strip().splitlines() if part.strip())
