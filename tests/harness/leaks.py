"""Looking for a secret in Redis: every key name and every value, as an attacker with Redis access would."""

from __future__ import annotations

import redis


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def redis_values(client: redis.Redis) -> list[bytes]:
    """Every key name and every value (strings, hashes, sets) in Redis, to look for a secret in."""
    out: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        out.append(_bytes(key))
        if kind == b"string":
            out.append(_bytes(client.get(key) or b""))
        elif kind == b"hash":
            pairs: dict[object, object] = client.hgetall(key)  # type: ignore[assignment]
            out += [_bytes(v) for pair in pairs.items() for v in pair]
        elif kind == b"set":
            members: set[object] = client.smembers(key)  # type: ignore[assignment]
            out += [_bytes(m) for m in members]
    return out


def leaks(client: redis.Redis, secrets: list[str]) -> list[str]:
    """The secrets that appear anywhere in Redis."""
    values = redis_values(client)
    return [s for s in secrets if any(s.encode() in v for v in values)]
