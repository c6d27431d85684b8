"""Masking secrets before anything is shown or logged: URLs, DSNs, tokens.

Why one module: every place that prints configuration (``/api/status``, ``--check-config``, logs,
error messages) goes through it, so a new one cannot forget a case (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# A URL in free text: a scheme, ://, then anything up to whitespace or a closing quote/bracket.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`)\]]+")
# password=... in a key=value DSN or a query string (quoted values included).
_PASSWORD_IN_TEXT = re.compile(r"(?i)\b(password|passwd|pwd|token|secret)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&;,'\"]+)")


def mask_url(url: str, *, keep_path: bool = False) -> str:
    """``url`` with userinfo, query and fragment masked, and the path too unless ``keep_path``.

    Webhook services put the secret in the path, so by default only scheme, host and port stay:
    ``https://hooks.example/services/T/B/X?k=v`` -> ``https://hooks.example/***``.  A Redis URL
    (``keep_path=True``) keeps its database number: ``redis://u:pw@h:6379/0`` ->
    ``redis://u:***@h:6379/0``.  Something that does not parse as a URL is masked whole.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not parts.netloc:
        return MASK
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{MASK}@{netloc}"
    elif parts.username:
        netloc = f"{MASK}@{netloc}"  # a lone userinfo is usually a token (https://TOKEN@host/)
    path = parts.path
    if not keep_path and path not in ("", "/"):
        path = "/" + MASK
    return urlunsplit((parts.scheme, netloc, path, MASK if parts.query else "", MASK if parts.fragment else ""))


def mask_dsn(dsn: str) -> str:
    """A libpq connection string with its password masked (URI DSNs keep their URI form)."""
    if "://" in dsn:
        return mask_url(dsn, keep_path=True)
    return _PASSWORD_IN_TEXT.sub(lambda m: m.group(1) + m.group(2) + MASK, dsn)


def _mask_url_match(match: re.Match[str]) -> str:
    url = match.group(0)
    trail = len(url) - len(url.rstrip(".,:;!?"))  # sentence punctuation after a URL is not part of it
    return mask_url(url[: len(url) - trail]) + url[len(url) - trail :]


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text with every URL, every ``password=...`` and every given secret masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _URL_IN_TEXT.sub(_mask_url_match, text)
    return _PASSWORD_IN_TEXT.sub(lambda m: m.group(1) + m.group(2) + MASK, text)


class RedactingFilter(logging.Filter):
    """Masks each record's message (and formatted traceback) before a handler writes it.

    Installed on the handlers of the root logger by ``asymm daemon``, so a log line from any
    module that happens to include a URL or DSN (a connection error, say) is masked as well.
    ``secrets`` is called per record so that a reloaded token is masked too.
    """

    def __init__(self, secrets: Callable[[], Iterable[str]] = tuple) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        # a malformed record is logging's to report, never a crash of the caller
        with contextlib.suppress(Exception):
            self._mask(record)
        return True

    def _mask(self, record: logging.LogRecord) -> None:
        secrets = list(self._secrets())
        message = record.getMessage()
        masked = mask_text(message, secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text, secrets)
