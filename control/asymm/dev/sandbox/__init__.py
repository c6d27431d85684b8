"""A throwaway PostgreSQL 15 cluster and Redis server for tests, benchmarks and the demo.

Why its own servers: tests must behave the same on a fresh machine and must never touch a server
someone else runs.  So the sandbox lives in one directory, listens on free ports, and only ever
stops processes whose pid files are inside that directory.

Trust (SPEC section 9).  Another local user may create files in ``/tmp`` before we do and may
connect to any port on 127.0.0.1.  So:

* The state directory is asymm's own: created with ``mkdir(mode=0o700)`` and checked through a
  file descriptor opened with ``O_NOFOLLOW``; an existing one is refused (one-line
  :class:`UnsafeDirectoryError`, nothing run, nothing deleted) when it is a symlink, is not owned
  by the caller, or is group/world-writable.  Its parents must be owned by root or the caller and
  not writable by others unless sticky (``/tmp``), so nobody else can rename the checked
  directory and put another in its place between the check and the use.
* Nothing in ``sandbox.json`` is trusted blindly even then: the directory it names must be the
  one it sits in, ``pg_bindir`` must be the real PostgreSQL bindir (``pg_config --bindir`` or
  Debian's ``/usr/lib/postgresql/15/bin``, owned by root or the caller, not writable by others),
  the server user must not be root, and ``down()`` removes only the verified directory itself.
* The servers do not trust every local user: PostgreSQL trusts only its unix socket, which lives
  in a 0700 directory (the DSN and ``PGHOST`` use it, so tests may connect as any role they make),
  and asks for a generated password on TCP (scram-sha-256; clients find it in the 0600 ``pgpass``
  file named by the DSN's ``passfile`` and by ``PGPASSFILE``; ``tcp_dsn()``); Redis
  has ``requirepass`` with a generated password (in ``ASYMM_REDIS_URL``), read from a 0600
  config file rather than the command line, which every local user can read in ``/proc``.

PostgreSQL refuses to run as root, so when we are root the servers run as an unprivileged user:
the dedicated system user ``asymm-sandbox`` (created with ``useradd --system`` when missing;
``ASYMM_SANDBOX_USER`` overrides).  Not ``nobody``: that is the account every unprivileged daemon
and attacker shares.  How the 0700 rule and the server user fit together: the state directory
stays owned by the caller and only its mode widens to 0710 with the server user's group, so the
server user can traverse it (not list it, not write it) to reach the subdirectories it owns
(``pgdata``, ``run``, ``redis``, each 0700).  We did not hand the whole directory to the server
user: then the state file and the secrets would sit in a directory that account can write, and
a planted ``sandbox.json`` (from ``nobody``, say, when ``ASYMM_SANDBOX_USER=nobody``) would be
acted on by root again.  Layout::

    ROOT/            caller, 0700 (root: 0710, group = the server user's group)
      sandbox.json   caller, 0600: ports, server user, Redis password
      pgpass         caller, 0600: the superuser's password for libpq
      pgdata/        server user, 0700
      run/           server user, 0700: PostgreSQL's unix socket and log
      redis/         server user, 0700: redis.conf (requirepass), pid file, log
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from psycopg import conninfo

from asymm import private_paths
from asymm.errors import SandboxError, UnsafeDirectoryError

STATE_FILE = "sandbox.json"
PASS_FILE = "pgpass"
DEFAULT_DIR = Path(tempfile.gettempdir()) / f"asymm-sandbox-{os.getuid()}"
DEFAULT_SERVER_USER = "asymm-sandbox"
DEBIAN_BINDIR = "/usr/lib/postgresql/15/bin"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60
_SECRET = re.compile(r"[A-Za-z0-9_-]{20,}")

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
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


@dataclass
class Sandbox:
    """A running sandbox, as recorded in its state file."""

    root: str
    pg_bindir: str
    pg_port: int
    redis_port: int
    os_user: str
    redis_password: str

    @property
    def data_dir(self) -> Path:
        return Path(self.root) / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return Path(self.root) / "run"

    @property
    def redis_dir(self) -> Path:
        return Path(self.root) / "redis"

    @property
    def pass_file(self) -> Path:
        """libpq's password file (``passfile=`` in the DSN, ``PGPASSFILE``): the DSN itself holds no secret."""
        return Path(self.root) / PASS_FILE

    def dsn(self, dbname: str = "postgres") -> str:
        """Through the unix socket in the 0700 ``run`` directory, which trusts every role: tests connect as
        roles they just made, without passwords.  ``passfile`` is there for whoever swaps in a TCP host."""
        return conninfo.make_conninfo("", host=str(self.socket_dir), port=str(self.pg_port), user=SUPERUSER,
                                      dbname=dbname, passfile=str(self.pass_file))

    def tcp_dsn(self, dbname: str = "postgres") -> str:
        """Over TCP on 127.0.0.1, where the superuser needs the generated password (from ``passfile``)."""
        return conninfo.make_conninfo("", host="127.0.0.1", port=str(self.pg_port), user=SUPERUSER,
                                      dbname=dbname, passfile=str(self.pass_file))

    @property
    def redis_url(self) -> str:
        return f"redis://default:{self.redis_password}@127.0.0.1:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        """Variables that point libpq, asymm and the tests at this sandbox (the Redis URL holds its password)."""
        return {
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(self.pg_port),
            "PGUSER": SUPERUSER,
            "PGDATABASE": "postgres",
            "PGPASSFILE": str(self.pass_file),
            "ASYMM_DSN": self.dsn(),
            "ASYMM_TCP_DSN": self.tcp_dsn(),
            "ASYMM_REDIS_URL": self.redis_url,
            "ASYMM_SANDBOX_DIR": self.root,
        }

    # -- process control, used by `up`/`down` and by resilience tests ---------------------------

    def start_postgres(self) -> None:
        _run_as(self.os_user, [
            self.pg_bindir + "/pg_ctl", "-D", str(self.data_dir), "-l", str(self.socket_dir / "postgres.log"),
            "-w", "-t", str(START_TIMEOUT_S), "-o", f"-p {self.pg_port} -k {self.socket_dir}", "start",
        ], what="start PostgreSQL")

    def stop_postgres(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            _run_as(self.os_user, [self.pg_bindir + "/pg_ctl", "-D", str(self.data_dir), "-m", mode,
                                   "-w", "-t", str(START_TIMEOUT_S), "stop"], what="stop PostgreSQL")

    def restart_postgres(self) -> None:
        self.stop_postgres()
        self.start_postgres()

    def start_redis(self) -> None:
        _run_as(self.os_user, [
            shutil.which("redis-server") or "redis-server", str(self.redis_dir / "redis.conf"),
            "--port", str(self.redis_port), "--bind", "127.0.0.1", "--daemonize", "yes",
            "--save", "", "--appendonly", "no", "--dir", str(self.redis_dir),
            "--pidfile", str(self.redis_dir / "redis.pid"), "--logfile", str(self.redis_dir / "redis.log"),
        ], what="start Redis")
        _wait_for_port(self.redis_port, "Redis")

    def stop_redis(self) -> None:
        pid = self._redis_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + START_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            raise SandboxError(f"Redis (pid {pid}) did not stop")
        (self.redis_dir / "redis.pid").unlink(missing_ok=True)

    def restart_redis(self) -> None:
        self.stop_redis()
        self.start_redis()

    def running(self) -> bool:
        """Both servers are up, and they are ours (pid files in our directory, our server user)."""
        return (self._postmaster_pid() is not None and self._redis_pid() is not None
                and _port_open(self.pg_port) and _port_open(self.redis_port))

    def _redis_pid(self) -> int | None:
        """The pid in our own pid file, if that process is still our redis-server."""
        return _our_process(self.redis_dir / "redis.pid", self.os_user, ("redis-server", f":{self.redis_port}"))

    def _postmaster_pid(self) -> int | None:
        return _our_process(self.data_dir / "postmaster.pid", self.os_user, ("postgres",))


def _our_process(pid_file: Path, user: str, marks: tuple[str, ...]) -> int | None:
    """The pid in ``pid_file`` if it runs as ``user`` and its command line has every mark.

    The pid file sits in a directory the server user can write, so its content is checked before
    anyone sends that pid a signal.
    """
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        status = Path(f"/proc/{pid}/status").read_text()
        uid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:"))
        expected = pwd.getpwnam(user).pw_uid
    except (OSError, ValueError, IndexError, StopIteration, KeyError):
        return None
    return pid if uid == expected and all(mark in cmdline for mark in marks) else None


def default_dir() -> Path:
    return Path(os.environ.get("ASYMM_SANDBOX_DIR") or DEFAULT_DIR)


def load(root: Path | None = None) -> Sandbox:
    """The sandbox recorded in ``root``; an error if there is none or ``root`` is not safely ours."""
    root = _absolute(root)
    if not _check_root(root):
        raise SandboxError(f"no sandbox in {root} (run 'asymm sandbox up')")
    box = _read_state(root)
    if box is None:
        raise SandboxError(f"no sandbox in {root} (run 'asymm sandbox up')")
    return box


def up(root: Path | None = None) -> Sandbox:
    """Start a sandbox in ``root`` (idempotent: an existing healthy one is returned as is)."""
    root = _absolute(root)
    if _check_root(root):
        box = _read_state(root)
        if box is not None:
            if box.running():
                return box
            down(root)
        elif any(root.iterdir()):
            raise SandboxError(f"{root} exists and is not an asymm sandbox; choose another --dir")
    if len(str(root / "run" / ".s.PGSQL.65535.lock")) > 107:
        raise SandboxError(f"{root} is too long a path for PostgreSQL's unix socket in it; choose a shorter --dir")
    bindir = _pg_bindir()
    os_user = _server_user()
    _check_reachable(root.parent, os_user)
    server = pwd.getpwnam(os_user)
    _make_root(root, server)
    pg_port = _free_port()
    redis_port = _free_port(avoid=pg_port)
    box = Sandbox(root=str(root), pg_bindir=bindir, pg_port=pg_port, redis_port=redis_port, os_user=os_user,
                  redis_password=secrets.token_urlsafe(32))
    try:
        _prepare_dirs(box, server)
        _initdb(box, server)
        box.start_postgres()
        box.start_redis()
        _wait_until_running(box)
        _write_private(root / STATE_FILE, json.dumps(asdict(box), indent=2) + "\n")
    except BaseException:
        _teardown(box)
        raise
    return box


def down(root: Path | None = None) -> bool:
    """Stop the sandbox in ``root`` and remove its directory; False if there was none.

    Only the verified directory itself is removed, whatever the state file says.
    """
    root = _absolute(root)
    if not _check_root(root):
        return False
    box = _read_state(root)
    if box is None:
        return False
    _teardown(box)
    return True


def _teardown(box: Sandbox) -> None:
    errors = []
    for stop in (box.stop_postgres, box.stop_redis):
        try:
            stop()
        except SandboxError as exc:
            errors.append(str(exc))
    if errors:
        raise SandboxError("; ".join(errors))
    shutil.rmtree(box.root, ignore_errors=True)


# -- the state directory: ours, or refused --------------------------------------------------------

def _absolute(root: Path | None) -> Path:
    return private_paths.absolute(root or default_dir())


def _refuse(path: Path, why: str) -> UnsafeDirectoryError:
    return UnsafeDirectoryError(f"refusing {path}: {why}; remove it or choose another --dir")


def _check_owned(path: Path, info: os.stat_result, *, directory: bool) -> None:
    private_paths.check_owned(path, info, directory=directory, refuse=_refuse)


def _check_root(root: Path) -> bool:
    """True if ``root`` exists and is safely ours, False if it does not exist; refused otherwise."""
    private_paths.check_parents(root, refuse=_refuse, missing_ok=True)
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return False
    _check_owned(root, info, directory=True)
    return True


def _make_root(root: Path, server: pwd.struct_passwd) -> None:
    """Create ``root`` 0700 (or take the empty one the caller made), verified through an O_NOFOLLOW fd.

    When root runs the sandbox, the directory becomes 0710 with the server user's group: that
    account may traverse it to its own subdirectories, nothing more (see the module docstring).
    """
    root.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # checked by _check_root(); checked again below, by descriptor
        os.mkdir(root, 0o700)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise _refuse(root, f"cannot open it without following links ({exc.strerror})") from None
    try:
        _check_owned(root, os.fstat(fd), directory=True)
        if os.geteuid() == 0 and server.pw_uid != 0:
            os.fchown(fd, 0, server.pw_gid)
            os.fchmod(fd, 0o710)
        else:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def _write_private(path: Path, text: str, owner: pwd.struct_passwd | None = None) -> None:
    """A new 0600 file (never an existing one, never through a link), handed to ``owner`` if given."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        if owner is not None and os.geteuid() == 0:
            os.fchown(handle.fileno(), owner.pw_uid, owner.pw_gid)
        handle.write(text)


def _read_state(root: Path) -> Sandbox | None:
    """The validated state in ``root`` (already checked to be ours), None if it has no state file."""
    path = root / STATE_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(path, "it is a symlink") from None
        raise SandboxError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd) as handle:
        _check_owned(path, os.fstat(handle.fileno()), directory=False)
        text = handle.read()
    try:
        data = json.loads(text)
    except ValueError:
        raise SandboxError(f"{path} is not a sandbox state file (not JSON)") from None
    return _validated(root, path, data)


def _validated(root: Path, path: Path, data: object) -> Sandbox:
    """A Sandbox from the state file's data, each value checked against what it may be."""
    fields = {"root": str, "pg_bindir": str, "pg_port": int, "redis_port": int, "os_user": str,
              "redis_password": str}
    if not isinstance(data, dict) or set(data) != set(fields) \
            or not all(isinstance(data[k], t) for k, t in fields.items()):
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
    if os.path.realpath(str(data["pg_bindir"])) not in _trusted_bindirs():
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


def _prepare_dirs(box: Sandbox, server: pwd.struct_passwd) -> None:
    """The server user's own 0700 subdirectories, in a directory only the caller can write."""
    for path in (box.data_dir, box.socket_dir, box.redis_dir):
        os.mkdir(path, 0o700)
        if os.geteuid() == 0:
            os.chown(path, server.pw_uid, server.pw_gid, follow_symlinks=False)
    _write_private(box.redis_dir / "redis.conf", f"requirepass {box.redis_password}\n", owner=server)


def _initdb(box: Sandbox, server: pwd.struct_passwd) -> None:
    """initdb with a generated superuser password: scram-sha-256 on TCP, trust only on the 0700 socket dir."""
    password = secrets.token_urlsafe(32)
    pwfile = box.socket_dir / "initdb.pw"
    _write_private(pwfile, password + "\n", owner=server)
    try:
        _run_as(box.os_user, [
            box.pg_bindir + "/initdb", "-D", str(box.data_dir), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=trust",
            "--no-locale", "--encoding=UTF8", "--no-instructions",
        ], what="initialise the PostgreSQL cluster")
    finally:
        pwfile.unlink(missing_ok=True)
    _write_private(box.pass_file, f"127.0.0.1:*:*:{SUPERUSER}:{password}\n")
    conf = box.data_dir / "postgresql.conf"
    settings = {**POSTGRES_SETTINGS, "unix_socket_directories": "'" + str(box.socket_dir).replace("'", "''") + "'"}
    lines = [f"{name} = {value}" for name, value in settings.items()]
    with conf.open("a") as handle:
        handle.write("\n# asymm sandbox\n" + "\n".join(lines) + "\n")


# -- binaries and the server user -----------------------------------------------------------------

def _pg_config_bindir() -> str | None:
    pg_config = os.environ.get("PG_CONFIG") or shutil.which("pg_config") or "pg_config"
    try:
        return subprocess.run([pg_config, "--bindir"], check=True, capture_output=True,
                              text=True).stdout.strip() or None
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


def _trusted_bindirs() -> set[str]:
    """Where a state file's ``pg_bindir`` may point: pg_config's bindir or Debian's PostgreSQL 15."""
    candidates = [_pg_config_bindir() or DEBIAN_BINDIR, DEBIAN_BINDIR]
    return {os.path.realpath(c) for c in candidates if _safe_bindir(c)}


def _pg_bindir() -> str:
    """PostgreSQL 15 server binaries, honouring PG_CONFIG."""
    bindir = _pg_config_bindir() or DEBIAN_BINDIR
    if not Path(bindir, "initdb").exists():
        raise SandboxError(f"PostgreSQL server binaries not found in {bindir} (install postgresql-15)")
    if not _safe_bindir(bindir):
        raise SandboxError(f"PostgreSQL binaries in {bindir} are writable by another user; refusing to run them")
    return bindir


def _server_user() -> str:
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
        raise SandboxError(f"user {name!r} does not exist; set ASYMM_SANDBOX_USER to an unprivileged user") \
            from None
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
    done = subprocess.run([shutil.which("useradd") or "/usr/sbin/useradd", "--system", "--user-group",
                           "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                           "--comment", "asymm sandbox servers", name],
                          capture_output=True, text=True, check=False)
    try:
        pwd.getpwnam(name)  # made by us, or by a concurrent sandbox a moment ago
    except KeyError:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise SandboxError(f"cannot create the system user {name!r} ({detail[-1] if detail else done.returncode});"
                           " set ASYMM_SANDBOX_USER to an unprivileged user") from None


def _check_reachable(directory: Path, user: str) -> None:
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


def _run_as(user: str, argv: list[str], *, what: str) -> None:
    kwargs: dict[str, object] = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, cwd="/", timeout=START_TIMEOUT_S * 2,
                       **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise SandboxError(f"cannot {what}: {argv[0]} not found") from None
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise SandboxError(f"cannot {what}: {detail[-1] if detail else exc}") from None
    except subprocess.TimeoutExpired:
        raise SandboxError(f"cannot {what}: timed out") from None


def _free_port(avoid: int = 0) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != avoid:
            return port


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_until_running(box: Sandbox) -> None:
    """Ports open is not enough: a server writes its pid file a moment later, and running() reads it."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not box.running():
        if time.monotonic() > deadline:
            raise SandboxError("the sandbox's servers did not come up (no pid file of theirs)")
        time.sleep(0.05)


def _wait_for_port(port: int, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _port_open(port):
        if time.monotonic() > deadline:
            raise SandboxError(f"{what} did not start listening on port {port}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- Redis Cluster ---------------------------------------------------------------------------------
# The sync must work against Redis Cluster (SPEC section 5: a table's keys share one hash slot), and
# only a real cluster proves it: MOVED redirections, per-slot scripts, CROSSSLOT errors.  Three
# masters, no replicas, on free 127.0.0.1 ports, in a directory we own; stopped by our own pid files.


@dataclass
class RedisClusterBox:
    """A running 3-master Redis Cluster started by :func:`cluster_up`."""

    root: str
    ports: list[int]
    os_user: str

    @property
    def url(self) -> str:
        """A seed node; ``?cluster=1`` makes :func:`asymm.sync.redis_io.connect_redis` use a cluster client."""
        return f"redis://127.0.0.1:{self.ports[0]}/0?cluster=1"

    def node_dir(self, port: int) -> Path:
        return Path(self.root) / f"node-{port}"


def _free_cluster_port(avoid: set[int]) -> int:
    """A free port whose cluster-bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = _free_port()
        if port + 10000 > 65535:
            port = 20000 + port % 20000
        if port in avoid or port + 10000 in avoid:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise SandboxError("no free port pair for a Redis Cluster node")


def cluster_up(root: Path, nodes: int = 3, os_user: str | None = None) -> RedisClusterBox:
    """Start ``nodes`` cluster-enabled redis-servers in ``root`` and join them (all masters)."""
    root = root.resolve()
    if root.exists() and any(root.iterdir()):
        raise SandboxError(f"{root} exists and is not empty; choose another directory for the cluster")
    user = os_user or _server_user()
    _check_reachable(root.parent, user)
    root.mkdir(parents=True, exist_ok=True)
    used: set[int] = set()
    ports = []
    for _ in range(nodes):
        port = _free_cluster_port(used)
        used |= {port, port + 10000}
        ports.append(port)
    box = RedisClusterBox(root=str(root), ports=ports, os_user=user)
    entry = pwd.getpwnam(user)
    try:
        for port in ports:
            node = box.node_dir(port)
            node.mkdir(mode=0o755, parents=True)
            if os.geteuid() == 0:
                os.chown(root, entry.pw_uid, entry.pw_gid)
                os.chown(node, entry.pw_uid, entry.pw_gid)
            _run_as(user, [
                shutil.which("redis-server") or "redis-server",
                "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
                "--cluster-enabled", "yes", "--cluster-config-file", str(node / "nodes.conf"),
                "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no", "--dir", str(node),
                "--pidfile", str(node / "redis.pid"), "--logfile", str(node / "redis.log"),
            ], what="start a Redis Cluster node")
        for port in ports:
            _wait_for_port(port, "Redis Cluster node")
        _run_as(user, [shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
                       *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas", "0", "--cluster-yes"],
                what="create the Redis Cluster")
        _wait_cluster_ok(ports)
    except BaseException:
        cluster_down(box)
        raise
    return box


def _wait_cluster_ok(ports: list[int]) -> None:
    """Every node agrees the cluster is up (all 16384 slots served) before anyone uses it."""
    deadline = time.monotonic() + START_TIMEOUT_S
    cli = shutil.which("redis-cli") or "redis-cli"
    while True:
        states = []
        for port in ports:
            out = subprocess.run([cli, "-h", "127.0.0.1", "-p", str(port), "cluster", "info"],
                                 capture_output=True, text=True, check=False).stdout
            states.append("cluster_state:ok" in out)
        if all(states):
            return
        if time.monotonic() > deadline:
            raise SandboxError("the Redis Cluster did not reach cluster_state:ok")
        time.sleep(0.1)


def cluster_down(box: RedisClusterBox) -> None:
    """Stop the nodes this box started (by the pid files in its directory) and remove it."""
    for port in box.ports:
        pid_file = box.node_dir(port) / "redis.pid"
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            continue
        if "redis-server" not in cmdline or f":{port}" not in cmdline:
            continue  # not ours any more
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + START_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            raise SandboxError(f"Redis Cluster node (pid {pid}) did not stop")
    shutil.rmtree(box.root, ignore_errors=True)
