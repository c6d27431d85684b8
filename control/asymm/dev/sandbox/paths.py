"""What the server modules need to know of a sandbox: its paths, ports and server user.

Why a protocol: :class:`asymm.dev.sandbox.box.Sandbox` starts and stops its servers through
:mod:`.postgres` and :mod:`.redis_server`, so those modules must not import it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class ServerPaths(Protocol):
    """The part of a sandbox that starting, stopping and configuring its servers reads."""

    pg_bindir: str
    pg_port: int
    redis_port: int
    os_user: str
    redis_password: str

    @property
    def data_dir(self) -> Path: ...

    @property
    def socket_dir(self) -> Path: ...

    @property
    def redis_dir(self) -> Path: ...

    @property
    def pass_file(self) -> Path: ...
