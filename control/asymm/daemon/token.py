"""The HTTP API's bearer token when none is configured: generated at start, kept where only we read it.

Why a token even on 127.0.0.1: the API serves statement texts of every role, and every local OS
user can connect to any loopback port.  The token goes to ``DIR/http-token-PORT`` (0600) in a
directory checked like the sandbox's state directory, never a fixed ``/tmp`` path; with no safe
directory it stays in memory and the API fails closed.

Details (where DIR is looked for, when the file is written): docs/daemon.md, "The generated token".
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from asymm import private_paths
from asymm.daemon.config import ConfigError, DaemonConfig

TOKEN_BYTES = 32


def generate() -> str:
    """A fresh token: 43 URL-safe characters (safe in a URL fragment and an HTTP header)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def directory(config: DaemonConfig, env: Mapping[str, str]) -> Path | None:
    """Where a generated token goes (docs/daemon.md, "The generated token"), or None if nowhere is suitable."""
    if config.http_token_dir:
        return private_paths.absolute(Path(config.http_token_dir))
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return private_paths.absolute(Path(runtime))
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg:
        return private_paths.absolute(Path(xdg) / "asymm")
    return None


def file_name(port: int) -> str:
    return f"http-token-{port}"


def _refuse(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"refusing {path} for the HTTP token: {why}; remove it or set http.token_dir "
        "(or give a token: http.token_file, ASYMM_HTTP_TOKEN)"
    )


def _check_owned(path: Path, info: os.stat_result, *, directory: bool) -> None:
    private_paths.check_owned(path, info, directory=directory, refuse=_refuse)


def _open_directory(path: Path) -> int:
    """A descriptor of ``path``, checked ours and made 0700; created (0700) if missing."""
    private_paths.check_parents(path, refuse=_refuse, missing_ok=False)
    try:
        _check_owned(path, os.lstat(path), directory=True)
    except FileNotFoundError:
        try:
            os.mkdir(path, 0o700)
        except OSError as exc:
            raise _refuse(path, f"cannot create it ({exc.strerror})") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise _refuse(path, f"cannot open it without following links ({exc.strerror})") from None
    try:
        _check_owned(path, os.fstat(fd), directory=True)
        os.fchmod(fd, 0o700)  # systemd's RuntimeDirectory is 0755 unless RuntimeDirectoryMode says otherwise
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_entry(fd: int, path: Path, name: str) -> None:
    """An existing token file must be a regular file of ours (it is then replaced, not written through)."""
    try:
        info = os.lstat(name, dir_fd=fd)
    except FileNotFoundError:
        return
    _check_owned(path / name, info, directory=False)


def check(path: Path, port: int) -> None:
    """Before anything is written or connected: ``path`` is (now) a 0700 directory of ours and holds
    no foreign token file; :class:`ConfigError` otherwise."""
    fd = _open_directory(path)
    try:
        _check_entry(fd, path, file_name(port))
    finally:
        os.close(fd)


def write(path: Path, port: int, token: str) -> Path:
    """Write ``token`` to ``path/http-token-PORT`` (0600) through a new file renamed into place."""
    fd = _open_directory(path)
    name = file_name(port)
    temporary = f".{name}.{os.getpid()}.tmp"
    try:
        _check_entry(fd, path, name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=fd)
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
        try:
            os.fchmod(out, 0o600)
            os.write(out, (token + "\n").encode())
        finally:
            os.close(out)
        os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        os.close(fd)
    return path / name


def remove(file: Path, token: str) -> None:
    """Remove ``file`` if it still holds ``token`` (another daemon may have taken the port since)."""
    with contextlib.suppress(OSError):
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            held = os.read(fd, 4096).decode(errors="replace").strip()
        finally:
            os.close(fd)
        if held == token:
            os.unlink(file)
