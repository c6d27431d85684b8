"""The daemon's HTTP side: ``/metrics``, ``/healthz``, ``/readyz`` and a JSON API, stdlib only.

Why a thread and the standard library: the endpoints are tiny and scraped a few times a minute;
a framework would cost more start-up time and memory than it saves.  It listens on 127.0.0.1 by
default (metrics and reports describe the database: not something to expose by accident).

* ``/healthz`` — liveness: 200 while the pulse loop completed a tick recently (3 periods + 5 s).
* ``/readyz`` — readiness: 200 when PostgreSQL and the lock session are connected (as leader or
  standby) and Redis answers (if configured); 503 otherwise, with the reason in the body.
* ``/`` is the web dashboard (``static/index.html``) and ``/static/...`` its files (the page's
  own code is committed; ``static/vendor/`` is filled from npm by ``make dashboard``).
* ``/api`` lists the JSON endpoints; ``/api/status`` is built in.  Other areas add theirs with
  :func:`register_api`; a handler gets the daemon and the query parameters and returns JSON-able
  data.  Handlers run on the HTTP thread: they must not use ``daemon.conn`` (it belongs to the
  pulse thread) but open their own short connection (``asymm.db.connect(daemon.config.dsn)``).
"""

from __future__ import annotations

import json
import logging
import math
import mimetypes
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from asymm.daemon import metrics

if TYPE_CHECKING:
    from asymm.daemon.service import Daemon

log = logging.getLogger("asymm.daemon.http")
STATIC_DIR = Path(__file__).resolve().parent / "static"

ApiHandler = Callable[["Daemon", dict[str, list[str]]], Any]
API_ENDPOINTS: dict[str, ApiHandler] = {}


class ApiError(Exception):
    """Raise from a handler to answer with this status and message (e.g. 400 for a bad parameter)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def register_api(name: str) -> Callable[[ApiHandler], ApiHandler]:
    """Decorator: serve ``handler(daemon, params)`` as ``GET /api/<name>`` (JSON)."""
    if not name or not all(c.isalnum() or c in "-_/" for c in name):
        raise ValueError(f"invalid API endpoint name {name!r}")

    def decorate(handler: ApiHandler) -> ApiHandler:
        API_ENDPOINTS[name] = handler
        return handler

    return decorate


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@register_api("status")
def api_status(daemon: Daemon, _params: dict[str, list[str]]) -> dict[str, Any]:
    return daemon.status()


class _Handler(BaseHTTPRequestHandler):
    server_version = "asymm"
    daemon: Daemon  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def _send(self, status: int, body: str | bytes, content_type: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(_json_safe(data), indent=1, sort_keys=True, default=str) + "\n",
                   "application/json")

    def _static(self, relative: str) -> None:
        """A file under STATIC_DIR; anything resolving outside it (``..``, links) is a 404."""
        target = (STATIC_DIR / relative).resolve()
        if not target.is_relative_to(STATIC_DIR) or not target.is_file():
            self._json(404, {"error": f"no such file: /static/{relative}"})
            return
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix in (".js", ".mjs"):
            content_type = "text/javascript"
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        self._send(200, target.read_bytes(), content_type)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        try:
            if path == "/metrics":
                self._send(200, metrics.render(self.daemon), metrics.CONTENT_TYPE)
            elif path == "/healthz":
                alive, reason = self.daemon.liveness()
                self._send(200 if alive else 503, reason + "\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                ready, reason = self.daemon.readiness()
                self._send(200 if ready else 503, reason + "\n", "text/plain; charset=utf-8")
            elif path == "/api":
                self._json(200, {"endpoints": sorted(f"/api/{name}" for name in API_ENDPOINTS)})
            elif path.startswith("/api/") and path[5:] in API_ENDPOINTS:
                params = parse_qs(parts.query)
                self._json(200, API_ENDPOINTS[path[5:]](self.daemon, params))
            elif path == "/" and (STATIC_DIR / "index.html").is_file():
                self._static("index.html")
            elif path == "/":
                self._json(200, {"endpoints": ["/metrics", "/healthz", "/readyz", "/api"]})
            elif path.startswith("/static/"):
                self._static(path[len("/static/"):])
            else:
                self._json(404, {"error": f"no such endpoint: {path}"})
        except ApiError as exc:
            self._json(exc.status, {"error": str(exc)})
        except Exception as exc:  # one endpoint's bug must not take the server down
            log.exception("http: %s failed", path)
            self._json(500, {"error": f"{type(exc).__name__}: {exc}"})


class HttpServer:
    def __init__(self, daemon: Daemon, host: str, port: int) -> None:
        handler = type("AsymmHandler", (_Handler,), {"daemon": daemon})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.5},
                                       name="asymm-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        started = time.monotonic()
        self.server.shutdown()
        self.server.server_close()
        log.debug("http server stopped in %.3f s", time.monotonic() - started)
