"""Extra server settings a sandbox can be created with: preloaded libraries, the buffer pool size.

Why validated here: the values go into ``postgresql.conf``, which PostgreSQL reads as the server
user, and a library named there is loaded into every backend.  So a library must be a plain
identifier whose ``.so`` already sits in PostgreSQL's own library directory (``pg_config
--pkglibdir``), never a path; and ``shared_buffers`` must be a number with a unit, nothing that
could end the line and start another setting.  A bad value is one clear line, before initdb.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from asymm.errors import SandboxError

DEBIAN_PKGLIBDIR = "/usr/lib/postgresql/15/lib"
ALWAYS_PRELOADED = ("pg_stat_statements",)

_LIBRARY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MEMORY = re.compile(r"([1-9][0-9]{0,6})(kB|MB|GB)")


@dataclass(frozen=True)
class ServerOptions:
    """What ``asymm sandbox up`` adds to the fixed settings (``--preload``, ``--shared-buffers``)."""

    preload: tuple[str, ...] = field(default=())
    shared_buffers: str | None = None

    def settings(self) -> dict[str, str]:
        """postgresql.conf lines (name -> quoted value) that override the defaults."""
        out: dict[str, str] = {}
        libraries = list(ALWAYS_PRELOADED) + [lib for lib in self.preload if lib not in ALWAYS_PRELOADED]
        out["shared_preload_libraries"] = "'" + ",".join(libraries) + "'"
        if self.shared_buffers is not None:
            out["shared_buffers"] = "'" + self.shared_buffers + "'"
        return out


def pkglibdir() -> str:
    """PostgreSQL's library directory (``pg_config --pkglibdir``, else Debian's for PostgreSQL 15)."""
    pg_config = os.environ.get("PG_CONFIG") or shutil.which("pg_config") or "pg_config"
    try:
        out = subprocess.run([pg_config, "--pkglibdir"], check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out = ""
    return out or DEBIAN_PKGLIBDIR


def check_library(name: str, libdir: str | None = None) -> str:
    """``name`` if it is a plain identifier with ``name.so`` in the library directory, else a SandboxError."""
    if not _LIBRARY.fullmatch(name):
        raise SandboxError(f"--preload {name!r}: a library name is a plain identifier (letters, digits, _), not a path")
    where = libdir or pkglibdir()
    if not os.path.isfile(os.path.join(where, name + ".so")):
        raise SandboxError(f"--preload {name}: no {name}.so in {where} (install the extension's package first)")
    return name


def check_memory(value: str) -> str:
    """A ``shared_buffers`` value: a positive integer with kB, MB or GB (e.g. ``2GB``), else a SandboxError."""
    if not _MEMORY.fullmatch(value):
        raise SandboxError(f"--shared-buffers {value!r}: give a whole number with kB, MB or GB, e.g. 2GB")
    return value


def server_options(preload: tuple[str, ...] | list[str] = (), shared_buffers: str | None = None) -> ServerOptions:
    """Validated options; each library once, in the order given (a comma list counts as several)."""
    names: list[str] = []
    for item in preload:
        for name in item.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(check_library(name))
    return ServerOptions(tuple(names), check_memory(shared_buffers) if shared_buffers is not None else None)


def configured(conf_text: str) -> ServerOptions:
    """The options a sandbox's postgresql.conf was written with (the last value of each setting wins)."""
    values: dict[str, str] = {}
    for line in conf_text.splitlines():
        match = re.match(r"\s*(shared_preload_libraries|shared_buffers)\s*=\s*'([^']*)'", line)
        if match:
            values[match.group(1)] = match.group(2)
    libraries = [x.strip() for x in values.get("shared_preload_libraries", "").split(",") if x.strip()]
    return ServerOptions(tuple(lib for lib in libraries if lib not in ALWAYS_PRELOADED), values.get("shared_buffers"))


def missing(wanted: ServerOptions, have: ServerOptions) -> list[str]:
    """What a running sandbox lacks of ``wanted`` (empty: it will do), as option texts for a message."""
    out = [f"--preload {lib}" for lib in wanted.preload if lib not in have.preload]
    if wanted.shared_buffers is not None and wanted.shared_buffers != have.shared_buffers:
        out.append(f"--shared-buffers {wanted.shared_buffers}")
    return out
