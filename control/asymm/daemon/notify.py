"""Webhook notifications: POST a JSON document to configured URLs, with retries, off the pulse loop.

Delivery must never slow a tick, so ``notify`` only queues the event (bounded: when full, the event
is dropped and counted) and a background thread POSTs it with backoff.  A webhook URL usually is
its own secret, so it is only ever logged masked (:func:`asymm.redact.mask_url`).

Details (the body): docs/daemon.md, "Webhook notifications".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import queue
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asymm import __version__
from asymm.daemon.backoff import jittered_delay
from asymm.redact import mask_text, mask_url

log = logging.getLogger("asymm.daemon.notify")

EVENTS = ("drift", "slow_query", "sync_lag", "leader", "test")


@dataclass
class NotifyStats:
    queued: int = 0
    sent: int = 0
    failed: int = 0  # gave up after the last retry
    dropped: int = 0  # queue full
    retries: int = 0
    by_event: dict[str, int] = field(default_factory=dict)


class WebhookNotifier:
    def __init__(
        self,
        urls: list[str],
        *,
        retries: int = 5,
        timeout_s: float = 5.0,
        max_queue: int = 1000,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        daemon_id: str = "",
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self.urls = list(urls)
        self.retries = retries
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.daemon_id = daemon_id
        self.stats = NotifyStats()
        self._queue: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, name="asymm-notify", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after the delivery in progress; undelivered events are logged, not kept."""
        self._stop.set()
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            self._thread.join(timeout)
            self._thread = None

    def notify(self, event: str, data: dict[str, Any]) -> bool:
        """Queue ``event`` for every configured URL; False (and counted) if the queue is full."""
        if event not in EVENTS:
            raise ValueError(f"unknown notification event {event!r}; one of {', '.join(EVENTS)}")
        if not self.urls:
            return False
        for url in self.urls:
            try:
                self._queue.put_nowait((url, event, data))
            except queue.Full:
                self.stats.dropped += 1
                log.warning("notification queue full; dropped a %s event", event)
                return False
            self.stats.queued += 1
        self.stats.by_event[event] = self.stats.by_event.get(event, 0) + 1
        return True

    def pending(self) -> int:
        return self._queue.qsize()

    def _worker(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            self.deliver(*item)

    def deliver(self, url: str, event: str, data: dict[str, Any]) -> bool:
        """POST one event with retries (runs on the worker thread; public for tests)."""
        for attempt in range(1, self.retries + 2):
            body = json.dumps(
                {
                    "event": event,
                    "source": "asymm",
                    "version": __version__,
                    "daemon_id": self.daemon_id,
                    "host": socket.gethostname(),
                    "time": dt.datetime.now(dt.UTC).isoformat(),
                    "attempt": attempt,
                    "data": data,
                },
                default=str,
            ).encode()
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": f"asymm/{__version__}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                self.stats.sent += 1
                return True
            except urllib.error.HTTPError as exc:
                retryable = exc.code == 429 or exc.code >= 500
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                retryable = True
                reason = str(getattr(exc, "reason", exc))
            except ValueError as exc:  # http.client.InvalidURL & co: the message quotes URL parts
                retryable = False
                reason = f"invalid URL ({type(exc).__name__})"
            shown, reason = mask_url(url), mask_text(reason.replace(url, mask_url(url)))
            if not retryable or attempt > self.retries:
                self.stats.failed += 1
                log.error("webhook %s: giving up on a %s event after %d attempt(s): %s", shown, event, attempt, reason)
                return False
            self.stats.retries += 1
            delay = jittered_delay(attempt, self.backoff_base_s, self.backoff_cap_s)
            log.warning("webhook %s: %s; retry %d in %.2f s", shown, reason, attempt, delay)
            if self._sleep(delay):
                self.stats.failed += 1
                return False
        return False
