"""A real ``asymm daemon`` process for tests: started on a free HTTP port, asked over HTTP, stopped.

``start_daemon`` is registered as a fixture in ``conftest.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_for

ASYMM = str(Path(sys.executable).with_name("asymm"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])




class Running:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/api/status")
        assert code == 200, body
        doc: dict[str, Any] = json.loads(body)
        return doc

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
        proc = subprocess.Popen([ASYMM, "daemon", "--dsn", dsn, "--http-port", str(port), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})
        running = Running(proc, port)
        started.append(running)
        assert wait_for(lambda: running.get("/healthz")[0] == 200 or proc.poll() is not None), "no HTTP"
        assert proc.poll() is None, proc.communicate()[1]
        return running

    yield start
    for running in started:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
