"""Connecting to Redis (plain or Cluster): to Redis what :mod:`asymm.db` is to PostgreSQL.

Why a module of its own, below every feature: the daemon pings Redis for its readiness and the
sync and dashboard features talk to it, and none of them should import another to get a client.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import redis
from redis.cluster import RedisCluster

RedisClient = Any  # redis.Redis or redis.cluster.RedisCluster: the same command API


def connect_redis(url: str, *, timeout: float = 2.0) -> RedisClient:
    """A client for ``url``; a Redis Cluster node (or ``?cluster=1``) gives a cluster client."""
    query = parse_qs(urlparse(url).query)
    plain_url = url.split("?", 1)[0]
    if query.get("cluster", ["0"])[0] in ("1", "true", "yes"):
        return RedisCluster.from_url(plain_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    client = redis.Redis.from_url(
        plain_url, socket_timeout=timeout, socket_connect_timeout=timeout, client_name="asymm"
    )
    try:
        enabled = client.info("cluster").get("cluster_enabled") == 1
    except redis.RedisError:
        enabled = False  # unreachable now: a plain client still lets the caller retry later
    if enabled:
        client.close()
        return RedisCluster.from_url(plain_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return client
