"""The sandbox's Redis server: ``requirepass`` from a 0600 config file, started and stopped by its pid file.

Why a config file: a password on the command line is readable by every local user in ``/proc``.
"""

from __future__ import annotations

import pwd
import shutil
from typing import TYPE_CHECKING

from asymm.dev.sandbox.processes import our_process, run_as, terminate, wait_for_port
from asymm.dev.sandbox.statedir import write_private

if TYPE_CHECKING:
    from asymm.dev.sandbox.paths import ServerPaths


def write_config(box: ServerPaths, server: pwd.struct_passwd) -> None:
    write_private(box.redis_dir / "redis.conf", f"requirepass {box.redis_password}\n", owner=server)


def start(box: ServerPaths) -> None:
    run_as(
        box.os_user,
        [
            shutil.which("redis-server") or "redis-server",
            str(box.redis_dir / "redis.conf"),
            "--port",
            str(box.redis_port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(box.redis_dir),
            "--pidfile",
            str(box.redis_dir / "redis.pid"),
            "--logfile",
            str(box.redis_dir / "redis.log"),
        ],
        what="start Redis",
    )
    wait_for_port(box.redis_port, "Redis")


def stop(box: ServerPaths) -> None:
    found = pid(box)
    if found is None:
        return
    terminate(found, "Redis")
    (box.redis_dir / "redis.pid").unlink(missing_ok=True)


def pid(box: ServerPaths) -> int | None:
    """The pid in our own pid file, if that process is still our redis-server."""
    return our_process(box.redis_dir / "redis.pid", box.os_user, ("redis-server", f":{box.redis_port}"))
