"""Redis side of the sync: key names, connection (plain or Cluster), and the Lua scripts.

Why Lua: every write is a compare-and-set on a per-key version, and the check and the write must
be one atomic step or an old value could slip in between.  Every script touches only keys of one
table, and all of a table's keys share the hash tag ``{schema.table}``, so each script runs in a
single slot and works unchanged on Redis Cluster.

Layout for table ``s.t`` (``T`` = ``asymm:{s.t}``):

* ``T:<key>``  hash ``v`` (version) and ``d`` (the row as JSON), or ``v`` and ``t=1`` for a tombstone;
* ``T``        hash ``epoch`` (which backfill the keys belong to), ``floor`` (no write below this
  version is accepted: set by TRUNCATE and backfills) and ``gen`` (bumped on every change; the
  query cache keys include it);
* ``T#keys``   set of the row keys written, so a TRUNCATE or a resync can clear exactly the
  table's keys without SCAN (which would have to visit every Cluster node).

Versions are xid8 values (snapshot xmins, see :mod:`asymm.sync`); Lua compares them as doubles,
exact below 2**53, i.e. for the first ~2 million transaction-id epochs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import redis
from redis.cluster import RedisCluster

from asymm.errors import AsymmError

RedisClient = Any  # redis.Redis or redis.cluster.RedisCluster: the same command API

_WRITE = """
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'floor')
if meta[1] ~= ARGV[1] then return -1 end
local v = tonumber(ARGV[2])
if meta[2] and v < tonumber(meta[2]) then return -2 end
local applied = 0
for i = 3, #KEYS do
  local cur = redis.call('HGET', KEYS[i], 'v')
  if (not cur) or tonumber(cur) <= v then
    local doc = ARGV[i + 1]
    redis.call('DEL', KEYS[i])
    if doc == '' then
      redis.call('HSET', KEYS[i], 'v', ARGV[2], 't', '1')
      redis.call('EXPIRE', KEYS[i], ARGV[3])
    else
      redis.call('HSET', KEYS[i], 'v', ARGV[2], 'd', doc)
      redis.call('SADD', KEYS[2], KEYS[i])
    end
    applied = applied + 1
  end
end
redis.call('HINCRBY', KEYS[1], 'gen', 1)
return applied
"""

_FILL = """
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'floor')
if not meta[1] then return 0 end
local v = tonumber(ARGV[1])
if meta[2] and v < tonumber(meta[2]) then return 0 end
local cur = redis.call('HGET', KEYS[3], 'v')
if cur and tonumber(cur) >= v then return 0 end
redis.call('DEL', KEYS[3])
if ARGV[2] == '' then
  redis.call('HSET', KEYS[3], 'v', ARGV[1], 't', '1')
  redis.call('EXPIRE', KEYS[3], ARGV[3])
else
  redis.call('HSET', KEYS[3], 'v', ARGV[1], 'd', ARGV[2])
  redis.call('SADD', KEYS[2], KEYS[3])
end
return 1
"""

_RESET = """
redis.call('HSET', KEYS[1], 'epoch', ARGV[1])
local f = redis.call('HGET', KEYS[1], 'floor')
if (not f) or tonumber(f) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'floor', ARGV[2]) end
redis.call('HINCRBY', KEYS[1], 'gen', 1)
local ks = redis.call('SPOP', KEYS[2], tonumber(ARGV[3]))
for _, k in ipairs(ks) do redis.call('DEL', k) end
return redis.call('SCARD', KEYS[2])
"""

_DROP = """
local ks = redis.call('SPOP', KEYS[2], tonumber(ARGV[1]))
for _, k in ipairs(ks) do redis.call('DEL', k) end
local left = redis.call('SCARD', KEYS[2])
if left == 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
return left
"""


DEFAULT_PREFIX = "asymm"


def check_prefix(prefix: str) -> str:
    """The ``sync.key_prefix`` setting, validated: braces would move the Cluster hash tag."""
    if not prefix or "{" in prefix or "}" in prefix:
        raise AsymmError(f"sync.key_prefix must be non-empty and contain no braces, not {prefix!r}"
                         " (e.g. 'asymm' or 'asymm:shopdb')")
    return prefix


def table_tag(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>:{schema.table}``: the prefix (and meta key) shared by all of a table's keys.

    The default prefix gives SPEC's ``asymm:{schema.table}:<key>``; two databases syncing into one
    Redis set ``sync.key_prefix`` apart (e.g. ``asymm:<dbname>``), or their tables would collide.
    """
    return prefix + ":{" + name + "}"


def row_key(name: str, key: str, prefix: str = DEFAULT_PREFIX) -> str:
    return table_tag(name, prefix) + ":" + key


def keyset_key(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    return table_tag(name, prefix) + "#keys"


def connect_redis(url: str, *, timeout: float = 2.0) -> RedisClient:
    """A client for ``url``; a Redis Cluster node (or ``?cluster=1``) gives a cluster client."""
    query = parse_qs(urlparse(url).query)
    plain_url = url.split("?", 1)[0]
    if query.get("cluster", ["0"])[0] in ("1", "true", "yes"):
        return RedisCluster.from_url(plain_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    client = redis.Redis.from_url(plain_url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                  client_name="asymm")
    try:
        enabled = client.info("cluster").get("cluster_enabled") == 1
    except redis.RedisError:
        enabled = False  # unreachable now: a plain client still lets the caller retry later
    if enabled:
        client.close()
        return RedisCluster.from_url(plain_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return client


class Scripts:
    """The three scripts, registered on one client (EVALSHA with a fallback to EVAL)."""

    def __init__(self, client: RedisClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = check_prefix(prefix)
        self._write = client.register_script(_WRITE)
        self._fill = client.register_script(_FILL)
        self._reset = client.register_script(_RESET)
        self._drop = client.register_script(_DROP)

    def write(self, name: str, epoch: str, version: int, ttl_s: int, items: list[tuple[str, str | None]]) -> int:
        """CAS-write rows (``None`` doc = tombstone); -1 if the table's epoch is not ``epoch``."""
        keys = [table_tag(name, self.prefix), keyset_key(name, self.prefix)]
        keys += [row_key(name, k, self.prefix) for k, _ in items]
        args: list[object] = [epoch, version, ttl_s] + [doc if doc is not None else "" for _, doc in items]
        return int(self._write(keys=keys, args=args))

    def fill(self, name: str, version: int, doc: str | None, key: str, ttl_s: int) -> bool:
        keys = [table_tag(name, self.prefix), keyset_key(name, self.prefix), row_key(name, key, self.prefix)]
        return bool(self._fill(keys=keys, args=[version, doc if doc is not None else "", ttl_s]))

    def reset(self, name: str, epoch: str, floor: int, chunk: int = 1000) -> None:
        """Set the table's epoch and floor, then delete every row key it has (chunk by chunk)."""
        keys = [table_tag(name, self.prefix), keyset_key(name, self.prefix)]
        while int(self._reset(keys=keys, args=[epoch, floor, chunk])) > 0:
            pass

    def drop(self, name: str, chunk: int = 1000) -> None:
        """Remove every key of a table that no longer exists: rows, key set and meta key (epoch gone,
        so a late read-through fill finds no epoch and is refused)."""
        keys = [table_tag(name, self.prefix), keyset_key(name, self.prefix)]
        while int(self._drop(keys=keys, args=[chunk])) > 0:
            pass
