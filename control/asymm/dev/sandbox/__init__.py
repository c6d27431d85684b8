"""A throwaway PostgreSQL 15 cluster and Redis server for tests, benchmarks and the demo.

Why its own servers: tests must behave the same on a fresh machine and must never touch a server
someone else runs.  So the sandbox lives in one directory it checks is its own, listens on free
ports, makes the servers ask other local users for generated passwords, and only ever stops
processes whose pid files are inside that directory.  One module a job.

Details (the modules, trust, running as root, the layout): docs/sandbox.md.
"""

from __future__ import annotations

from asymm.dev.sandbox.box import PASS_FILE, Sandbox
from asymm.dev.sandbox.cluster import RedisClusterBox, cluster_down, cluster_up
from asymm.dev.sandbox.lifecycle import down, load, up
from asymm.dev.sandbox.options import ServerOptions, server_options
from asymm.dev.sandbox.state import STATE_FILE
from asymm.dev.sandbox.statedir import DEFAULT_DIR, default_dir
from asymm.dev.sandbox.users import DEFAULT_SERVER_USER

__all__ = [
    "DEFAULT_DIR",
    "DEFAULT_SERVER_USER",
    "PASS_FILE",
    "STATE_FILE",
    "RedisClusterBox",
    "Sandbox",
    "ServerOptions",
    "cluster_down",
    "cluster_up",
    "default_dir",
    "down",
    "load",
    "server_options",
    "up",
]
