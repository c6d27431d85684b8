"""Shared fixtures: a real PostgreSQL 15 + Redis sandbox, and fresh databases in it.

Under ``make test`` the sandbox is started once by ``scripts/with-sandbox.sh`` and found through
``ASYMM_SANDBOX_DIR``; a bare ``pytest`` starts (and stops) its own.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from asymm.db import with_dbname
from asymm.dev import sandbox as sandbox_mod
from tests.daemon_process import start_daemon  # noqa: F401  (a fixture for every test module)
from tests.sync_helpers import engine, r, redis_url  # noqa: F401  (fixtures of the sync tests)

_counter = itertools.count()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[sandbox_mod.Sandbox]:
    given = os.environ.get("ASYMM_SANDBOX_DIR")
    if given and (Path(given) / sandbox_mod.STATE_FILE).exists():
        yield sandbox_mod.load(Path(given))
        return
    root = Path(tempfile.mkdtemp(prefix="asymm-pytest-"))
    root.rmdir()
    box = sandbox_mod.up(root)
    try:
        yield box
    finally:
        sandbox_mod.down(root)


@pytest.fixture(scope="session")
def admin_dsn(sandbox: sandbox_mod.Sandbox) -> str:
    return sandbox.dsn("postgres")


@pytest.fixture
def make_db(admin_dsn: str) -> Iterator[Callable[..., str]]:
    """Factory: a new empty database (optionally with asymm installed), dropped after the test."""
    created: list[str] = []

    def factory(extension: bool = True) -> str:
        name = f"asymm_t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        dsn = with_dbname(admin_dsn, name)
        if extension:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION asymm CASCADE")
        return dsn

    yield factory
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db(make_db: Callable[..., str]) -> str:
    """DSN of a fresh database with the asymm extension installed."""
    return make_db()


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(db, autocommit=True) as connection:
        yield connection
