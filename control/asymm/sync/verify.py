"""Full PostgreSQL-vs-Redis comparison of tracked tables (what the reliability tests end with).

Compares, per table, every row in PostgreSQL (projected exactly as the sync writes it) with the
live keys in Redis: a row missing from Redis, a value that differs, or a live key whose row no
longer exists (a resurrected delete) is a mismatch.  Reads the table in one snapshot; run it when
the sync is idle or the answer includes changes still in flight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from asymm.sync.keys import pin_key_settings
from asymm.sync.redis_io import RedisClient, keyset_key, parse_key, row_key
from asymm.sync.tables import Protector, load_tables


@dataclass
class Mismatches:
    rows_compared: int = 0
    missing: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.different) + len(self.extra)


def compare(conn: psycopg.Connection[Any], client: RedisClient, protector: Protector) -> Mismatches:
    """Every tracked row against Redis, keys and rows spelled as the daemon spells them (its settings,
    :data:`asymm.sync.keys.KEY_SETTINGS`, for the length of one transaction)."""
    with conn.transaction():
        pin_key_settings(conn, local=True)
        return _compare(conn, client, protector)


def _compare(conn: psycopg.Connection[Any], client: RedisClient, protector: Protector) -> Mismatches:
    out = Mismatches()
    prefix_row = conn.execute("SELECT asymm.setting('sync.key_prefix')").fetchone()
    key_prefix = str(prefix_row[0]) if prefix_row else "asymm"
    for table in load_tables(conn).values():
        query = sql.SQL("SELECT {key}, {doc} FROM {tbl} t").format(
            key=table.key_expr(), doc=table.doc_expr(protector.mode), tbl=table.ident
        )
        # (no parameters, but the names are written for statements that have some: see tables._param_safe)
        expected = {k: json.loads(protector.protect(table, d) or "null") for k, d in conn.execute(query, ())}
        out.rows_compared += len(expected)
        stored_keys = client.smembers(keyset_key(table.name, key_prefix))
        members = {m.decode() if isinstance(m, bytes) else m for m in stored_keys}
        stored = set()
        for member in members:
            parsed = _parsed(member)
            if parsed[:4] == (key_prefix, table.schema, table.table, "row"):
                stored.add(str(parsed[4]))
            else:  # another table's key (or no row key at all) in this table's key set
                out.extra.append(f"{table.name}: {member}")
        candidates = sorted(set(expected) | stored)
        pipe = client.pipeline(transaction=False)
        for key in candidates:
            pipe.hgetall(row_key(table.name, key, key_prefix))
        for key, stored in zip(candidates, pipe.execute(), strict=True):
            live = bool(stored) and b"t" not in stored and b"d" in stored
            name = f"{table.name}:{key}"
            if key not in expected:
                if live:
                    out.extra.append(name)
            elif not live:
                out.missing.append(name)
            elif json.loads(stored[b"d"]) != expected[key]:
                out.different.append(name)
    return out


def _parsed(key: str) -> tuple[str, str, str, str, str | None]:
    try:
        return parse_key(key)
    except ValueError:
        return ("", "", "", "", None)
