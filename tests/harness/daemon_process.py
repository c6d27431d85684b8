"""A real ``asymm daemon`` process for tests: started on a free HTTP port, asked over HTTP, stopped.

``start_daemon`` is a fixture of this pytest plugin (registered in ``tests/conftest.py``).  The API
needs a bearer token, so the daemon gets :data:`TOKEN` through ``ASYMM_HTTP_TOKEN`` and
:meth:`Running.get` sends it; a test that wants the daemon's own generated token passes
``env={"ASYMM_HTTP_TOKEN": ""}`` (an empty value is no token) and reads it with :meth:`Running.token_from_file`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.product import ASYMM
from tests.harness.waiting import wait_for

TOKEN = "daemon-process-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    def __init__(self, proc: subprocess.Popen[str], port: int, token: str | None) -> None:
        self.proc = proc
        self.port = port
        self.token = token  # sent as the bearer token by get(); None sends none

    def get(self, path: str) -> tuple[int, str]:
        """GET with a generous timeout: a loaded CI machine can take seconds to build a dashboard (no
        test here measures speed)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/api/status")
        assert code == 200, body
        doc: dict[str, Any] = json.loads(body)
        return doc

    def token_from_file(self, directory: Path) -> str:
        """The token the daemon generated and wrote to ``directory`` (its ``http-token-PORT``); get() uses it."""
        self.token = (directory / f"http-token-{self.port}").read_text().strip()
        return self.token

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        return err


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(dsn: str, *args: str, env: dict[str, str] | None = None) -> Running:
        port = free_port()
        full_env = {**os.environ, "ASYMM_HTTP_TOKEN": TOKEN, **(env or {})}
        proc = subprocess.Popen(
            [ASYMM, "daemon", "--dsn", dsn, "--http-port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        running = Running(proc, port, full_env["ASYMM_HTTP_TOKEN"] or None)
        started.append(running)
        assert wait_for(lambda: running.get("/healthz")[0] == 200 or proc.poll() is not None), "no HTTP"
        assert proc.poll() is None, proc.communicate()[1]
        return running

    yield start
    for running in started:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
