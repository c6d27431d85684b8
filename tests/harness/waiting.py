"""Polling for a condition in tests that drive real servers and processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.02) -> Any:
    """The first truthy value of ``predicate()`` within ``timeout`` seconds, else None.

    Connection errors count as "not yet": the servers in these tests are restarted on purpose.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, ValueError, psycopg.Error):
            value = None
        if value:
            return value
        time.sleep(every)
    return None
