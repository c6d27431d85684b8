"""Webhook notifier against a real local HTTP receiver; the systemd unit's hardening; sd_notify."""

from __future__ import annotations

import configparser
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import asymm
from asymm.daemon import sdnotify
from asymm.daemon.notify import WebhookNotifier
from tests.harness.waiting import wait_for
from tests.harness.webhook import Receiver

UNIT = Path(asymm.__file__).parent / "systemd" / "asymm.service"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=2)
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_webhook_is_retried_with_backoff_until_delivered(receiver: Receiver) -> None:
    notifier = WebhookNotifier([receiver.url], retries=3, backoff_base_s=0.01, backoff_cap_s=0.05, daemon_id="d1")
    notifier.start()
    try:
        assert notifier.notify("drift", {"table": "public.orders", "change": "column added"})
        assert wait_for(lambda: notifier.stats.sent == 1)
    finally:
        notifier.stop()
    assert [b["attempt"] for b in receiver.bodies] == [1, 2, 3]
    assert receiver.bodies[-1]["event"] == "drift" and receiver.bodies[-1]["daemon_id"] == "d1"
    assert receiver.bodies[-1]["data"] == {"table": "public.orders", "change": "column added"}
    assert notifier.stats.retries == 2 and notifier.stats.failed == 0


def test_webhook_gives_up_after_the_last_retry_and_the_queue_is_bounded(receiver: Receiver) -> None:
    receiver.fail = 100
    notifier = WebhookNotifier([receiver.url], retries=1, backoff_base_s=0.01, backoff_cap_s=0.01, max_queue=2)
    assert notifier.deliver(receiver.url, "sync_lag", {"lag_s": 12.5}) is False
    assert len(receiver.bodies) == 2 and notifier.stats.failed == 1
    # Not started: the queue fills and the third event is dropped, not blocking the caller.
    assert notifier.notify("slow_query", {"queryid": 1}) and notifier.notify("slow_query", {"queryid": 2})
    assert notifier.notify("slow_query", {"queryid": 3}) is False
    assert notifier.stats.dropped == 1
    with pytest.raises(ValueError, match="unknown notification event"):
        notifier.notify("gossip", {})


def test_unreachable_webhook_counts_as_failed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = WebhookNotifier([f"http://127.0.0.1:{port}/"], retries=1, backoff_base_s=0.01, timeout_s=1)
    assert notifier.deliver(f"http://127.0.0.1:{port}/", "test", {}) is False
    assert notifier.stats.failed == 1 and notifier.stats.retries == 1


def test_sd_notify_speaks_the_datagram_protocol(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(1)
        sd = sdnotify.Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
        sd.ready("leader")
        assert listener.recv(1024).decode().startswith("READY=1\nSTATUS=leader\nMAINPID=")
        sd.watchdog(now=100.0)
        sd.watchdog(now=100.1)  # within half the interval: not repeated
        sd.watchdog(now=100.6)
        sd.stopping()
        assert [listener.recv(1024).decode() for _ in range(3)] == ["WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
        sd.close()
    assert not sdnotify.Notifier({}).enabled
    assert sdnotify.Notifier({"NOTIFY_SOCKET": "@abstract"}).address == "\0abstract"
    assert sdnotify.Notifier({"WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"}).watchdog_s is None  # not for us


def test_systemd_unit_is_notify_type_with_watchdog_and_hardening() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    assert service["Type"] == "notify"
    assert service["WatchdogSec"] and service["ExecReload"].endswith("-HUP $MAINPID")
    assert "asymm daemon" in service["ExecStart"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "KillSignal": "SIGTERM",
    }.items():
        assert service[key] == value, key
    assert parser["Install"]["WantedBy"] == "multi-user.target"
