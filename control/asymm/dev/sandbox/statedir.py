"""The sandbox's state directory and private files: asymm's own, or refused.

Another local user may create files in ``/tmp`` before we do.  So the directory is created with
``mkdir(mode=0o700)`` and checked through a file descriptor opened with ``O_NOFOLLOW``; an existing
one is refused (one-line :class:`UnsafeDirectoryError`, nothing run, nothing deleted) when it is a
symlink, is not owned by the caller, or is group/world-writable.  Its parents must be owned by
root or the caller and not writable by others unless sticky (``/tmp``), so nobody else can rename
the checked directory and put another in its place between the check and the use.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import tempfile
from pathlib import Path

from asymm import private_paths
from asymm.errors import UnsafeDirectoryError

DEFAULT_DIR = Path(tempfile.gettempdir()) / f"asymm-sandbox-{os.getuid()}"


def default_dir() -> Path:
    return Path(os.environ.get("ASYMM_SANDBOX_DIR") or DEFAULT_DIR)


def absolute(root: Path | None) -> Path:
    return private_paths.absolute(root or default_dir())


def refuse(path: Path, why: str) -> UnsafeDirectoryError:
    return UnsafeDirectoryError(f"refusing {path}: {why}; remove it or choose another --dir")


def check_owned(path: Path, info: os.stat_result, *, directory: bool) -> None:
    private_paths.check_owned(path, info, directory=directory, refuse=refuse)


def check_root(root: Path) -> bool:
    """True if ``root`` exists and is safely ours, False if it does not exist; refused otherwise."""
    private_paths.check_parents(root, refuse=refuse, missing_ok=True)
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return False
    check_owned(root, info, directory=True)
    return True


def make_root(root: Path, server: pwd.struct_passwd) -> None:
    """Create ``root`` 0700 (or take the empty one the caller made), verified through an O_NOFOLLOW fd.

    When root runs the sandbox, the directory becomes 0710 with the server user's group: that
    account may traverse it to its own subdirectories, nothing more (see :mod:`asymm.dev.sandbox`).
    """
    root.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # checked by check_root(); checked again below, by descriptor
        os.mkdir(root, 0o700)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise refuse(root, f"cannot open it without following links ({exc.strerror})") from None
    try:
        check_owned(root, os.fstat(fd), directory=True)
        if os.geteuid() == 0 and server.pw_uid != 0:
            os.fchown(fd, 0, server.pw_gid)
            os.fchmod(fd, 0o710)
        else:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def prepare_server_dirs(paths: tuple[Path, ...], server: pwd.struct_passwd) -> None:
    """The server user's own 0700 subdirectories, in a directory only the caller can write."""
    for path in paths:
        os.mkdir(path, 0o700)
        if os.geteuid() == 0:
            os.chown(path, server.pw_uid, server.pw_gid, follow_symlinks=False)


def write_private(path: Path, text: str, owner: pwd.struct_passwd | None = None) -> None:
    """A new 0600 file (never an existing one, never through a link), handed to ``owner`` if given."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        if owner is not None and os.geteuid() == 0:
            os.fchown(handle.fileno(), owner.pw_uid, owner.pw_gid)
        handle.write(text)
