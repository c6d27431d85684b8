"""The sandbox: its own servers, as an unprivileged user, and nobody else's."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from asymm.dev import sandbox as sandbox_mod
from asymm.errors import SandboxError


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory the unprivileged server user can enter (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="asymm-sandbox-test-"))
    path.chmod(0o755)
    yield path
    sandbox_mod.down(path / "box")
    shutil.rmtree(path, ignore_errors=True)


def _owner_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_servers_answer_with_pg_stat_statements_preloaded(sandbox: sandbox_mod.Sandbox) -> None:
    with psycopg.connect(sandbox.dsn()) as conn:
        assert conn.execute("SHOW shared_preload_libraries").fetchone() == ("pg_stat_statements",)
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")  # type: ignore[index]
        assert conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'hypopg'").fetchone() == (1,)
    assert redis.Redis.from_url(sandbox.redis_url).ping()


def test_postgres_runs_unprivileged_even_for_root(sandbox: sandbox_mod.Sandbox) -> None:
    pid = int((sandbox.data_dir / "postmaster.pid").read_text().split()[0])
    if os.geteuid() == 0:
        assert _owner_uid(pid) != 0
        if not os.environ.get("ASYMM_SANDBOX_USER"):  # a dedicated account, not the one everybody shares
            assert sandbox.os_user == sandbox_mod.DEFAULT_SERVER_USER
            assert _owner_uid(pid) == pwd.getpwnam(sandbox_mod.DEFAULT_SERVER_USER).pw_uid
    else:
        assert _owner_uid(pid) == os.geteuid()


def test_up_refuses_a_directory_that_is_not_a_sandbox(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SandboxError, match="not an asymm sandbox"):
        sandbox_mod.up(tmp_path)
    assert not sandbox_mod.down(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_up_is_idempotent_and_down_stops_only_its_own(sandbox: sandbox_mod.Sandbox, reachable_dir: Path) -> None:
    root = reachable_dir / "box"
    box = sandbox_mod.up(root)
    try:
        assert sandbox_mod.up(root) == box
        assert box.pg_port != sandbox.pg_port and box.redis_port != sandbox.redis_port
    finally:
        assert sandbox_mod.down(root)
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(box.dsn(), connect_timeout=2)
    # the session's sandbox is untouched
    with psycopg.connect(sandbox.dsn()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert redis.Redis.from_url(sandbox.redis_url).ping()


def test_restarts_keep_the_ports(reachable_dir: Path) -> None:
    box = sandbox_mod.up(reachable_dir / "box")
    try:
        client = redis.Redis.from_url(box.redis_url)
        client.set("k", "v")
        box.restart_redis()
        assert client.get("k") is None  # no persistence: a restart is a flush
        box.restart_postgres()
        with psycopg.connect(box.dsn()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        sandbox_mod.down(reachable_dir / "box")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another user")
def test_an_unreachable_directory_is_refused_with_a_reason(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(SandboxError, match="cannot enter"):
        sandbox_mod.up(private / "box")


def test_preload_puts_the_library_in_shared_preload_libraries(reachable_dir: Path) -> None:
    """``asymm sandbox up --preload pg_qualstats --shared-buffers 300MB``: the new cluster has both;
    reusing it without them is fine, asking a running one for a library it lacks is refused."""
    root = reachable_dir / "box"
    box = sandbox_mod.up(root, sandbox_mod.server_options(["pg_qualstats"], "300MB"))
    try:
        with psycopg.connect(box.dsn()) as conn:
            assert conn.execute("SHOW shared_preload_libraries").fetchone() == ("pg_stat_statements,pg_qualstats",)
            assert conn.execute("SHOW shared_buffers").fetchone() == ("300MB",)
            conn.execute("CREATE EXTENSION pg_qualstats")  # needs the library preloaded
        assert sandbox_mod.up(root) == box
        assert sandbox_mod.up(root, sandbox_mod.server_options(["pg_qualstats"])) == box
        with pytest.raises(SandboxError, match="not started with --preload pg_prewarm"):
            sandbox_mod.up(root, sandbox_mod.server_options(["pg_prewarm"]))
    finally:
        sandbox_mod.down(root)
