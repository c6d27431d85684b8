"""The daemon's HTTP server against an untrusted web page and the network (issue 15, defect 4).

A real ``asymm daemon`` (``tests/harness/daemon_process.py``) asked over real HTTP with ``http.client``,
so that Host, Origin and Authorization can be forged; only ever connecting to 127.0.0.1, even
when the daemon binds 0.0.0.0.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from asymm.daemon.http import STATIC_DIR
from tests.harness.browser import Browser, chromium_path
from tests.harness.daemon_process import TOKEN as DAEMON_TOKEN
from tests.harness.daemon_process import Running, free_port
from tests.harness.waiting import wait_for

ASYMM = str(Path(sys.executable).with_name("asymm"))
TOKEN = "t0ken-for-the-http-test-0123456789"
AUTH = {"Authorization": f"Bearer {DAEMON_TOKEN}"}  # the token start_daemon gives the daemon

# A webhook URL with a secret in each place services put one: userinfo, path, query string.
HOOK_SECRETS = ("hunter2pw", "T0SECRETPATH", "qwertyquerysecret")


def secret_hook_url(port: int) -> str:
    return f"http://hookuser:hunter2pw@127.0.0.1:{port}/services/T0SECRETPATH/B0?token=qwertyquerysecret"


def request(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET", host: str | None = "default"
) -> tuple[int, dict[str, str], str]:
    """One request to 127.0.0.1:port; ``host`` forges the Host header (None sends none at all)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=host != "default", skip_accept_encoding=True)
        if host not in ("default", None):
            conn.putheader("Host", str(host))
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


def check_config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ASYMM, "daemon", *args, "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


# -- pure helpers ---------------------------------------------------------------------------------


# -- a live daemon --------------------------------------------------------------------------------

DATA_PATHS = ("/api/graph", "/api/dashboard", "/api/status", "/api", "/metrics")


def test_a_forged_host_is_refused_on_every_path(db: str, start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Running = start_daemon(db)
    port = daemon.port
    for path in (*DATA_PATHS, "/", "/static/app.js", "/healthz", "/readyz", "/nope"):
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.nip.io:{port}", f"localhost:{port + 1}", None):
            status, headers, body = request(port, path, host=host)
            assert status == 403, (path, host, status, body)
            assert len(body) < 100 and "nodes" not in body and "asymm_" not in body, body
            assert headers["x-content-type-options"] == "nosniff"
    for host in (f"localhost:{port}", "localhost", f"127.0.0.1:{port}", f"[::1]:{port}"):
        status, _headers, body = request(port, "/api/status", AUTH, host=host)
        assert status == 200 and json.loads(body)["daemon_id"], (host, body)


def test_defensive_headers_no_cors_no_cross_origin_and_only_get(db: str, start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Running = start_daemon(db)
    port = daemon.port
    status, headers, body = request(port, "/")
    assert status == 200 and "<html" in body
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "default-src 'none'" in csp
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    for path in DATA_PATHS:
        for origin in ("http://evil.example", f"http://evil.example:{port}", "null", f"http://localhost:{port + 1}"):
            status, headers, _body = request(port, path, {"Origin": origin})
            assert status == 403, (path, origin)
            assert not any(name.startswith("access-control-") for name in headers)
        status, _headers, _body = request(port, path, {"Sec-Fetch-Site": "cross-site"})
        assert status == 403, path
        status, headers, _body = request(
            port, path, {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin", **AUTH}
        )
        assert status == 200 and not any(name.startswith("access-control-") for name in headers), path
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _body = request(
            port,
            "/api/status",
            {"Origin": f"http://localhost:{port}", "Access-Control-Request-Method": "GET", **AUTH},
            method=method,
        )
        assert status == 405 and headers["allow"] == "GET, HEAD", method
        assert not any(name.startswith("access-control-") for name in headers)
    assert request(port, "/api/status", method="TRACE")[0] == 501
    assert request(port, "/api/status", AUTH, method="HEAD")[0] == 200
    assert request(port, "/api/status", method="HEAD")[0] == 401


def test_allowed_hosts_setting(db: str, start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Running = start_daemon(db, env={"ASYMM_HTTP_ALLOWED_HOSTS": "asymm.internal, dash.example:8443"})
    port = daemon.port
    assert request(port, "/api/status", AUTH, host=f"asymm.internal:{port}")[0] == 200
    assert request(port, "/api/status", AUTH, host="dash.example:8443")[0] == 200
    assert request(port, "/api/status", AUTH, host="dash.example")[0] == 403
    assert request(port, "/api/status", AUTH, host=f"localhost:{port}")[0] == 403  # the list replaces the defaults
    assert request(port, "/api/status", AUTH, host=f"127.0.0.1:{port}")[0] == 200  # the bound address itself


def test_webhook_secrets_are_masked_in_status_and_logs(db: str, start_daemon) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT asymm.set_setting('drift.reconcile_every', '0.2 s')")
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, note text)")
        conn.execute("SELECT asymm.baseline('prod')")
    hook_port = free_port()
    hook = secret_hook_url(hook_port)  # nothing listens there: every delivery fails
    daemon: Running = start_daemon(db, "--period", "0.05", env={"ASYMM_NOTIFY_URLS": hook, "ASYMM_NOTIFY_RETRIES": "1"})
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("ALTER TABLE accounts DROP COLUMN note")  # drift: a notification to deliver
    assert wait_for(lambda: daemon.status()["notifications"]["failed"] >= 1, timeout=30), daemon.status()
    code, body = daemon.get("/api/status")
    assert code == 200
    assert not any(secret in body for secret in HOOK_SECRETS), body
    assert json.loads(body)["config"]["notify_urls"] == [f"http://hookuser:***@127.0.0.1:{hook_port}/***?***"]
    err = daemon.stop()
    assert "webhook http://hookuser:***@127.0.0.1:" in err and "giving up" in err, err
    assert not any(secret in err for secret in HOOK_SECRETS), err


def test_check_config_masks_every_secret(tmp_path: Path) -> None:
    path = tmp_path / "asymm.toml"
    path.write_text(f'redis_url = "redis://:redispw123@127.0.0.1:6379/0"\n[notify]\nurls = ["{secret_hook_url(9)}"]\n')
    env = {"ASYMM_DSN": "host=h password=dsnpw123 dbname=d", "ASYMM_HTTP_TOKEN": TOKEN}
    secrets = (*HOOK_SECRETS, "redispw123", "dsnpw123", TOKEN)
    as_json = check_config("--config", str(path), "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert not any(secret in as_json.stdout for secret in secrets), as_json.stdout
    config = json.loads(as_json.stdout)["config"]
    assert config["notify_urls"] == ["http://hookuser:***@127.0.0.1:9/***?***"]
    assert config["redis_url"] == "redis://:***@127.0.0.1:6379/0"
    assert config["dsn"] == "host=h password=*** dbname=d" and config["http_token"] == "***"
    text = check_config("--config", str(path), env=env)
    assert text.returncode == 0 and "http://hookuser:***@127.0.0.1:9/***" in text.stdout, text.stdout
    assert not any(secret in text.stdout + text.stderr for secret in secrets), text.stdout
    # errors do not quote secrets either
    bad_url = check_config(env={"ASYMM_NOTIFY_URLS": "ftp://u:hunter2pw@h/T0SECRETPATH"})
    assert bad_url.returncode == 2 and "notify URL" in bad_url.stderr
    assert not any(secret in bad_url.stderr for secret in HOOK_SECRETS), bad_url.stderr
    bad_token = check_config(env={"ASYMM_HTTP_TOKEN": "shortpw"})
    assert bad_token.returncode == 2 and "http_token" in bad_token.stderr and "shortpw" not in bad_token.stderr


def test_a_non_loopback_bind_needs_allow_remote_and_a_token(db: str, start_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    refused = check_config("--http-host", "0.0.0.0")
    assert refused.returncode == 2 and "allow_remote" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    no_token = check_config("--http-host", "0.0.0.0", "--http-allow-remote")
    assert no_token.returncode == 2 and "token" in no_token.stderr and "Traceback" not in no_token.stderr
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    remote = ("--http-host", "0.0.0.0", "--http-allow-remote", "--http-token-file", str(token_file))
    ok = check_config(*remote)
    assert ok.returncode == 0 and "warning" in ok.stderr and TOKEN not in ok.stdout + ok.stderr, ok.stderr
    daemon: Running = start_daemon(db, *remote)
    port = daemon.port
    for path in ("/api/status", "/api/graph", "/metrics"):
        assert request(port, path)[0] == 401, path
        assert request(port, path, {"Authorization": "Bearer wrong-token-0123456789abcdef"})[0] == 401, path
        assert request(port, path, {"Authorization": TOKEN})[0] == 401, path  # no scheme
        status, _headers, body = request(port, path, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200, (path, body)
    assert request(port, "/healthz")[0] == 200 and request(port, "/")[0] == 200  # probes and the page shell
    assert request(port, "/api/status", {"Authorization": f"Bearer {TOKEN}"}, host="evil.example")[0] == 403
    err = daemon.stop()
    assert "reachable from other hosts" in err and TOKEN not in err, err


def test_a_configured_token_on_loopback_is_enforced(db: str, start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Running = start_daemon(db, env={"ASYMM_HTTP_TOKEN": TOKEN})
    assert request(daemon.port, "/api/status")[0] == 401
    status, _headers, body = request(daemon.port, "/api/status", {"Authorization": f"bearer {TOKEN}"})
    assert status == 200 and TOKEN not in body


# -- the API needs a token by default, on loopback too (red-team finding, issue 15) ----------------


def generated_token_env(tmp_path: Path) -> dict[str, str]:
    """The default configuration (no token) in a login session: $XDG_RUNTIME_DIR is a 0700 dir of ours."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    return {"ASYMM_HTTP_TOKEN": "", "XDG_RUNTIME_DIR": str(run), "RUNTIME_DIRECTORY": ""}


def api_paths(port: int, token: str) -> list[str]:
    status, _headers, body = request(port, "/api", {"Authorization": f"Bearer {token}"})
    assert status == 200, body
    paths: list[str] = json.loads(body)["endpoints"]
    assert {"/api/status", "/api/graph", "/api/dashboard"} <= set(paths), paths
    return ["/api", *paths]


def test_unauthenticated_local_client_does_not_read_statement_texts(db: str, start_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Red team: with the default loopback daemon and no token configured, any local OS user (the
    threat model lets them connect to 127.0.0.1) read every role's pg_stat_statements texts, with
    the literals PostgreSQL 15 keeps, from /api/graph and /api/dashboard.  Now the daemon generates
    a token, and a request without it gets a 401 and no statement text."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.rt_marker_7f3a (id int PRIMARY KEY, secret text DEFAULT 'hunter2-literal')")
        for _ in range(5):
            conn.execute("SELECT * FROM public.rt_marker_7f3a WHERE secret = 'card-4111'")
    daemon: Running = start_daemon(db, env=generated_token_env(tmp_path))
    texts = ("hunter2-literal", "FROM public.rt_marker_7f3a WHERE")
    for path in ("/api/graph", "/api/dashboard?minutes=15"):
        status, headers, body = request(daemon.port, path, host=f"127.0.0.1:{daemon.port}")
        assert status == 401 and headers["www-authenticate"].startswith("Bearer"), (path, status)
        assert not any(text in body for text in texts), body
    # the token the daemon wrote for its own user opens it (so the 401 above is the token, not a bug)
    daemon.token_from_file(tmp_path / "run" / "asymm")
    code, body = daemon.get("/api/graph?fresh=1")
    assert code == 200 and "public.rt_marker_7f3a" in body, body[:300]


@pytest.mark.parametrize("variable", ["XDG_RUNTIME_DIR", "RUNTIME_DIRECTORY"])
def test_the_generated_token_is_private_opens_every_api_path_and_survives_a_reload(  # type: ignore[no-untyped-def]
    db: str, start_daemon, tmp_path: Path, variable: str
) -> None:
    """No token configured: the daemon writes one to DIR/http-token-PORT, 0600 in a 0700 directory of
    ours ($XDG_RUNTIME_DIR/asymm, made by the daemon; or systemd's $RUNTIME_DIRECTORY, 0755 by
    default, tightened to 0700); its log names the file, never the token; without the token every
    /api path answers 401, /metrics (counters only) and the probes stay open on loopback."""
    env = generated_token_env(tmp_path)
    if variable == "RUNTIME_DIRECTORY":
        directory = tmp_path / "systemd-run"
        directory.mkdir(mode=0o755)
        directory.chmod(0o755)
        env.update(XDG_RUNTIME_DIR="", RUNTIME_DIRECTORY=str(directory))
    else:
        directory = tmp_path / "run" / "asymm"
    daemon: Running = start_daemon(db, env=env)
    token_file = directory / f"http-token-{daemon.port}"
    token = daemon.token_from_file(directory)
    assert len(token) >= 40 and token != DAEMON_TOKEN
    for path, mode in ((directory, 0o700), (token_file, 0o600)):
        info = os.lstat(path)
        assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == mode, (path, oct(info.st_mode))
    assert os.listdir(directory) == [token_file.name]
    paths = api_paths(daemon.port, token)
    for api_path in paths:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789abcdefghij"},
            {"Authorization": token},
            {"Authorization": f"Basic {token}"},
        ):
            status, _headers, body = request(daemon.port, api_path, headers)
            assert status == 401 and "daemon_id" not in body and "nodes" not in body, (api_path, headers, status)
        status, _headers, body = request(daemon.port, api_path, {"Authorization": f"Bearer {token}"})
        assert status == 200 and token not in body, (api_path, body[:200])
    status, _headers, body = request(daemon.port, "/metrics")
    assert status == 200 and "asymm_pulse_ticks_total" in body
    for open_path in ("/healthz", "/readyz", "/", "/static/app.js"):
        assert request(daemon.port, open_path)[0] == 200, open_path
    daemon.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: daemon.status()["reloads"] == 1), "no reload"  # status() sends the same token
    err = daemon.stop()
    assert str(token_file) in err and token not in err, err
    assert not token_file.exists(), "the token file outlived a clean stop"


def run_daemon(dsn: str, env: dict[str, str], port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ASYMM, "daemon", "--dsn", dsn, "--http-port", str(port), "--ticks", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def plant(kind: str, tmp_path: Path, port: int) -> tuple[Path, Path]:
    """A token directory another user prepared; returns (the configured directory, what must not change)."""
    nobody = pwd.getpwnam("nobody")
    if kind == "dir of another user":
        planted = tmp_path / "planted"
        planted.mkdir(mode=0o700)
        os.chown(planted, nobody.pw_uid, nobody.pw_gid)
        return planted, planted
    if kind == "symlinked dir":
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o700)
        (tmp_path / "link").symlink_to(target)
        return tmp_path / "link", target
    if kind == "world-writable dir":
        planted = tmp_path / "open"
        planted.mkdir()
        planted.chmod(0o777)
        return planted, planted
    if kind == "parent of another user":
        parent = tmp_path / "theirs"
        parent.mkdir(mode=0o755)
        os.chown(parent, nobody.pw_uid, nobody.pw_gid)
        return parent / "asymm", parent
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o700)
    if kind == "symlinked token file":
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        (ours / f"http-token-{port}").symlink_to(victim)
        os.lchown(ours / f"http-token-{port}", nobody.pw_uid, nobody.pw_gid)
        return ours, victim
    assert kind == "token file of another user"
    planted = ours / f"http-token-{port}"
    planted.write_text("planted-token-0123456789abcdef\n")
    os.chown(planted, nobody.pw_uid, nobody.pw_gid)
    return ours, planted


def snapshot(path: Path) -> list[tuple[str, int, int, str]]:
    """Every entry under ``path`` (not following links) with owner, mode and content."""
    entries = []
    for root, dirs, files in os.walk(path):
        for name in sorted(dirs + files):
            item = Path(root) / name
            info = os.lstat(item)
            content = item.read_text() if stat.S_ISREG(info.st_mode) else os.readlink(item) if item.is_symlink() else ""
            entries.append((str(item), info.st_uid, info.st_mode, content))
    info = os.lstat(path)
    return [(str(path), info.st_uid, info.st_mode, path.read_text() if path.is_file() else ""), *entries]


@pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's files needs root (chown)")
@pytest.mark.parametrize(
    "kind",
    [
        "dir of another user",
        "symlinked dir",
        "world-writable dir",
        "parent of another user",
        "symlinked token file",
        "token file of another user",
    ],
)
def test_a_planted_token_directory_or_file_is_refused(db: str, tmp_path: Path, kind: str) -> None:
    """A token directory (or token file) someone else could have made or swapped: exit 2 with one line,
    before connecting (no asymm.daemons row), and nothing written anywhere."""
    port = free_port()
    configured, watched = plant(kind, tmp_path, port)
    before = snapshot(watched)
    out = run_daemon(db, {"ASYMM_HTTP_TOKEN": "", "ASYMM_HTTP_TOKEN_DIR": str(configured)}, port)
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing" in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert snapshot(watched) == before
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM asymm.daemons").fetchone() == (0,)


def test_without_a_private_directory_the_api_stays_closed(db: str, start_daemon) -> None:  # type: ignore[no-untyped-def]
    """No token, no token_dir, no runtime directory: the token stays in memory, so nobody gets in
    (fail closed) and the daemon says how to fix it."""
    daemon: Running = start_daemon(db, env={"ASYMM_HTTP_TOKEN": "", "XDG_RUNTIME_DIR": "", "RUNTIME_DIRECTORY": ""})
    for path in ("/api", "/api/status", "/api/graph"):
        assert request(daemon.port, path)[0] == 401, path
    assert request(daemon.port, "/readyz")[0] == 200
    err = daemon.stop()
    assert "no private directory for the generated HTTP token" in err and "XDG_RUNTIME_DIR" in err, err


def test_http_auth_none_opens_the_loopback_api_with_a_warning(db: str, start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Running = start_daemon(db, env={"ASYMM_HTTP_TOKEN": "", "ASYMM_HTTP_AUTH": "none"})
    status, _headers, body = request(daemon.port, "/api/status")
    assert status == 200 and json.loads(body)["config"]["http_auth"] == "none"
    assert request(daemon.port, "/api/status", host="evil.example")[0] == 403  # Host and Origin checks stay
    err = daemon.stop()
    assert "http.auth = none" in err and "every local user" in err, err
    warned = check_config(env={"ASYMM_HTTP_AUTH": "none"})
    assert warned.returncode == 0 and "every local user" in warned.stderr, warned.stderr
    for env, words in (
        ({"ASYMM_HTTP_AUTH": "none", "ASYMM_HTTP_TOKEN": TOKEN}, "contradict"),
        ({"ASYMM_HTTP_AUTH": "off"}, "http_auth must be one of token, none"),
    ):
        refused = check_config(env=env)
        assert refused.returncode == 2 and words in refused.stderr and TOKEN not in refused.stderr, refused.stderr
    remote = check_config("--http-host", "0.0.0.0", "--http-allow-remote", env={"ASYMM_HTTP_AUTH": "none"})
    assert remote.returncode == 2 and "token" in remote.stderr, remote.stderr


def test_a_daemon_built_in_code_does_not_bind_remote_without_the_setting(db: str) -> None:
    """Daemon(DaemonConfig(...)) skips config.load(); the HTTP start still refuses a remote bind."""
    port = free_port()
    script = (
        "import logging, sys; logging.basicConfig();"
        "from asymm.app import make_daemon; from asymm.daemon.service import DaemonConfig;"
        f"make_daemon(DaemonConfig(dsn=sys.argv[1], http_host='0.0.0.0', http_port={port}, max_ticks=5)).run()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, db], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr
    assert "HTTP server not started" in proc.stderr and "loopback" in proc.stderr


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (make deps installs it)")
def test_the_dashboard_page_sends_the_token_from_its_url_fragment(db: str, start_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With the daemon's generated token the page loads from /#token=..., keeps it in sessionStorage,
    drops it from the address bar and sends it as a Bearer header; without it the page says why it
    gets no data."""
    assert (STATIC_DIR / "vendor" / "three.module.js").is_file(), "run `make dashboard` (npm) first"
    daemon: Running = start_daemon(db, env=generated_token_env(tmp_path))
    token = daemon.token_from_file(tmp_path / "run" / "asymm")
    browser = Browser()
    try:
        browser.goto(f"http://127.0.0.1:{daemon.port}/#token={token}")
        browser.wait_for("window.__asymm && window.__asymm.polls >= 2", 60)
        assert browser.evaluate("location.hash") == ""
        assert browser.evaluate("sessionStorage.getItem('asymm-token')") == token
        assert browser.evaluate("JSON.stringify(window.__asymm.errors)") == "[]"
        assert browser.console_errors == [], browser.console_errors
        browser.evaluate("sessionStorage.clear()")
        browser.goto(f"http://localhost:{daemon.port}/")  # another origin: a fresh sessionStorage
        browser.wait_for("window.__asymm && window.__asymm.errors.length > 0", 30)
        assert "401" in browser.evaluate("window.__asymm.errors[0]")
        assert "token" in browser.evaluate("document.getElementById('db').textContent")
    finally:
        browser.close()
