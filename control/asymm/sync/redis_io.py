"""Redis side of the sync: key names, connection (plain or Cluster), and the Lua scripts.

Why Lua: every write is a compare-and-set on a per-key version, and the check and the write must
be one atomic step.  Every script touches keys of one table only, which share the hash tag
``{schema.table}``, so it runs in one slot, on Redis Cluster too.  Key layout: docs/sync.md.
"""

from __future__ import annotations

import json
import re
from typing import Any

import redis

from asymm.errors import AsymmError
from asymm.redis_conn import RedisClient as RedisClient  # where callers have imported it from
from asymm.redis_conn import connect_redis as connect_redis  # where callers have imported it from

_WRITE = """
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'floor', 'fence', 'applied')
if ARGV[4] ~= '' and meta[3] and tonumber(ARGV[4]) < tonumber(meta[3]) then return -3 end
if meta[1] ~= ARGV[1] then return -1 end
if tonumber(ARGV[5]) > tonumber(meta[4] or '0') then return -1 end  -- acknowledged writes are gone
local v = tonumber(ARGV[2])
if meta[2] and v < tonumber(meta[2]) then return -2 end
local applied = 0
for i = 3, #KEYS do
  local k = KEYS[i]
  local cur = redis.call('HMGET', k, 'v', 't')
  if (not cur[1]) or tonumber(cur[1]) <= v then
    local doc = ARGV[i + 3]
    if doc == '' then
      redis.call('DEL', k)
      redis.call('HSET', k, 'v', ARGV[2], 't', '1')
      redis.call('EXPIRE', k, ARGV[3])
    else
      if cur[2] then redis.call('DEL', k) end  -- a tombstone: drop its 't' and its expiry
      redis.call('HSET', k, 'v', ARGV[2], 'd', doc)  -- over a live row: v and d replaced in place
      if (not cur[1]) or cur[2] then redis.call('SADD', KEYS[2], k) end  -- a live row is a member already
    end
    applied = applied + 1
  end
end
if (not meta[4]) or v > tonumber(meta[4]) then redis.call('HSET', KEYS[1], 'applied', ARGV[2]) end
if ARGV[4] ~= '' and ((not meta[3]) or tonumber(ARGV[4]) > tonumber(meta[3])) then
  redis.call('HSET', KEYS[1], 'fence', ARGV[4])
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
local m = redis.call('HMGET', KEYS[1], 'fence', 'floor', 'applied')
if ARGV[4] ~= '' and m[1] and tonumber(ARGV[4]) < tonumber(m[1]) then return -3 end
if ARGV[4] ~= '' and ((not m[1]) or tonumber(ARGV[4]) > tonumber(m[1])) then
  redis.call('HSET', KEYS[1], 'fence', ARGV[4])
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1])
local floor = tonumber(ARGV[2])
if (not m[2]) or tonumber(m[2]) < floor then redis.call('HSET', KEYS[1], 'floor', ARGV[2]) end
if (not m[3]) or tonumber(m[3]) < floor then redis.call('HSET', KEYS[1], 'applied', ARGV[2]) end
redis.call('HINCRBY', KEYS[1], 'gen', 1)
local ks = redis.call('SPOP', KEYS[2], tonumber(ARGV[3]))
for _, k in ipairs(ks) do redis.call('DEL', k) end
return redis.call('SCARD', KEYS[2])
"""

_DROP = """
local f = redis.call('HGET', KEYS[1], 'fence')
if ARGV[2] ~= '' and f and tonumber(ARGV[2]) < tonumber(f) then return -3 end
local ks = redis.call('SPOP', KEYS[2], tonumber(ARGV[1]))
for _, k in ipairs(ks) do redis.call('DEL', k) end
local left = redis.call('SCARD', KEYS[2])
if left == 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
return left
"""

# The new sync leader's first write to each tracked table: its fencing token, so that every
# later script of a deposed leader (a lower token) is refused.
_STAMP = """
local f = redis.call('HGET', KEYS[1], 'fence')
if f and tonumber(ARGV[1]) < tonumber(f) then return -3 end
redis.call('HSET', KEYS[1], 'fence', ARGV[1])
return 1
"""

DEPOSED = -3  # what every script returns, writing nothing, to a caller whose token is below the table's


class Deposed(AsymmError):
    """Redis refused a script: a sync leader with a higher fencing token has taken over."""


DEFAULT_PREFIX = "asymm"


def check_prefix(prefix: str) -> str:
    """The ``sync.key_prefix`` setting, validated: braces would move the Cluster hash tag."""
    if not prefix or "{" in prefix or "}" in prefix:
        raise AsymmError(
            f"sync.key_prefix must be non-empty and contain no braces, not {prefix!r} (e.g. 'asymm' or 'asymm:shopdb')"
        )
    return prefix


_SCHEMA_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D", ".": "%2E"})
_TABLE_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})
_UNESCAPE = re.compile("%(25|7B|7D|2E)")
_UNESCAPED = {"25": "%", "7B": "{", "7D": "}", "2E": "."}


def redis_name(schema: str, table: str) -> str:
    """The text inside a table's hash tag: ``schema.table``, percent-encoded so it is unambiguous.

    ``%``, ``{`` and ``}`` are encoded in both parts (no ``}`` is left to end the tag early, and the
    encoding of ``%`` keeps it reversible), ``.`` in the schema (so the first ``.`` separates the
    two).  Ordinary names (``public.orders``) are unchanged.  Computed once per table, never per key.
    """
    return schema.translate(_SCHEMA_ESCAPES) + "." + table.translate(_TABLE_ESCAPES)


def parse_redis_name(name: str) -> tuple[str, str]:
    """(schema, table) of a :func:`redis_name`: its inverse, so distinct tables never share a name."""
    schema, dot, table = name.partition(".")
    if not dot or "{" in name or "}" in name:
        raise ValueError(f"not a Redis table name: {name!r}")
    return _unescape(schema), _unescape(table)


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], text)


def dropped_name(outbox_key: str) -> str:
    """The :func:`redis_name` named by an ``X`` outbox row (a dropped or renamed table).

    SQL writes the old name as ``jsonb_build_array(schema, table)::text`` and leaves the encoding
    to this module (one encoder).  A row queued by an older version holds ``schema.table`` as it
    was spliced into its keys then: that text is the old tag, and clearing it is what is wanted.
    """
    if outbox_key.startswith("["):
        try:
            schema, table = json.loads(outbox_key)
        except ValueError:
            return outbox_key
        return redis_name(str(schema), str(table))
    return outbox_key


def table_tag(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>:{<name>}`` for a :func:`redis_name`: the table's meta key, and the start of all its keys.

    The default prefix gives ``asymm:{schema.table}:<key>``; two databases syncing into one
    Redis set ``sync.key_prefix`` apart (e.g. ``asymm:<dbname>``), or their tables would collide.
    """
    return prefix + ":{" + name + "}"


def row_key(name: str, key: str, prefix: str = DEFAULT_PREFIX) -> str:
    """A row's key: the tag, ``:``, the key text as is (after the tag, nothing in it is ambiguous)."""
    return table_tag(name, prefix) + ":" + key


def keyset_key(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The set of a table's live row keys: ``#`` after the tag, where no row key (``:``) can be."""
    return table_tag(name, prefix) + "#keys"


def results_key(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The set of the cached query results that read a table: ``#q`` after the tag (see the layout)."""
    return table_tag(name, prefix) + "#q"


def query_key(prefix: str, digest: str) -> str:
    """A cached query result (:meth:`asymm.sync.cache.Cache.query`): no brace, so no table's key."""
    return prefix + ":q:" + digest


def parse_key(key: str) -> tuple[str, str, str, str, str | None]:
    """(prefix, schema, table, kind, row key) of a table's key; kind ``meta``, ``keys``, ``results`` or ``row``.

    The inverse of the functions above (ValueError for anything else, e.g. a :func:`query_key`):
    the prefix holds no brace, the tag no ``}``, and the kinds differ in the first character after
    the tag, so each key decodes one way only.
    """
    opening = key.find(":{")
    closing = key.find("}", opening)
    if opening < 1 or "{" in key[:opening] or closing < 0:
        raise ValueError(f"not a table's Redis key: {key!r}")
    prefix, (schema, table), rest = key[:opening], parse_redis_name(key[opening + 2 : closing]), key[closing + 1 :]
    if rest == "":
        return prefix, schema, table, "meta", None
    if rest == "#keys":
        return prefix, schema, table, "keys", None
    if rest == "#q":
        return prefix, schema, table, "results", None
    if rest.startswith(":"):
        return prefix, schema, table, "row", rest[1:]
    raise ValueError(f"not a table's Redis key: {key!r}")


def pack_command(args: list[Any]) -> bytes:
    """One command in RESP, the wire format: ``*<n>`` then ``$<len>`` CRLF bytes CRLF per argument.

    Why not redis-py's packer: it makes about ten Python calls per argument (type checks, encoder
    lookups), measured as the largest single cost of the sync worker (two arguments per synced
    key, the key name and the row); this is one encode and one format per argument.
    """
    data = [
        arg.encode() if isinstance(arg, str) else arg if isinstance(arg, bytes) else str(arg).encode() for arg in args
    ]
    return b"*%d\r\n" % len(data) + b"".join([b"$%d\r\n%b\r\n" % (len(d), d) for d in data])


class Scripts:
    """The scripts, registered on one client (EVALSHA, loading the script again if Redis lost it)."""

    def __init__(self, client: RedisClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = check_prefix(prefix)
        # A plain client sends the (large) batch writes itself, see _evalsha; a Cluster client
        # routes each call to the node of its hash tag, so it keeps redis-py's path.
        self._raw = isinstance(client, redis.Redis)
        self._conn: Any = None  # the connection _evalsha keeps; the client's close() disconnects it
        self._write = client.register_script(_WRITE)
        self._fill = client.register_script(_FILL)
        self._reset = client.register_script(_RESET)
        self._drop = client.register_script(_DROP)
        self._stamp = client.register_script(_STAMP)
        # The fencing token of the sync leader using these scripts (asymm.sync_state.fence, taken
        # with the sync lock); None for a caller that never took the lock (a test, a tool): its
        # scripts are not fenced.
        self.token: int | None = None

    def _token(self) -> str:
        return "" if self.token is None else str(self.token)

    @staticmethod
    def _checked(reply: Any) -> int:
        value = int(reply)
        if value == DEPOSED:
            raise Deposed(
                "Redis refused a write: another sync worker took the lead (higher fencing token); giving up the lead"
            )
        return value

    def write(
        self, name: str, epoch: str, version: int, ttl_s: int, items: list[tuple[str, str | None]], expect: int = 0
    ) -> int:
        """CAS-write rows (``None`` doc = tombstone) and raise the table's ``applied`` mark to
        ``version``; -1 if the table's epoch is not ``epoch`` or its mark is below ``expect`` (what
        Redis acknowledged before: it lost data since); :class:`Deposed` if our token is too low."""
        tag = table_tag(name, self.prefix)
        if self._raw:
            row_prefix = tag + ":"  # = row_key(name, k, prefix), without a call per key
            args: list[Any] = ["EVALSHA", self._write.sha, len(items) + 2, tag, tag + "#keys"]
            args += [row_prefix + k for k, _ in items]
            args += [epoch, version, ttl_s, self._token(), expect]
            args += [doc if doc is not None else "" for _, doc in items]
            return self._checked(self._evalsha(self._write, args))
        keys = [tag, tag + "#keys"] + [row_key(name, k, self.prefix) for k, _ in items]
        return self._checked(
            self._write(
                keys=keys, args=[epoch, version, ttl_s, self._token(), expect] + [doc or "" for _, doc in items]
            )
        )

    def _evalsha(self, script: Any, args: list[Any]) -> Any:
        """``args`` (``EVALSHA``, the script's sha, ...) packed by :func:`pack_command`, sent on a
        connection taken from the client's pool once and kept (the pool's bookkeeping per call
        costs as much as packing a small batch); a broken one reconnects on the next call."""
        if self._conn is None:
            self._conn = self.client.connection_pool.get_connection()
        conn = self._conn
        try:
            try:
                conn.send_packed_command([pack_command(args)])
                return conn.read_response()
            except redis.exceptions.NoScriptError:  # Redis restarted or SCRIPT FLUSH: load it again
                script.sha = args[1] = self.client.script_load(script.script)
                conn.send_packed_command([pack_command(args)])
                return conn.read_response()
        except BaseException:
            conn.disconnect()  # a reply may still be in flight: start afresh next time
            raise

    def fill(self, name: str, version: int, doc: str | None, key: str, ttl_s: int) -> bool:
        keys = [table_tag(name, self.prefix), keyset_key(name, self.prefix), row_key(name, key, self.prefix)]
        return bool(self._fill(keys=keys, args=[version, doc if doc is not None else "", ttl_s]))

    def reset(self, name: str, epoch: str, floor: int, chunk: int = 1000) -> None:
        """Set the table's epoch and floor, then delete every row key it has (chunk by chunk)."""
        keys = [table_tag(name, self.prefix), keyset_key(name, self.prefix)]
        while self._checked(self._reset(keys=keys, args=[epoch, floor, chunk, self._token()])) > 0:
            pass
        self.purge_results(name, chunk)

    def drop(self, name: str, chunk: int = 1000) -> None:
        """Remove every key of a table that no longer exists: rows, key set and meta key (epoch gone,
        so a late read-through fill finds no epoch and is refused)."""
        keys = [table_tag(name, self.prefix), keyset_key(name, self.prefix)]
        while self._checked(self._drop(keys=keys, args=[chunk, self._token()])) > 0:
            pass
        self.purge_results(name, chunk)

    def purge_results(self, name: str, chunk: int = 1000) -> None:
        """Delete the cached query results recorded as reading table ``name``, and the record.

        Called after a reset or drop has bumped (or removed) the table's generation: a result a
        reader stores after that is under a key no one computes again, and the reader deletes it
        itself (:meth:`asymm.sync.cache.Cache.query` re-reads the generation after storing).  One DEL
        per key: the results live in other Cluster slots.
        """
        record = results_key(name, self.prefix)
        while True:
            popped = self.client.zpopmin(record, chunk)
            if not popped:
                return
            pipe = self.client.pipeline(transaction=False)
            for member, _score in popped:
                pipe.delete(member)
            pipe.execute()

    def stamp(self, names: list[str]) -> None:
        """Write our token into each table's meta hash (:class:`Deposed` if one holds a higher one)."""
        assert self.token is not None
        for name in names:
            self._checked(self._stamp(keys=[table_tag(name, self.prefix)], args=[self.token]))

    def marks(self, names: list[str]) -> list[tuple[str | None, int]]:
        """(epoch, applied mark) of each table, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(table_tag(name, self.prefix), "epoch", "applied")
        out: list[tuple[str | None, int]] = []
        for epoch, applied in pipe.execute():
            out.append((epoch.decode() if isinstance(epoch, bytes) else epoch, int(applied or 0)))
        return out
