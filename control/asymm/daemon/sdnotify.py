"""systemd's notify protocol, written with the standard library (no libsystemd binding needed).

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace).  Outside systemd the variable is
unset and every call is a cheap no-op.  The daemon sends ``READY=1`` after its first good round
trip to PostgreSQL, ``WATCHDOG=1`` only from the pulse loop after a tick completed (so a hung loop
is restarted by systemd), ``RELOADING=1``/``READY=1`` around a SIGHUP reload and ``STOPPING=1``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("asymm.daemon")


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address: str | None = env.get("NOTIFY_SOCKET") or None
        if self.address and self.address.startswith("@"):
            self.address = "\0" + self.address[1:]
        watchdog_usec = env.get("WATCHDOG_USEC")
        watchdog_pid = env.get("WATCHDOG_PID")
        self.watchdog_s: float | None = None
        if watchdog_usec and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            try:
                self.watchdog_s = int(watchdog_usec) / 1e6
            except ValueError:
                log.warning("ignoring malformed WATCHDOG_USEC=%r", watchdog_usec)
        self._last_watchdog = 0.0
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            log.warning("sd_notify to %r failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str = "") -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self, now: float | None = None) -> None:
        """Ping at most twice per watchdog interval (systemd's recommendation)."""
        if self.watchdog_s is None:
            return
        now = time.monotonic() if now is None else now
        if now - self._last_watchdog >= self.watchdog_s / 2 and self.send("WATCHDOG=1"):
            self._last_watchdog = now

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
