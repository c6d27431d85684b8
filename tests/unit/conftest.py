"""The unit layer: pure Python, no server.  A test here that asks (even indirectly) for a fixture
that needs the sandbox is a collection error, so the layer stays runnable without one."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# The harness fixtures that need the sandbox's servers (everything else of the harness is plain code).
SERVER_FIXTURES = frozenset(
    {"sandbox", "admin_dsn", "templates", "make_db", "db", "conn", "redis_url", "engine", "r", "start_daemon"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            wanted = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            if wanted:
                raise pytest.UsageError(
                    f"{item.nodeid}: a unit test asks for {sorted(wanted)}; move it to tests/integration"
                )
