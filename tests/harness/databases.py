"""Fixtures of a real PostgreSQL 15 + Redis sandbox, and fresh databases in it (a pytest plugin).

Under ``make test`` the sandbox is started once by ``scripts/with-sandbox.sh`` and found through
``ASYMM_SANDBOX_DIR``; a bare ``pytest`` starts (and stops) its own, lazily: only when a test asks for
a server, so the unit layer never starts one.

A test database is a copy of a template in which ``CREATE EXTENSION asymm CASCADE`` ran once:
copying a small database is much cheaper than installing the extension again.  The copy is the same
install (catalogs, event triggers, rows); what is per database is fresh anyway (database settings,
pg_stat_statements entries are per database oid, no daemon ever connected).  The install takes its
telemetry partitions from the clock, so the template is made again when the hour changes.  Tests
that are about the install itself (upgrade, drop, restore) ask for ``make_db(extension=False)`` or
``make_db(fresh=True)`` and run ``CREATE EXTENSION`` themselves.
"""

from __future__ import annotations

import datetime
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.harness.product import Sandbox, with_dbname
from tests.harness.product import sandbox as sandbox_mod

_counter = itertools.count()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
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
def admin_dsn(sandbox: Sandbox) -> str:
    return sandbox.dsn("postgres")


def _create(admin_dsn: str, name: str, template: str | None = None) -> None:
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(query)


def _drop(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class Templates:
    """The database with asymm installed that test databases are copied from, one per clock hour."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.name: str | None = None
        self.hour: datetime.datetime | None = None

    def current(self) -> str:
        hour = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
        if self.name is None or hour != self.hour:
            self.close()
            name = f"asymm_template{os.getpid()}_{next(_counter)}"
            _create(self.admin_dsn, name)
            with psycopg.connect(with_dbname(self.admin_dsn, name), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION asymm CASCADE")
            self.name, self.hour = name, hour
        return self.name

    def close(self) -> None:
        if self.name is not None:
            _drop(self.admin_dsn, self.name)
            self.name = None


@pytest.fixture(scope="session")
def templates(admin_dsn: str) -> Iterator[Templates]:
    made = Templates(admin_dsn)
    yield made
    made.close()


@pytest.fixture
def make_db(admin_dsn: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Factory: a new database, dropped after the test; with asymm installed unless ``extension=False``
    (copied from the template, or installed by CREATE EXTENSION when ``fresh=True``)."""
    created: list[str] = []

    def factory(extension: bool = True, fresh: bool = False) -> str:
        name = f"asymm_t{os.getpid()}_{next(_counter)}"
        template = None
        if extension and not fresh:
            template = request.getfixturevalue("templates").current()
        _create(admin_dsn, name, template)
        created.append(name)
        dsn = with_dbname(admin_dsn, name)
        if extension and fresh:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION asymm CASCADE")
        return dsn

    yield factory
    for name in created:
        _drop(admin_dsn, name)


@pytest.fixture
def db(make_db: Callable[..., str]) -> str:
    """DSN of a fresh database with the asymm extension installed."""
    return make_db()


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(db, autocommit=True) as connection:
        yield connection
