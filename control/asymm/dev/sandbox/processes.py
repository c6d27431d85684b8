"""Running commands as the server user, finding our own processes, free ports and waits.

Why checked pids: the servers' pid files sit in directories the server user can write, so a pid is
signalled only after ``/proc`` confirms it runs as that user with the expected command line.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

from asymm.errors import SandboxError

START_TIMEOUT_S = 60


def run_as(user: str, argv: list[str], *, what: str) -> None:
    """Run ``argv`` (as ``user`` when we are root); a failure is one :class:`SandboxError` line."""
    kwargs: dict[str, object] = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, cwd="/", timeout=START_TIMEOUT_S * 2, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise SandboxError(f"cannot {what}: {argv[0]} not found") from None
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise SandboxError(f"cannot {what}: {detail[-1] if detail else exc}") from None
    except subprocess.TimeoutExpired:
        raise SandboxError(f"cannot {what}: timed out") from None


def our_process(pid_file: Path, user: str, marks: tuple[str, ...]) -> int | None:
    """The pid in ``pid_file`` if it runs as ``user`` and its command line has every mark."""
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        status = Path(f"/proc/{pid}/status").read_text()
        uid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:"))
        expected = pwd.getpwnam(user).pw_uid
    except (OSError, ValueError, IndexError, StopIteration, KeyError):
        return None
    return pid if uid == expected and all(mark in cmdline for mark in marks) else None


def terminate(pid: int, what: str) -> None:
    """SIGTERM ``pid`` and wait until it is gone; a :class:`SandboxError` if it outlives the timeout."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + START_TIMEOUT_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        raise SandboxError(f"{what} (pid {pid}) did not stop")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port(avoid: int = 0) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != avoid:
            return port


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_open(port):
        if time.monotonic() > deadline:
            raise SandboxError(f"{what} did not start listening on port {port}")
        time.sleep(0.05)
