"""Start, find and stop the sandbox in a directory: ``up`` (idempotent), ``load``, ``down``."""

from __future__ import annotations

import pwd
import secrets
import shutil
import time
from pathlib import Path

from asymm.dev.sandbox import postgres, redis_server
from asymm.dev.sandbox.box import Sandbox
from asymm.dev.sandbox.options import ServerOptions, configured, missing
from asymm.dev.sandbox.processes import START_TIMEOUT_S, free_port
from asymm.dev.sandbox.state import read_state, write_state
from asymm.dev.sandbox.statedir import absolute, check_root, make_root, prepare_server_dirs
from asymm.dev.sandbox.users import check_reachable, server_user
from asymm.errors import SandboxError


def load(root: Path | None = None) -> Sandbox:
    """The sandbox recorded in ``root``; an error if there is none or ``root`` is not safely ours."""
    root = absolute(root)
    if not check_root(root):
        raise SandboxError(f"no sandbox in {root} (run 'asymm sandbox up')")
    box = read_state(root)
    if box is None:
        raise SandboxError(f"no sandbox in {root} (run 'asymm sandbox up')")
    return box


def up(root: Path | None = None, options: ServerOptions | None = None) -> Sandbox:
    """Start a sandbox in ``root`` (idempotent: an existing healthy one is returned as is).

    ``options`` apply when the cluster is created; a running sandbox that lacks one of them is
    refused with what to do, rather than silently returned without it.
    """
    root = absolute(root)
    if check_root(root):
        box = read_state(root)
        if box is not None:
            if box.running():
                lacking = missing(options or ServerOptions(), _configured(box))
                if lacking:
                    raise SandboxError(
                        f"the sandbox running in {root} was not started with {', '.join(lacking)};"
                        f" run 'asymm sandbox down --dir {root}' first"
                    )
                return box
            down(root)
        elif any(root.iterdir()):
            raise SandboxError(f"{root} exists and is not an asymm sandbox; choose another --dir")
    if len(str(root / "run" / ".s.PGSQL.65535.lock")) > 107:
        raise SandboxError(f"{root} is too long a path for PostgreSQL's unix socket in it; choose a shorter --dir")
    bindir = postgres.pg_bindir()
    os_user = server_user()
    check_reachable(root.parent, os_user)
    server = pwd.getpwnam(os_user)
    make_root(root, server)
    pg_port = free_port()
    redis_port = free_port(avoid=pg_port)
    box = Sandbox(
        root=str(root),
        pg_bindir=bindir,
        pg_port=pg_port,
        redis_port=redis_port,
        os_user=os_user,
        redis_password=secrets.token_urlsafe(32),
    )
    try:
        prepare_server_dirs((box.data_dir, box.socket_dir, box.redis_dir), server)
        redis_server.write_config(box, server)
        postgres.initdb(box, server, options)
        box.start_postgres()
        box.start_redis()
        _wait_until_running(box)
        write_state(box)
    except BaseException:
        _teardown(box)
        raise
    return box


def _configured(box: Sandbox) -> ServerOptions:
    """The options in a running sandbox's postgresql.conf (none readable: the defaults)."""
    try:
        return configured((box.data_dir / "postgresql.conf").read_text())
    except OSError:
        return ServerOptions()


def down(root: Path | None = None) -> bool:
    """Stop the sandbox in ``root`` and remove its directory; False if there was none.

    Only the verified directory itself is removed, whatever the state file says.
    """
    root = absolute(root)
    if not check_root(root):
        return False
    box = read_state(root)
    if box is None:
        return False
    _teardown(box)
    return True


def _teardown(box: Sandbox) -> None:
    errors = []
    for stop in (box.stop_postgres, box.stop_redis):
        try:
            stop()
        except SandboxError as exc:
            errors.append(str(exc))
    if errors:
        raise SandboxError("; ".join(errors))
    shutil.rmtree(box.root, ignore_errors=True)


def _wait_until_running(box: Sandbox) -> None:
    """Ports open is not enough: a server writes its pid file a moment later, and running() reads it."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not box.running():
        if time.monotonic() > deadline:
            raise SandboxError("the sandbox's servers did not come up (no pid file of theirs)")
        time.sleep(0.05)
