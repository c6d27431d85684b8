"""Who runs the sandbox's servers, and whether that account can reach the sandbox directory.

PostgreSQL refuses to run as root, so when we are root the servers run as the dedicated system
user ``asymm-sandbox`` (created when missing; ``ASYMM_SANDBOX_USER`` overrides), not ``nobody``:
that is the account every unprivileged daemon and attacker shares.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from asymm.errors import SandboxError

DEFAULT_SERVER_USER = "asymm-sandbox"


def server_user() -> str:
    """Who runs the servers: the caller, or when that is root a dedicated unprivileged system user."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    name = os.environ.get("ASYMM_SANDBOX_USER") or ""
    if not name:
        name = DEFAULT_SERVER_USER
        _ensure_system_user(name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxError(f"user {name!r} does not exist; set ASYMM_SANDBOX_USER to an unprivileged user") from None
    if entry.pw_uid == 0:
        raise SandboxError("ASYMM_SANDBOX_USER must not be root: PostgreSQL refuses to run as root")
    return name


def _ensure_system_user(name: str) -> None:
    """Create the dedicated server account (no home, no login) unless it exists."""
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    done = subprocess.run(
        [
            shutil.which("useradd") or "/usr/sbin/useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "asymm sandbox servers",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        pwd.getpwnam(name)  # made by us, or by a concurrent sandbox a moment ago
    except KeyError:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise SandboxError(
            f"cannot create the system user {name!r} ({detail[-1] if detail else done.returncode});"
            " set ASYMM_SANDBOX_USER to an unprivileged user"
        ) from None


def check_reachable(directory: Path, user: str) -> None:
    """The server user must be able to reach the sandbox: /root or a 0700 temp dir will not do."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    for path in [directory, *directory.parents]:
        if not path.exists():
            continue
        info = path.stat()
        if info.st_uid == entry.pw_uid:
            allowed = bool(info.st_mode & 0o100)
        elif info.st_gid == entry.pw_gid:
            allowed = bool(info.st_mode & 0o010)
        else:
            allowed = bool(info.st_mode & 0o001)
        if not allowed:
            raise SandboxError(f"user {user!r} cannot enter {path}; put the sandbox elsewhere (--dir under /tmp)")
