"""The sandbox trusts no directory another local user could have made, and its servers do not trust
every local user (issue 15, defect 3).

The attack of the report: user ``nobody`` creates the sandbox directory first and plants a
``sandbox.json`` naming its own ``pg_ctl`` (``pg_bindir``) and, as the sandbox's root, a directory
of root's; ``asymm sandbox down`` (or ``up``, which stops a dead sandbox first) then ran that
``pg_ctl`` as root and deleted root's directory.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from asymm.dev import sandbox as sandbox_mod
from asymm.dev.sandbox import postgres as sandbox_postgres
from asymm.dev.sandbox import users as sandbox_users
from asymm.errors import SandboxError, UnsafeDirectoryError

ASYMM = str(Path(sys.executable).with_name("asymm"))
REPO = Path(__file__).resolve().parents[2]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root can act as another local user here")


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory like /tmp: reachable by everyone, owned by the caller."""
    path = Path(tempfile.mkdtemp(prefix="asymm-trust-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Planted:
    given: Path  # what --dir names
    marker: Path  # the fake pg_ctl's proof that it ran
    victim: Path  # root's directory that must survive


def _fake_bindir(base: Path, marker: Path) -> Path:
    bindir = base / "evilbin"
    bindir.mkdir(mode=0o755)
    for tool in ("pg_ctl", "initdb", "postgres"):
        script = bindir / tool
        script.write_text(f"#!/bin/sh\ntouch {marker}\n")
        script.chmod(0o755)
    return bindir


def _chown_tree(path: Path, entry: pwd.struct_passwd) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.chown(name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _plant(base: Path, how: str, payload: str) -> Planted:
    """A sandbox directory as an attacker leaves it; ``how`` says what makes it untrustworthy.

    The state file has today's five fields, so the code before the fix acts on it.
    """
    nobody = pwd.getpwnam("nobody")
    victim = base / "victim"
    victim.mkdir(mode=0o700)
    (victim / "precious").write_text("keep me")
    marker = base / "marker"
    bindir = _fake_bindir(base, marker)
    given = base / "box"
    real = base / "real" if how == "symlink" else given
    real.mkdir(mode=0o700)
    (real / "pgdata").mkdir()
    (real / "pgdata" / "postmaster.pid").write_text("1\n")
    state = {
        "root": str(real if payload == "run_pg_ctl" else victim),
        "pg_bindir": str(bindir),
        "pg_port": 1,
        "redis_port": 2,
        "os_user": "root",
    }
    (real / sandbox_mod.STATE_FILE).write_text(json.dumps(state))
    if how == "owned_by_nobody":
        _chown_tree(real, nobody)
        _chown_tree(bindir, nobody)
    elif how == "world_writable":
        real.chmod(0o777)
    else:
        given.symlink_to(real)
        os.chown(given, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)
    return Planted(given, marker, victim)


REASONS = {"owned_by_nobody": "belongs to nobody", "world_writable": "group- or world-writable", "symlink": "symlink"}


@as_root
@pytest.mark.parametrize("command", ["up", "down", "env"])
@pytest.mark.parametrize("payload", ["run_pg_ctl", "delete_victim"])
@pytest.mark.parametrize("how", list(REASONS))
def test_a_planted_directory_is_refused_and_nothing_runs_or_goes(
    base: Path, how: str, payload: str, command: str
) -> None:
    planted = _plant(base, how, payload)
    env = {k: v for k, v in os.environ.items() if k != "ASYMM_SANDBOX_DIR"}
    out = subprocess.run(
        [ASYMM, "sandbox", command, "--dir", str(planted.given)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 1, out
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing" in lines[0] and REASONS[how] in lines[0], out.stderr
    assert not planted.marker.exists(), "the planted pg_ctl ran"
    assert (planted.victim / "precious").read_text() == "keep me"
    assert (base / ("real" if how == "symlink" else "box") / sandbox_mod.STATE_FILE).exists()


@as_root
@pytest.mark.parametrize("how", ["parent_owned_by_nobody", "parent_world_writable"])
def test_a_directory_whose_parent_another_user_can_change_is_refused(base: Path, how: str) -> None:
    """Whoever can write the parent can swap the checked directory for another one after the check."""
    parent = base / "parent"
    parent.mkdir(mode=0o755)
    if how == "parent_owned_by_nobody":
        nobody = pwd.getpwnam("nobody")
        os.chown(parent, nobody.pw_uid, nobody.pw_gid)
    else:
        parent.chmod(0o777)
    with pytest.raises(UnsafeDirectoryError, match="its parent"):
        sandbox_mod.up(parent / "box")
    assert list(parent.iterdir()) == []


def _own_state_dir(base: Path, **changes: object) -> tuple[Path, Path, Path]:
    """A directory of ours whose (current-format) state file says something it must not."""
    root = base / "box"
    root.mkdir(mode=0o700)
    (root / "pgdata").mkdir(mode=0o700)
    (root / "pgdata" / "postmaster.pid").write_text("1\n")
    server = pwd.getpwnam(sandbox_users.server_user())
    _chown_tree(root / "pgdata", server)
    victim = base / "victim"
    victim.mkdir(mode=0o700)
    marker = base / "marker"
    state: dict[str, object] = {
        "root": str(root),
        "pg_bindir": sandbox_postgres.pg_bindir(),
        "pg_port": 1,
        "redis_port": 2,
        "os_user": server.pw_name,
        "redis_password": "x" * 43,
    }
    state.update(
        {
            k: (str(victim) if v == "VICTIM" else str(_fake_bindir(base, marker)) if v == "EVIL" else v)
            for k, v in changes.items()
        }
    )
    (root / sandbox_mod.STATE_FILE).write_text(json.dumps(state))
    (root / sandbox_mod.STATE_FILE).chmod(0o600)
    return root, victim, marker


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pg_bindir": "EVIL"}, "is not PostgreSQL's bindir"),
        ({"root": "VICTIM"}, "names another directory"),
        ({"pg_port": 0}, "pg_port is not a port"),
        ({"redis_password": "short"}, "Redis password"),
    ],
)
def test_state_file_values_are_checked_even_in_our_own_directory(
    base: Path, changes: dict[str, object], reason: str
) -> None:
    root, victim, marker = _own_state_dir(base, **changes)
    for action in (sandbox_mod.down, sandbox_mod.load, sandbox_mod.up):
        with pytest.raises(SandboxError, match=reason):
            action(root)
    assert not marker.exists() and victim.exists() and (root / sandbox_mod.STATE_FILE).exists()


@as_root
def test_state_file_naming_root_as_the_server_user_is_refused(base: Path) -> None:
    root, victim, marker = _own_state_dir(base, os_user="root")
    with pytest.raises(SandboxError, match="run as root"):
        sandbox_mod.down(root)
    assert not marker.exists() and victim.exists() and (root / sandbox_mod.STATE_FILE).exists()


def test_a_state_file_that_is_a_symlink_is_refused(base: Path) -> None:
    root = base / "box"
    root.mkdir(mode=0o700)
    elsewhere = base / "elsewhere.json"
    elsewhere.write_text("{}")
    (root / sandbox_mod.STATE_FILE).symlink_to(elsewhere)
    with pytest.raises(UnsafeDirectoryError, match="symlink"):
        sandbox_mod.down(root)
    assert elsewhere.exists()


def test_postgres_over_tcp_needs_the_generated_password(
    sandbox: sandbox_mod.Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    params = {
        "host": "127.0.0.1",
        "port": sandbox.pg_port,
        "user": "postgres",
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(**params, passfile="/nonexistent")  # type: ignore[arg-type]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**params, password="guess", passfile="/nonexistent")  # type: ignore[arg-type]
    with psycopg.connect(sandbox.tcp_dsn()) as conn:  # the DSN names the 0600 password file
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        assert conn.info.host == "127.0.0.1"
    assert "password" not in sandbox.dsn()
    info = sandbox.pass_file.stat()
    assert info.st_uid == os.geteuid() and info.st_mode & 0o777 == 0o600


def test_redis_needs_the_generated_password(sandbox: sandbox_mod.Sandbox) -> None:
    for password in (None, "guess"):
        client = redis.Redis(host="127.0.0.1", port=sandbox.redis_port, password=password, socket_timeout=5)
        with pytest.raises(redis.AuthenticationError):
            client.ping()
        client.close()
    assert redis.Redis.from_url(sandbox.redis_url).ping()


@as_root
def test_another_local_user_gets_in_neither_by_tcp_nor_by_socket(sandbox: sandbox_mod.Sandbox) -> None:
    psql = sandbox.pg_bindir + "/psql"
    nobody = pwd.getpwnam("nobody")
    env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "5"}
    for host in ("127.0.0.1", str(sandbox.socket_dir)):
        out = subprocess.run(
            [psql, "-X", "-w", "-h", host, "-p", str(sandbox.pg_port), "-U", "postgres", "-c", "SELECT 1", "postgres"],
            user="nobody",
            group=nobody.pw_gid,
            extra_groups=[],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode != 0, (host, out)
        assert "password" in out.stderr or "Permission denied" in out.stderr, out.stderr
    cli = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(sandbox.redis_port), "ping"],
        user="nobody",
        group=nobody.pw_gid,
        extra_groups=[],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "NOAUTH" in cli.stdout + cli.stderr


def test_a_new_sandbox_is_private_and_keeps_its_secrets_off_command_lines(base: Path) -> None:
    root = base / "box"
    box = sandbox_mod.up(root)
    try:
        server = pwd.getpwnam(box.os_user)
        info = os.lstat(root)
        assert info.st_uid == os.geteuid()
        if os.geteuid() == 0:
            assert box.os_user != "nobody" or os.environ.get("ASYMM_SANDBOX_USER") == "nobody"
            assert info.st_mode & 0o777 == 0o710 and info.st_gid == server.pw_gid
        else:
            assert info.st_mode & 0o777 == 0o700
        for name in (sandbox_mod.STATE_FILE, sandbox_mod.PASS_FILE):
            meta = os.lstat(root / name)
            assert meta.st_uid == os.geteuid() and meta.st_mode & 0o777 == 0o600, name
        for sub in (box.data_dir, box.socket_dir, box.redis_dir):
            meta = os.lstat(sub)
            assert meta.st_uid == server.pw_uid and meta.st_mode & 0o777 == 0o700, sub
        pg_password = box.pass_file.read_text().strip().rsplit(":", 1)[1]
        assert box.running()
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            assert box.redis_password.encode() not in cmdline and pg_password.encode() not in cmdline, proc
    finally:
        assert sandbox_mod.down(root)
    assert not root.exists()


def test_an_empty_directory_of_ours_is_taken(base: Path) -> None:
    """scripts/with-sandbox.sh hands `up` the directory mktemp made, rather than a name to create later."""
    root = Path(tempfile.mkdtemp(dir=base))
    box = sandbox_mod.up(root)
    try:
        assert sandbox_mod.load(root) == box
    finally:
        sandbox_mod.down(root)


def test_default_directories_are_per_user() -> None:
    uid = os.getuid()
    assert sandbox_mod.DEFAULT_DIR.name == f"asymm-sandbox-{uid}"
    out = subprocess.run(
        ["make", "-n", "-s", "-C", str(REPO), "demo-down"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "XDG_RUNTIME_DIR": ""},
    )
    assert out.stdout.strip().endswith(f"--dir {tempfile.gettempdir()}/asymm-demo-{uid}"), out.stdout
    if uid == 0:  # another user gets another directory
        other = subprocess.run(
            ["make", "-n", "-s", "-C", str(REPO), "demo-down"],
            capture_output=True,
            text=True,
            check=True,
            user="nobody",
            env={"PATH": "/usr/bin:/bin"},
        )
        assert other.stdout.strip().endswith("--dir /tmp/asymm-demo-65534"), other.stdout
