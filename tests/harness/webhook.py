"""A local HTTP receiver standing for a webhook endpoint (used by the notifier's unit tests and the
daemon's alert tests): answers the first POSTs with 503 if asked to, records every body."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class Receiver:
    """Answers the first ``fail`` POSTs with 503, then 200; records every body."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                code = 503 if len(receiver.bodies) <= receiver.fail else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        # a short poll interval: shutdown() waits for it (the default half second, in every teardown)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
