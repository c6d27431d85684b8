"""The state file ``sandbox.json``: written 0600, and read back only after every value is checked.

Why distrust our own file: the directory it names must be the one it sits in, ``pg_bindir`` must
be PostgreSQL's real bindir, the server user must not be root and must own the data directory;
otherwise ``down()`` (run as root, perhaps) would act on what someone else wrote.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import re
from dataclasses import asdict
from pathlib import Path

from asymm.dev.sandbox.box import Sandbox
from asymm.dev.sandbox.postgres import trusted_bindirs
from asymm.dev.sandbox.statedir import check_owned, refuse, write_private
from asymm.errors import SandboxError

STATE_FILE = "sandbox.json"
_SECRET = re.compile(r"[A-Za-z0-9_-]{20,}")


def write_state(box: Sandbox) -> None:
    write_private(Path(box.root) / STATE_FILE, json.dumps(asdict(box), indent=2) + "\n")


def read_state(root: Path) -> Sandbox | None:
    """The validated state in ``root`` (already checked to be ours), None if it has no state file."""
    path = root / STATE_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refuse(path, "it is a symlink") from None
        raise SandboxError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd) as handle:
        check_owned(path, os.fstat(handle.fileno()), directory=False)
        text = handle.read()
    try:
        data = json.loads(text)
    except ValueError:
        raise SandboxError(f"{path} is not a sandbox state file (not JSON)") from None
    return _validated(root, path, data)


def _validated(root: Path, path: Path, data: object) -> Sandbox:
    """A Sandbox from the state file's data, each value checked against what it may be."""
    fields = {"root": str, "pg_bindir": str, "pg_port": int, "redis_port": int, "os_user": str, "redis_password": str}
    if (
        not isinstance(data, dict)
        or set(data) != set(fields)
        or not all(isinstance(data[k], t) for k, t in fields.items())
    ):
        raise SandboxError(f"{path} is not a sandbox state file of this asymm version; remove {root}")
    bad = _state_problem(root, data)
    if bad:
        raise SandboxError(f"refusing {path}: {bad}")
    return Sandbox(**data)


def _state_problem(root: Path, data: dict[str, object]) -> str | None:
    if data["root"] != str(root):
        return f"it names another directory ({data['root']})"
    for key in ("pg_port", "redis_port"):
        port = data[key]
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            return f"{key} is not a port"
    if os.path.realpath(str(data["pg_bindir"])) not in trusted_bindirs():
        return f"pg_bindir {data['pg_bindir']} is not PostgreSQL's bindir"
    user = str(data["os_user"])
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return f"user {user!r} does not exist"
    if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
        return f"its servers would run as {user!r}, not as you"
    if entry.pw_uid == 0:
        return "its servers would run as root"
    try:
        if os.lstat(root / "pgdata").st_uid != entry.pw_uid:
            return f"its data directory does not belong to {user!r}"
    except FileNotFoundError:
        return "it has no data directory"
    if not _SECRET.fullmatch(str(data["redis_password"])):
        return "its Redis password is not one asymm generated"
    return None
