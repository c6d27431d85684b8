"""A throwaway PostgreSQL 15 cluster and Redis server for tests, benchmarks and the demo.

Why its own servers: tests must behave the same on a fresh machine and must never touch a server
someone else runs.  So the sandbox lives in one directory, listens on free ports, and only ever
stops processes whose pid files are inside that directory.  PostgreSQL refuses to run as root, so
when we are root the servers run as an unprivileged user (``nobody`` unless
``ASYMM_SANDBOX_USER`` says otherwise).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from asymm.errors import SandboxError

STATE_FILE = "sandbox.json"
DEFAULT_DIR = Path(tempfile.gettempdir()) / "asymm-sandbox"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60

POSTGRES_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
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

    @property
    def data_dir(self) -> Path:
        return Path(self.root) / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return Path(self.root) / "run"

    @property
    def redis_dir(self) -> Path:
        return Path(self.root) / "redis"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.pg_port} user={SUPERUSER} dbname={dbname}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        """Variables that point libpq, asymm and the tests at this sandbox."""
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.pg_port),
            "PGUSER": SUPERUSER,
            "PGDATABASE": "postgres",
            "ASYMM_DSN": self.dsn(),
            "ASYMM_REDIS_URL": self.redis_url,
            "ASYMM_SANDBOX_DIR": self.root,
        }

    # -- process control, used by `up`/`down` and by resilience tests ---------------------------

    def start_postgres(self) -> None:
        _run_as(self.os_user, [
            self.pg_bindir + "/pg_ctl", "-D", str(self.data_dir), "-l", str(Path(self.root) / "postgres.log"),
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
            shutil.which("redis-server") or "redis-server",
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

    def _redis_pid(self) -> int | None:
        """The pid in our own pid file, if that process is still our redis-server."""
        pid_file = self.redis_dir / "redis.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return None
        return pid if "redis-server" in cmdline and f":{self.redis_port}" in cmdline else None


def default_dir() -> Path:
    return Path(os.environ.get("ASYMM_SANDBOX_DIR") or DEFAULT_DIR)


def load(root: Path | None = None) -> Sandbox:
    """The sandbox recorded in ``root``; an error if there is none."""
    root = (root or default_dir()).resolve()
    try:
        data = json.loads((root / STATE_FILE).read_text())
    except FileNotFoundError:
        raise SandboxError(f"no sandbox in {root} (run 'asymm sandbox up')") from None
    return Sandbox(**data)


def up(root: Path | None = None) -> Sandbox:
    """Start a sandbox in ``root`` (idempotent: an existing healthy one is returned as is)."""
    root = (root or default_dir()).resolve()
    if (root / STATE_FILE).exists():
        box = load(root)
        if _port_open(box.pg_port) and _port_open(box.redis_port):
            return box
        down(root)
    if root.exists() and any(root.iterdir()):
        raise SandboxError(f"{root} exists and is not an asymm sandbox; choose another --dir")
    bindir = _pg_bindir()
    os_user = _server_user()
    _check_reachable(root.parent, os_user)
    root.mkdir(parents=True, exist_ok=True)
    pg_port = _free_port()
    redis_port = _free_port(avoid=pg_port)
    box = Sandbox(root=str(root), pg_bindir=bindir, pg_port=pg_port, redis_port=redis_port, os_user=os_user)
    try:
        _prepare_dirs(box)
        _initdb(box)
        box.start_postgres()
        box.start_redis()
    except BaseException:
        _teardown(box)
        raise
    (root / STATE_FILE).write_text(json.dumps(asdict(box), indent=2) + "\n")
    return box


def down(root: Path | None = None) -> bool:
    """Stop the sandbox in ``root`` and remove its directory; False if there was none."""
    root = (root or default_dir()).resolve()
    if not (root / STATE_FILE).exists():
        return False
    _teardown(load(root))
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


def _prepare_dirs(box: Sandbox) -> None:
    root = Path(box.root)
    root.chmod(0o755)
    for path in (box.socket_dir, box.redis_dir):
        path.mkdir(mode=0o755)
    user = pwd.getpwnam(box.os_user)
    if os.geteuid() == 0:
        for path in (root, box.socket_dir, box.redis_dir):
            os.chown(path, user.pw_uid, user.pw_gid)


def _initdb(box: Sandbox) -> None:
    _run_as(box.os_user, [
        box.pg_bindir + "/initdb", "-D", str(box.data_dir), "-U", SUPERUSER, "--auth=trust",
        "--no-locale", "--encoding=UTF8", "--no-instructions",
    ], what="initialise the PostgreSQL cluster")
    conf = box.data_dir / "postgresql.conf"
    lines = [f"{name} = {value}" for name, value in POSTGRES_SETTINGS.items()]
    with conf.open("a") as handle:
        handle.write("\n# asymm sandbox\n" + "\n".join(lines) + "\n")


def _pg_bindir() -> str:
    """PostgreSQL 15 server binaries, honouring PG_CONFIG."""
    pg_config = os.environ.get("PG_CONFIG") or shutil.which("pg_config") or "pg_config"
    try:
        bindir = subprocess.run([pg_config, "--bindir"], check=True, capture_output=True,
                                text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        bindir = "/usr/lib/postgresql/15/bin"
    if not Path(bindir, "initdb").exists():
        raise SandboxError(f"PostgreSQL server binaries not found in {bindir} (install postgresql-15)")
    return bindir


def _server_user() -> str:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    name = os.environ.get("ASYMM_SANDBOX_USER", "nobody")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxError(f"user {name!r} does not exist; set ASYMM_SANDBOX_USER to an unprivileged user") \
            from None
    if entry.pw_uid == 0:
        raise SandboxError("ASYMM_SANDBOX_USER must not be root: PostgreSQL refuses to run as root")
    return name


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
