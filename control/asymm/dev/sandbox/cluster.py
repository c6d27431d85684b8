"""A throwaway 3-master Redis Cluster for the sync's cluster tests.

The sync must work against Redis Cluster (a table's keys share one hash slot), and only a real
cluster proves it: MOVED redirections, per-slot scripts, CROSSSLOT errors.  Three masters, no
replicas, on free 127.0.0.1 ports, in a directory we own; stopped by our own pid files.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from asymm.dev.sandbox.processes import START_TIMEOUT_S, free_port, run_as, terminate, wait_for_port
from asymm.dev.sandbox.users import check_reachable, server_user
from asymm.errors import SandboxError


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
        port = free_port()
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
    user = os_user or server_user()
    check_reachable(root.parent, user)
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
            run_as(
                user,
                [
                    shutil.which("redis-server") or "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--daemonize",
                    "yes",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(node / "nodes.conf"),
                    "--cluster-node-timeout",
                    "5000",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(node),
                    "--pidfile",
                    str(node / "redis.pid"),
                    "--logfile",
                    str(node / "redis.log"),
                ],
                what="start a Redis Cluster node",
            )
        for port in ports:
            wait_for_port(port, "Redis Cluster node")
        run_as(
            user,
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "create",
                *[f"127.0.0.1:{p}" for p in ports],
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            what="create the Redis Cluster",
        )
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
            out = subprocess.run(
                [cli, "-h", "127.0.0.1", "-p", str(port), "cluster", "info"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
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
        terminate(pid, "Redis Cluster node")
    shutil.rmtree(box.root, ignore_errors=True)
