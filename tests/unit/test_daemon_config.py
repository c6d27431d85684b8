"""Daemon configuration layering: defaults < TOML file < ASYMM_* environment < flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asymm.daemon import config as config_mod

ASYMM = str(Path(sys.executable).with_name("asymm"))

TOML = """
period = 0.5
redis_url = "redis://file:6379/0"
[http]
port = 1111
host = "127.0.0.2"
[regime]
exploration = 40
optimization = 10
stabilization = 50
[notify]
urls = ["http://hooks.example/a"]
"""


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    path = tmp_path / "asymm.toml"
    path.write_text(TOML)
    env = {"ASYMM_HTTP_PORT": "2222", "ASYMM_PERIOD": "0.25", "ASYMM_DEBUG": "1"}  # unrelated ASYMM_* ignored
    loaded = config_mod.load(path, env=env, flags={"period": 0.1, "dsn": None})
    c = loaded.config
    assert c.budget_fraction == 0.8 and loaded.sources["budget_fraction"] == "default"
    assert c.http_host == "127.0.0.2" and loaded.sources["http_host"] == f"file:{path}"
    assert c.redis_url == "redis://file:6379/0"
    assert c.http_port == 2222 and loaded.sources["http_port"] == "env:ASYMM_HTTP_PORT"
    assert c.period == 0.1 and loaded.sources["period"] == "flag"
    assert c.regime_split == pytest.approx({"exploration": 0.4, "optimization": 0.1, "stabilization": 0.5})
    assert c.notify_urls == ["http://hooks.example/a"]
    assert config_mod.load(None, env={"ASYMM_CONFIG": str(path)}).config.period == 0.5


def test_environment_lists_and_optional_values() -> None:
    c = config_mod.load(None, env={"ASYMM_NOTIFY_URLS": "http://a/x, https://b/y", "ASYMM_REDIS_URL": ""}).config
    assert c.notify_urls == ["http://a/x", "https://b/y"]
    assert c.redis_url is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("period = 0", "period"),
        ("nonsense = 1", "unknown setting"),
        ("[weird]\nx = 1", "unknown section"),
        ("[regime]\nexploration = 0.5\noptimization = 0.5\nstabilization = 0.5", "add up"),
        ("[http]\nport = 70000", "http_port"),
        ("period = [", "invalid TOML"),
    ],
)
def test_bad_files_are_rejected_with_the_field_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(config_mod.ConfigError, match=message):
        config_mod.load(path, env={})


def test_check_config_prints_the_effective_config_and_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "asymm.toml"
    path.write_text(TOML)
    env = {"PATH": "/usr/bin:/bin", "ASYMM_HTTP_PORT": "2222", "ASYMM_DSN": "host=h password=secret dbname=d"}
    out = subprocess.run(
        [ASYMM, "daemon", "--config", str(path), "--period", "0.3", "--check-config", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["config"]["period"] == 0.3 and doc["sources"]["period"] == "flag"
    assert doc["config"]["http_port"] == 2222 and doc["sources"]["http_port"] == "env:ASYMM_HTTP_PORT"
    assert doc["config"]["http_host"] == "127.0.0.2"
    assert "secret" not in out.stdout
    text = subprocess.run(
        [ASYMM, "daemon", "--config", str(path), "--check-config"], capture_output=True, text=True, env=env, timeout=30
    )
    assert text.returncode == 0 and "http_port" in text.stdout and "env:ASYMM_HTTP_PORT" in text.stdout
    bad = subprocess.run(
        [ASYMM, "daemon", "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "ASYMM_PERIOD": "fast"},
    )
    assert bad.returncode == 2 and "ASYMM_PERIOD" in bad.stderr and "Traceback" not in bad.stderr
    missing = subprocess.run(
        [ASYMM, "daemon", "--config", str(tmp_path / "nope.toml"), "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_http_security_settings(tmp_path: Path) -> None:
    c = config_mod.load(None, env={}).config
    assert c.http_allowed_hosts == ["localhost", "127.0.0.1", "[::1]"]
    assert c.http_allow_remote is False and c.http_token is None
    token = tmp_path / "token"
    token.write_text("0123456789abcdef-token\n")
    path = tmp_path / "asymm.toml"
    path.write_text(
        f'[http]\nhost = "0.0.0.0"\nallow_remote = true\ntoken_file = "{token}"\n'
        'allowed_hosts = ["asymm.internal:9849"]\n'
    )
    c = config_mod.load(path, env={"ASYMM_HTTP_ALLOWED_HOSTS": "a.example, b.example:80"}).config
    assert c.http_allow_remote is True and c.http_token == "0123456789abcdef-token"
    assert c.http_allowed_hosts == ["a.example", "b.example:80"]
    assert config_mod.load(None, env={"ASYMM_HTTP_ALLOW_REMOTE": "off"}).config.http_allow_remote is False
    with pytest.raises(config_mod.ConfigError, match="http_allow_remote"):
        config_mod.load(None, env={"ASYMM_HTTP_ALLOW_REMOTE": "maybe"})
    with pytest.raises(config_mod.ConfigError, match="allow_remote"):
        config_mod.load(None, env={"ASYMM_HTTP_HOST": "192.0.2.1"})
    with pytest.raises(config_mod.ConfigError, match="cannot read"):
        config_mod.load(None, env={"ASYMM_HTTP_TOKEN_FILE": str(tmp_path / "none")})
    with pytest.raises(config_mod.ConfigError, match="not a host name"):
        config_mod.load(None, env={"ASYMM_HTTP_ALLOWED_HOSTS": "evil/.example"})
    # a disabled HTTP server may name any address
    assert config_mod.load(None, env={"ASYMM_HTTP_HOST": "0.0.0.0", "ASYMM_HTTP_PORT": "0"}).config.http_port == 0
