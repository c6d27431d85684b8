"""The daemon's HTTP side: ``/metrics``, ``/healthz``, ``/readyz`` and a JSON API, stdlib only.

Why a thread and the standard library: the endpoints are tiny and scraped a few times a minute; a
framework would cost more than it saves.  It listens on 127.0.0.1 by default and defends against a
web page in the operator's browser and other local users: Host/Origin checks, a bearer token for
``/api``, strict response headers, masked errors.  Handlers open their own connection.

Details (every endpoint and security rule): docs/daemon.md, "The HTTP side".
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import mimetypes
import socket
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from asymm.daemon import config as config_mod
from asymm.daemon import metrics
from asymm.daemon.config import DaemonConfig
from asymm.daemon.feature import ApiError, Params, Route, TaskContext
from asymm.redact import mask_text

log = logging.getLogger("asymm.daemon.http")
STATIC_DIR = Path(__file__).resolve().parent / "static"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}
OPEN_PATHS = ("/healthz", "/readyz")  # no token needed: liveness/readiness probes

__all__ = ["ApiError", "HttpServer", "api_status"]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class Served(metrics.Measured, Protocol):
    """What the HTTP server reads of the daemon (a protocol: the service imports this module)."""

    config: DaemonConfig

    @property
    def routes(self) -> Mapping[str, Route]: ...

    def liveness(self) -> tuple[bool, str]: ...

    def readiness(self) -> tuple[bool, str]: ...

    def call_route(self, name: str, params: Params) -> Any: ...


def api_status(ctx: TaskContext, _params: Params) -> dict[str, Any]:
    """``/api/status``: the daemon's status, with secrets masked out of task errors."""
    status = ctx.status()
    secrets = config_mod.secrets(ctx.config)
    for task in status.get("tasks", []):
        if task.get("last_error"):
            task["last_error"] = mask_text(str(task["last_error"]), secrets)
    return status


def split_host(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` (``[v6]`` allowed) as (lower-case host, port or None); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        host, sep, rest = value.partition("]")
        if not sep:
            return None
        host += "]"
    elif value.count(":") > 1:
        return None  # an IPv6 address must be bracketed
    else:
        host, colon, rest = value.partition(":")
        rest = colon + rest
    if not host or host == "[]" or not all(c.isalnum() or c in ".-_:[]" for c in host):
        return None
    if not rest:
        return host, None
    if not rest.startswith(":") or not rest[1:].isdigit() or not 0 < int(rest[1:]) < 65536:
        return None
    return host, int(rest[1:])


def host_allowed(value: str | None, allowed: list[str], bound: tuple[str, int]) -> bool:
    """Whether a ``Host`` (or an Origin's host) names this server: an entry of ``allowed`` (with its
    own port, or without one: then no port or the bound port), or the bound address if specific."""
    if not value:
        return False
    given = split_host(value)
    if given is None:
        return False
    host, port = given
    bound_host, bound_port = bound
    entries = [split_host(a) for a in allowed]
    if bound_host not in ("", "0.0.0.0", "::"):
        entries.append(split_host(f"[{bound_host}]" if ":" in bound_host else bound_host))
    for entry in entries:
        if entry is None or entry[0] != host:
            continue
        if entry[1] is None and port in (None, bound_port):
            return True
        if entry[1] is not None and entry[1] == port:
            return True
    return False


def origin_host(origin: str) -> str | None:
    """The ``host[:port]`` of an ``Origin`` header (None for ``null`` or anything not http(s))."""
    scheme, sep, rest = origin.strip().partition("://")
    if not sep or scheme.lower() not in ("http", "https") or "/" in rest:
        return None
    return rest


class _Handler(BaseHTTPRequestHandler):
    server_version = "asymm"
    daemon: Served  # set on the subclass made per server
    bound: tuple[str, int] = ("127.0.0.1", 0)  # the listening address, likewise

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def end_headers(self) -> None:
        """Every answer, errors included (``send_error``), carries the defensive headers."""
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def _text(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, body + "\n", "text/plain; charset=utf-8", headers)

    def _refused(self, path: str) -> bool:
        """Answer 403/401 (and return True) unless this request may see ``path``.

        Order: Host (every path), Origin (every path), then for data paths (/api, /metrics) the
        browser's Sec-Fetch-Site and the bearer token.
        """
        config = self.daemon.config
        bound = self.bound
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or not host_allowed(hosts[0], config.http_allowed_hosts, bound):
            log.info(
                "http: refused a request for %s with Host %r (not in http_allowed_hosts)",
                path,
                hosts[0] if hosts else None,
            )
            self._text(403, "forbidden: Host header not allowed (see http.allowed_hosts)")
            return True
        origin = self.headers.get("Origin")
        if origin is not None and not host_allowed(origin_host(origin), config.http_allowed_hosts, bound):
            log.info("http: refused a cross-origin request for %s from Origin %r", path, origin)
            self._text(403, "forbidden: cross-origin request")
            return True
        if path in OPEN_PATHS or not (path == "/metrics" or path == "/api" or path.startswith("/api/")):
            return False
        if self.headers.get("Sec-Fetch-Site", "same-origin").lower() not in ("same-origin", "none"):
            self._text(403, "forbidden: cross-site request")
            return True
        loopback = config_mod.is_loopback(bound[0])
        if loopback and (path == "/metrics" or config.http_auth == "none"):
            return False  # /metrics: counters only (docs/daemon.md, "Security"); none: the operator's choice
        token = config.http_token
        given = self.headers.get("Authorization", "")
        scheme, _, credential = given.partition(" ")
        if (
            not token
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(credential.strip().encode(), token.encode())
        ):
            self._text(
                401,
                "unauthorized: send Authorization: Bearer <http token>"
                + ("" if token else " (no token is available, so the API is closed)"),
                {"WWW-Authenticate": 'Bearer realm="asymm"'},
            )
            return True
        return False

    def _method_not_allowed(self) -> None:
        path = urlsplit(self.path).path
        if not self._refused(path):
            self._text(405, "method not allowed: this server only answers GET and HEAD", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def _send(self, status: int, body: str | bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status: int, data: Any) -> None:
        self._send(
            status, json.dumps(_json_safe(data), indent=1, sort_keys=True, default=str) + "\n", "application/json"
        )

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
        if self._refused(path):
            return
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
                self._json(200, {"endpoints": sorted(f"/api/{name}" for name in self.daemon.routes)})
            elif path.startswith("/api/") and path[5:] in self.daemon.routes:
                params = parse_qs(parts.query)
                self._json(200, self.daemon.call_route(path[5:], params))
            elif path == "/" and (STATIC_DIR / "index.html").is_file():
                self._static("index.html")
            elif path == "/":
                self._json(200, {"endpoints": ["/metrics", "/healthz", "/readyz", "/api"]})
            elif path.startswith("/static/"):
                self._static(path[len("/static/") :])
            else:
                self._json(404, {"error": f"no such endpoint: {path}"})
        except ApiError as exc:
            self._json(exc.status, {"error": mask_text(str(exc), config_mod.secrets(self.daemon.config))})
        except Exception as exc:  # one endpoint's bug must not take the server down
            log.exception("http: %s failed", path)
            message = f"{type(exc).__name__}: {exc}"
            self._json(500, {"error": mask_text(message, config_mod.secrets(self.daemon.config))})


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class HttpServer:
    def __init__(self, daemon: Served, host: str, port: int) -> None:
        handler: type[_Handler] = type("AsymmHandler", (_Handler,), {"daemon": daemon})
        server_class = _Server6 if ":" in host else ThreadingHTTPServer
        self.server = server_class((host.strip("[]"), port), handler)
        self.server.daemon_threads = True
        handler.bound = self.address
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.5}, name="asymm-http", daemon=True
        )

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
