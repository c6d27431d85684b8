"""The demo's log: while it runs, every log record goes to one file instead of the terminal.

Why: the daemon runs in threads of the demo's process, so its log lines (on stderr) would land
between the numbered progress lines at random.  The file is named at the end of the report, with
how many warnings it holds; without a file (no sandbox directory) the records stay on stderr.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

LOG_NAME = "demo.log"
FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"


class _Counter(logging.Handler):
    """Counts the WARNING-or-worse records, so the report can say whether the log deserves a look."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


class DemoLog:
    """Where the demo's log records went (``path`` None: stderr, as usual) and how many were warnings."""

    def __init__(self, path: Path | None, counter: _Counter) -> None:
        self.path = path
        self._counter = counter

    @property
    def warnings(self) -> int:
        return self._counter.count

    def describe(self) -> str:
        where = str(self.path) if self.path else "stderr"
        count = self.warnings
        return f"{where} ({count} warning{'' if count == 1 else 's'})"


def default_path() -> Path | None:
    """``$ASYMM_SANDBOX_DIR/demo.log``: the sandbox directory is private (0700, checked), gone with ``down``."""
    root = os.environ.get("ASYMM_SANDBOX_DIR")
    return Path(root) / LOG_NAME if root else None


@contextmanager
def routed_to(path: Path | None) -> Iterator[DemoLog]:
    """Send the root logger's records to ``path`` (0600, truncated, never through a link) until exit.

    The root logger's own handlers (stderr) are set aside meanwhile and restored after; the level
    is at most INFO so that the file also says when the daemon started and stopped.
    """
    root = logging.getLogger()
    counter = _Counter()
    saved_handlers, saved_level = list(root.handlers), root.level
    file_handler: logging.StreamHandler[TextIO] | None = None
    if path is not None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        file_handler = logging.StreamHandler(os.fdopen(fd, "w", encoding="utf-8"))
        file_handler.setFormatter(logging.Formatter(FORMAT))
        for handler in saved_handlers:
            root.removeHandler(handler)
        root.addHandler(file_handler)
        root.setLevel(min(saved_level or logging.WARNING, logging.INFO))
    root.addHandler(counter)
    try:
        yield DemoLog(path, counter)
    finally:
        root.removeHandler(counter)
        if file_handler is not None:
            root.removeHandler(file_handler)
            file_handler.close()
            file_handler.stream.close()
            for handler in saved_handlers:
                root.addHandler(handler)
            root.setLevel(saved_level)
