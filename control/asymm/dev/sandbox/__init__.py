"""A throwaway PostgreSQL 15 cluster and Redis server for tests, benchmarks and the demo.

Why its own servers: tests must behave the same on a fresh machine and must never touch a server
someone else runs.  So the sandbox lives in one directory, listens on free ports, and only ever
stops processes whose pid files are inside that directory.  One module a job:

* :mod:`.statedir` -- the state directory is asymm's own (0700, O_NOFOLLOW, safe parents) or refused;
* :mod:`.state` -- ``sandbox.json`` is read back only after each value is checked;
* :mod:`.postgres`, :mod:`.redis_server` -- the two servers; :mod:`.users` -- who runs them;
* :mod:`.processes` -- running as the server user, our own pids, ports;
* :mod:`.box` (:class:`Sandbox`: paths, DSNs, ``env()``), :mod:`.lifecycle` (``up``/``load``/``down``),
  :mod:`.cluster` (a Redis Cluster for the sync tests), :mod:`.command` (``asymm sandbox``).

Trust (SPEC section 9).  Another local user may create files in ``/tmp`` before we do and may
connect to any port on 127.0.0.1.  So the state directory is checked (see :mod:`.statedir`) and the
servers do not trust every local user: PostgreSQL trusts only its unix socket, which lives in a
0700 directory (the DSN and ``PGHOST`` use it, so tests may connect as any role they make), and
asks for a generated password on TCP (scram-sha-256; clients find it in the 0600 ``pgpass`` file
named by the DSN's ``passfile`` and by ``PGPASSFILE``; ``tcp_dsn()``); Redis has ``requirepass``
with a generated password (in ``ASYMM_REDIS_URL``), read from a 0600 config file.

As root, the servers run as an unprivileged user (see :mod:`.users`).  The state directory then
stays owned by the caller and only its mode widens to 0710 with the server user's group, so the
server user can traverse it (not list it, not write it) to reach the subdirectories it owns.  We
did not hand the whole directory to the server user: then the state file and the secrets would
sit in a directory that account can write, and a planted ``sandbox.json`` would be acted on by
root again.  Layout::

    ROOT/            caller, 0700 (root: 0710, group = the server user's group)
      sandbox.json   caller, 0600: ports, server user, Redis password
      pgpass         caller, 0600: the superuser's password for libpq
      pgdata/        server user, 0700
      run/           server user, 0700: PostgreSQL's unix socket and log
      redis/         server user, 0700: redis.conf (requirepass), pid file, log
"""

from __future__ import annotations

from asymm.dev.sandbox.box import PASS_FILE, Sandbox
from asymm.dev.sandbox.cluster import RedisClusterBox, cluster_down, cluster_up
from asymm.dev.sandbox.lifecycle import down, load, up
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
    "cluster_down",
    "cluster_up",
    "default_dir",
    "down",
    "load",
    "up",
]
