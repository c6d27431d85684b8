"""The sandbox's PostgreSQL 15 cluster: trusted server binaries, initdb, start and stop.

Why the bindir checks: root runs these binaries, so they must be PostgreSQL's own (``pg_config
--bindir`` or Debian's ``/usr/lib/postgresql/15/bin``), owned by root or the caller and not
writable by others; a state file naming any other directory is refused.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from asymm.dev.sandbox.processes import START_TIMEOUT_S, our_process, run_as
from asymm.dev.sandbox.statedir import write_private
from asymm.errors import SandboxError

if TYPE_CHECKING:
    from asymm.dev.sandbox.options import ServerOptions
    from asymm.dev.sandbox.paths import ServerPaths

DEBIAN_BINDIR = "/usr/lib/postgresql/15/bin"
SUPERUSER = "postgres"

POSTGRES_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "password_encryption": "'scram-sha-256'",
    "unix_socket_permissions": "0700",
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.max": "10000",
    "pg_stat_statements.track": "'top'",
    "track_io_timing": "on",
    "track_functions": "'all'",
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "max_prepared_transactions": "10",
    "wal_level": "'logical'",
    "max_wal_senders": "4",
    "max_replication_slots": "4",
    # Throwaway data: durability is traded for speed.  Benchmarks state this in RESULTS.md.
    "fsync": "off",
    # Not off: VACUUM cannot mark a page all-visible until the inserter's commit record is
    # flushed, so with asynchronous commit a VACUUM right after a load left relallvisible at 0
    # when the WAL writer was late, and index-only scans were priced (and run) as heap fetches,
    # at random.  With fsync off a synchronous commit is a write to the page cache.
    "synchronous_commit": "on",
    "full_page_writes": "off",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


def initdb(box: ServerPaths, server: pwd.struct_passwd, options: ServerOptions | None = None) -> None:
    """initdb with a generated superuser password: scram-sha-256 on TCP, trust only on the 0700 socket dir.

    ``options`` (validated by :mod:`asymm.dev.sandbox.options`) override the preloaded libraries
    and ``shared_buffers`` of :data:`POSTGRES_SETTINGS`.
    """
    password = secrets.token_urlsafe(32)
    pwfile = box.socket_dir / "initdb.pw"
    write_private(pwfile, password + "\n", owner=server)
    try:
        run_as(
            box.os_user,
            [
                box.pg_bindir + "/initdb",
                "-D",
                str(box.data_dir),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--no-locale",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            what="initialise the PostgreSQL cluster",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    write_private(box.pass_file, f"127.0.0.1:*:*:{SUPERUSER}:{password}\n")
    conf = box.data_dir / "postgresql.conf"
    settings = {
        **POSTGRES_SETTINGS,
        **(options.settings() if options is not None else {}),
        "unix_socket_directories": "'" + str(box.socket_dir).replace("'", "''") + "'",
    }
    lines = [f"{name} = {value}" for name, value in settings.items()]
    with conf.open("a") as handle:
        handle.write("\n# asymm sandbox\n" + "\n".join(lines) + "\n")


def start(box: ServerPaths) -> None:
    run_as(
        box.os_user,
        [
            box.pg_bindir + "/pg_ctl",
            "-D",
            str(box.data_dir),
            "-l",
            str(box.socket_dir / "postgres.log"),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-o",
            f"-p {box.pg_port} -k {box.socket_dir}",
            "start",
        ],
        what="start PostgreSQL",
    )


def stop(box: ServerPaths, mode: str = "fast") -> None:
    if (box.data_dir / "postmaster.pid").exists():
        run_as(
            box.os_user,
            [box.pg_bindir + "/pg_ctl", "-D", str(box.data_dir), "-m", mode, "-w", "-t", str(START_TIMEOUT_S), "stop"],
            what="stop PostgreSQL",
        )


def postmaster_pid(box: ServerPaths) -> int | None:
    """The postmaster's pid from its pid file, if that process is still our postgres."""
    return our_process(box.data_dir / "postmaster.pid", box.os_user, ("postgres",))


# -- binaries -------------------------------------------------------------------------------------


def _pg_config_bindir() -> str | None:
    pg_config = os.environ.get("PG_CONFIG") or shutil.which("pg_config") or "pg_config"
    try:
        return (
            subprocess.run([pg_config, "--bindir"], check=True, capture_output=True, text=True).stdout.strip() or None
        )
    except (OSError, subprocess.CalledProcessError):
        return None


def _safe_bindir(bindir: str) -> bool:
    """Server binaries nobody but root (or the caller) could have replaced."""
    for path in (bindir, os.path.join(bindir, "initdb"), os.path.join(bindir, "pg_ctl")):
        try:
            info = os.stat(path)
        except OSError:
            return False
        if info.st_uid not in (0, os.geteuid()) or info.st_mode & 0o022:
            return False
    return True


def trusted_bindirs() -> set[str]:
    """Where a state file's ``pg_bindir`` may point: pg_config's bindir or Debian's PostgreSQL 15."""
    candidates = [_pg_config_bindir() or DEBIAN_BINDIR, DEBIAN_BINDIR]
    return {os.path.realpath(c) for c in candidates if _safe_bindir(c)}


def pg_bindir() -> str:
    """PostgreSQL 15 server binaries, honouring PG_CONFIG."""
    bindir = _pg_config_bindir() or DEBIAN_BINDIR
    if not Path(bindir, "initdb").exists():
        raise SandboxError(f"PostgreSQL server binaries not found in {bindir} (install postgresql-15)")
    if not _safe_bindir(bindir):
        raise SandboxError(f"PostgreSQL binaries in {bindir} are writable by another user; refusing to run them")
    return bindir
