"""Polling for a condition in tests that drive real servers and processes: the one ``wait_for``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, every: float = 0.02) -> Any:
    """The first truthy value of ``predicate()`` within ``timeout`` seconds, else None.

    Connection errors count as "not yet": the servers in these tests are restarted on purpose.
    Waiting on the condition itself (a counter, a row, a key) instead of sleeping a fixed time keeps a
    test as fast as the machine allows and as patient as a loaded one needs.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (OSError, ValueError, psycopg.Error, redis.RedisError):
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(every)
