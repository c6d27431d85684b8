"""A running sandbox as recorded in its state file: paths, DSNs, environment and process control."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from psycopg import conninfo

from asymm.dev.sandbox import postgres, redis_server
from asymm.dev.sandbox.postgres import SUPERUSER
from asymm.dev.sandbox.processes import port_open

PASS_FILE = "pgpass"


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
        return conninfo.make_conninfo(
            "",
            host=str(self.socket_dir),
            port=str(self.pg_port),
            user=SUPERUSER,
            dbname=dbname,
            passfile=str(self.pass_file),
        )

    def tcp_dsn(self, dbname: str = "postgres") -> str:
        """Over TCP on 127.0.0.1, where the superuser needs the generated password (from ``passfile``)."""
        return conninfo.make_conninfo(
            "", host="127.0.0.1", port=str(self.pg_port), user=SUPERUSER, dbname=dbname, passfile=str(self.pass_file)
        )

    @property
    def redis_url(self) -> str:
        return f"redis://default:{self.redis_password}@127.0.0.1:{self.redis_port}/0"

    def env(self, dbname: str = "postgres") -> dict[str, str]:
        """Variables that point libpq, asymm and the tests at this sandbox's ``dbname`` (the Redis URL holds
        its password)."""
        return {
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(self.pg_port),
            "PGUSER": SUPERUSER,
            "PGDATABASE": dbname,
            "PGPASSFILE": str(self.pass_file),
            "ASYMM_DSN": self.dsn(dbname),
            "ASYMM_TCP_DSN": self.tcp_dsn(dbname),
            "ASYMM_REDIS_URL": self.redis_url,
            "ASYMM_SANDBOX_DIR": self.root,
        }

    # -- process control, used by `up`/`down` and by resilience tests ---------------------------

    def start_postgres(self) -> None:
        postgres.start(self)

    def stop_postgres(self, mode: str = "fast") -> None:
        postgres.stop(self, mode)

    def restart_postgres(self) -> None:
        self.stop_postgres()
        self.start_postgres()

    def start_redis(self) -> None:
        redis_server.start(self)

    def stop_redis(self) -> None:
        redis_server.stop(self)

    def restart_redis(self) -> None:
        self.stop_redis()
        self.start_redis()

    def running(self) -> bool:
        """Both servers are up, and they are ours (pid files in our directory, our server user)."""
        return (
            postgres.postmaster_pid(self) is not None
            and redis_server.pid(self) is not None
            and port_open(self.pg_port)
            and port_open(self.redis_port)
        )
