"""Files and directories that must be ours: the checks the sandbox and the daemon's token share.

Why: an untrusted local user can create a path in ``/tmp`` before asymm does (a symlink, its own
directory); a private path is used only when it is real, the caller's, writable by nobody else
and unswappable (docs/architecture.md).  Callers turn a refusal into their own error.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Callable
from pathlib import Path

Refuse = Callable[[Path, str], Exception]
"""Builds the caller's exception for ``path`` from the reason it is refused."""


def absolute(path: Path) -> Path:
    """Absolute, with the parents' symlinks resolved but never the last component's (it is lstat'ed)."""
    path = Path(os.path.abspath(path))
    return path.parent.resolve() / path.name


def user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_owned(path: Path, info: os.stat_result, *, directory: bool, refuse: Refuse) -> None:
    """``info`` (from lstat/fstat) describes something the caller owns and nobody else can write."""
    if stat.S_ISLNK(info.st_mode):
        raise refuse(path, "it is a symlink")
    if directory and not stat.S_ISDIR(info.st_mode):
        raise refuse(path, "it is not a directory")
    if not directory and not stat.S_ISREG(info.st_mode):
        raise refuse(path, "it is not a regular file")
    if info.st_uid != os.geteuid():
        raise refuse(path, f"it belongs to {user_name(info.st_uid)}, not to you ({user_name(os.geteuid())})")
    if info.st_mode & 0o022:
        raise refuse(path, f"it is group- or world-writable (mode {stat.S_IMODE(info.st_mode):04o})")


def check_parents(path: Path, *, refuse: Refuse, missing_ok: bool) -> None:
    """Nobody but root and the caller can rename entries in any parent (sticky /tmp is fine).

    ``missing_ok``: a parent that does not exist yet is fine (the caller creates it, as its own).
    """
    for parent in path.parents:
        try:
            info = os.stat(parent)
        except FileNotFoundError:
            if missing_ok:
                continue
            raise refuse(path, f"its parent {parent} does not exist") from None
        if info.st_uid not in (0, os.geteuid()):
            raise refuse(path, f"its parent {parent} belongs to {user_name(info.st_uid)}, who could replace it")
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            raise refuse(path, f"its parent {parent} is writable by others and not sticky")
