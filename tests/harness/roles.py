"""Login roles for the security tests: the DSN of a role the test created, on the sandbox's server."""

from __future__ import annotations

from psycopg import conninfo


def role_dsn(dsn: str, role: str, password: str, **extra: str) -> str:
    """``dsn`` with another user and password (and any other libpq parameter in ``extra``)."""
    params = conninfo.conninfo_to_dict(dsn)
    params.update(user=role, password=password, **extra)
    return conninfo.make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None})
