"""The pure parts of the HTTP security rules: masking secrets, the Host allow-list (the rules as a
real daemon serves them are in tests/integration/test_http_security.py)."""

from __future__ import annotations

import io
import logging

import pytest

from asymm.daemon.http import host_allowed, split_host
from asymm.redact import RedactingFilter, mask_dsn, mask_text, mask_url

TOKEN = "t0ken-for-the-http-test-0123456789"


@pytest.mark.parametrize(
    "url, masked",
    [
        ("https://hooks.example/services/T0/B0/XXXX", "https://hooks.example/***"),
        ("https://user:pw@hooks.example:8443/x?k=v#f", "https://user:***@hooks.example:8443/***?***#***"),
        ("https://TOKEN@hooks.example/", "https://***@hooks.example/"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("not a url", "***"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_dsn_redis_and_free_text() -> None:
    assert mask_dsn("host=h password=s3cret dbname=d") == "host=h password=*** dbname=d"
    assert mask_dsn("host=h password='s 3cret' dbname=d") == "host=h password=*** dbname=d"
    assert mask_dsn("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("redis://:s3cret@r:6379/0", keep_path=True) == "redis://:***@r:6379/0"
    text = mask_text("webhook https://h.example/T/B/X: refused; dsn password=pw1 token " + TOKEN, [TOKEN])
    assert text == "webhook https://h.example/***: refused; dsn password=*** token ***"


def test_the_log_filter_masks_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(lambda: [TOKEN]))
    logger = logging.getLogger("asymm.test.redact")
    logger.addHandler(handler)
    try:
        logger.error("cannot reach %s with %s", "redis://:redispw123@r:6379/0", TOKEN)
        try:
            raise OSError("refused: https://hooks.example/T0SECRETPATH")
        except OSError:
            logger.exception("delivery failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "redis://:***@r:6379/***" in out and "https://hooks.example/***" in out, out
    assert "redispw123" not in out and TOKEN not in out and "T0SECRETPATH" not in out, out


@pytest.mark.parametrize(
    "host, ok",
    [
        ("localhost", True),
        ("localhost:9849", True),
        ("LOCALHOST:9849", True),
        ("127.0.0.1:9849", True),
        ("[::1]:9849", True),
        ("[::1]", True),
        ("localhost:9850", False),
        ("evil.example", False),
        ("evil.example:9849", False),
        ("localhost.evil.example:9849", False),
        ("127.0.0.1.nip.io", False),
        ("localhost.", False),
        ("", False),
        ("localhost:9849:1", False),
        ("::1", False),
        ("user@localhost", False),
    ],
)
def test_host_allowed_defaults(host: str, ok: bool) -> None:
    assert host_allowed(host, ["localhost", "127.0.0.1", "[::1]"], ("0.0.0.0", 9849)) is ok


def test_host_allowed_entries_with_ports_and_the_bound_address() -> None:
    assert host_allowed("dash.example:443", ["dash.example:443"], ("0.0.0.0", 9849))
    assert not host_allowed("dash.example:9849", ["dash.example:443"], ("0.0.0.0", 9849))
    assert host_allowed("10.1.2.3:9849", [], ("10.1.2.3", 9849))  # the specific bound address
    assert not host_allowed("0.0.0.0:9849", [], ("0.0.0.0", 9849))
    assert split_host("[::1]:80") == ("[::1]", 80) and split_host("a:b") is None
