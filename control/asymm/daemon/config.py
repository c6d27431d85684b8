"""Daemon configuration: defaults, then a TOML file, then ``ASYMM_*`` variables, then flags.

Why this order: packages ship defaults, operators write the file, deployment tools override single
values through the environment, and a person at a terminal overrides anything with a flag.  Every
value remembers where it came from (``asymm daemon --check-config`` shows them).  A key ``k`` in
section ``[s]`` names the field ``s_k``; the variable is ``ASYMM_`` + the field name.

Details and an example file: docs/daemon.md, "Configuration".
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asymm.daemon.pulse import DEFAULT_PERIOD_S
from asymm.errors import AsymmError
from asymm.redact import MASK, mask_dsn, mask_text, mask_url

DEFAULT_HTTP_PORT = 9849
REGIME_FIELDS = ("regime_exploration", "regime_optimization", "regime_stabilization")
SECTIONS = ("regime", "http", "leader", "notify", "reconnect", "task")
LOG_LEVELS = ("debug", "info", "warning", "error")
HTTP_AUTH_MODES = ("token", "none")  # none: /api open on loopback, for people who accept the risk
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
MIN_TOKEN_LENGTH = 16
SECRET_FIELDS = ("http_token",)  # never echoed, not even in an error message


class ConfigError(AsymmError):
    """A configuration value is missing, malformed or out of range (a usage error: exit code 2)."""


@dataclass
class DaemonConfig:
    """Everything the daemon reads at start (and, for the reloadable part, on SIGHUP)."""

    dsn: str = ""
    redis_url: str | None = None
    period: float = DEFAULT_PERIOD_S
    max_ticks: int | None = None  # stop after this many ticks (tests, the demo); None runs forever
    heartbeat_every_s: float = 1.0
    budget_fraction: float = 0.8  # share of each period the tasks may use
    regime_exploration: float = 0.30
    regime_optimization: float = 0.20
    regime_stabilization: float = 0.50
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT  # 0 disables the HTTP server
    http_allowed_hosts: list[str] = field(default_factory=lambda: list(LOOPBACK_HOSTS))  # Host header names
    http_allow_remote: bool = False  # required to bind a non-loopback address
    http_token: str | None = None  # Bearer token for /api (and /metrics when remote); required when remote
    http_token_file: str | None = None  # file holding the token (read at load; wins over http_token)
    http_auth: str = "token"  # "token": /api needs the bearer token (generated if none); "none": open on loopback
    http_token_dir: str | None = None  # private directory for a generated token (see asymm.daemon.token)
    leader_session_timeout_s: float = 5.0  # idle_session_timeout of the lock session; 0 disables
    leader_keepalive_s: int = 2  # TCP keepalive idle/interval on the lock session (both ends)
    reconnect_base_s: float = 0.2
    reconnect_max_s: float = 10.0
    task_backoff_max_s: float = 30.0
    notify_urls: list[str] = field(default_factory=list)
    notify_retries: int = 5
    notify_timeout_s: float = 5.0
    notify_queue: int = 1000
    log_level: str = "info"

    @property
    def regime_split(self) -> dict[str, float]:
        return {
            "exploration": self.regime_exploration,
            "optimization": self.regime_optimization,
            "stabilization": self.regime_stabilization,
        }


# Changing these needs a restart (they are bound at start); everything else is applied on SIGHUP.
RESTART_ONLY = (
    "dsn",
    "redis_url",
    "http_host",
    "http_port",
    "http_allow_remote",
    "http_auth",
    "http_token_dir",
    "max_ticks",
)

FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(DaemonConfig)}


@dataclass
class LoadedConfig:
    config: DaemonConfig
    sources: dict[str, str]  # field -> "default" | "file:PATH" | "env:NAME" | "flag"
    file: Path | None


_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Turn a TOML/env/flag value into the field's type, or say clearly what is wrong."""
    kind = FIELDS[name].type
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _BOOLS:
                return _BOOLS[value.strip().lower()]
            raise ValueError
        if kind in ("float",):
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):  # TOML and float() take nan/inf; no duration is either
                raise ValueError
            return number
        if kind in ("int", "int | None"):
            if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
                if kind == "int | None":
                    return None
                raise ValueError
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "str | None":
            return None if value in (None, "") else str(value)
        if kind == "str":
            if not isinstance(value, str | int | float):
                raise ValueError
            return str(value)
        if kind == "list[str]":
            if isinstance(value, str):
                return [part.strip() for part in value.replace(" ", ",").split(",") if part.strip()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return list(value)
            raise ValueError
    except (TypeError, ValueError):
        shown = "the given value" if name in SECRET_FIELDS else mask_text(repr(value))
        raise ConfigError(f"{name} ({origin}): {shown} is not a valid {kind}") from None
    raise AssertionError(f"no coercion for {kind}")


def _flatten(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key == "daemon":
                prefix = ""
            elif key in SECTIONS:
                prefix = key + "_"
            else:
                raise ConfigError(f"{path}: unknown section [{key}]; known: daemon, {', '.join(SECTIONS)}")
            for sub, subvalue in value.items():
                flat[prefix + sub] = subvalue
        else:
            flat[key] = value
    for key in flat:
        if key not in FIELDS:
            raise ConfigError(f"{path}: unknown setting {key!r}; known: {', '.join(sorted(FIELDS))}")
    return flat


def read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return _flatten(data, path)


def load(
    file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """The effective configuration; ``flags`` holds only the flags actually given (not None)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, spec in FIELDS.items():
        default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
        values[name] = default
        sources[name] = "default"
    path_text = file if file is not None else env.get("ASYMM_CONFIG") or None
    path = Path(path_text) if path_text else None
    if path is not None:
        for name, value in read_file(path).items():
            values[name] = _coerce(name, value, f"file {path}")
            sources[name] = f"file:{path}"
    for name in FIELDS:
        var = "ASYMM_" + name.upper()
        if var in env:
            values[name] = _coerce(name, env[var], f"environment {var}")
            sources[name] = f"env:{var}"
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in FIELDS:
            raise ConfigError(f"unknown flag setting {name!r}")
        values[name] = _coerce(name, value, "flag")
        sources[name] = "flag"
    config = DaemonConfig(**values)
    _read_token_file(config)
    validate(config)
    return LoadedConfig(config=config, sources=sources, file=path)


def validate(config: DaemonConfig) -> None:
    """Range checks, and the regime split normalised to fractions (percentages are accepted)."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    need(0.001 <= config.period <= 3600, f"period must be between 0.001 and 3600 seconds, not {config.period}")
    need(config.max_ticks is None or config.max_ticks >= 1, "max_ticks must be at least 1")
    need(0 < config.heartbeat_every_s <= 86400, "heartbeat_every_s must be positive and at most 86400 (a day)")
    need(0 < config.budget_fraction <= 1, "budget_fraction must be in (0, 1]")
    need(0 <= config.http_port <= 65535, "http_port must be between 0 (disabled) and 65535")
    need(
        0 <= config.leader_session_timeout_s <= 86400,
        "leader_session_timeout_s must be between 0 (disabled) and 86400 (a day)",
    )
    need(1 <= config.leader_keepalive_s <= 3600, "leader_keepalive_s must be between 1 and 3600")
    need(
        0 < config.reconnect_base_s <= config.reconnect_max_s <= 3600,
        "need 0 < reconnect_base_s <= reconnect_max_s <= 3600",
    )
    need(0 < config.task_backoff_max_s <= 86400, "task_backoff_max_s must be positive and at most 86400 (a day)")
    need(
        0 <= config.notify_retries <= 100 and 0 < config.notify_timeout_s <= 3600 and config.notify_queue >= 1,
        "0 <= notify_retries <= 100, 0 < notify_timeout_s <= 3600 and notify_queue >= 1 are required",
    )
    need(config.log_level in LOG_LEVELS, f"log_level must be one of {', '.join(LOG_LEVELS)}")
    for url in config.notify_urls:
        need(
            url.startswith(("http://", "https://")), f"notify URL {mask_url(url)!r} must start with http:// or https://"
        )
    _validate_http(config, need)
    shares = [getattr(config, name) for name in REGIME_FIELDS]
    need(all(s >= 0 for s in shares), "regime shares must not be negative")
    total = sum(shares)
    if abs(total - 100) < 1e-6:
        for name in REGIME_FIELDS:
            setattr(config, name, getattr(config, name) / 100)
    else:
        need(
            abs(total - 1) < 1e-6,
            f"regime shares must add up to 1 (or 100 %), not {total:g}: exploration, optimization, stabilization",
        )


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1); False for wildcards and names."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_token_file(config: DaemonConfig) -> None:
    """Read ``http_token_file`` into ``http_token`` (why a file: a token in the environment or on a
    command line is visible to other processes of the same user and ends up in unit files)."""
    if not config.http_token_file:
        return
    try:
        config.http_token = Path(config.http_token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"http_token_file {config.http_token_file}: cannot read: {exc.strerror}") from None


def _validate_http(config: DaemonConfig, need: Callable[[bool, str], None]) -> None:
    for name in config.http_allowed_hosts:
        need(
            bool(name) and all(c.isalnum() or c in ".-_:[]" for c in name),
            f"http_allowed_hosts: {name!r} is not a host name (host, host:port, [v6] or [v6]:port)",
        )
    need(config.http_auth in HTTP_AUTH_MODES, f"http_auth must be one of {', '.join(HTTP_AUTH_MODES)}")
    need(
        config.http_auth == "token" or not config.http_token,
        "http_auth = none and a bearer token (http.token_file, ASYMM_HTTP_TOKEN) contradict each other: drop one",
    )
    if config.http_token is not None:
        need(
            len(config.http_token) >= MIN_TOKEN_LENGTH
            and config.http_token.isprintable()
            and " " not in config.http_token,
            f"http_token must be at least {MIN_TOKEN_LENGTH} printable characters without spaces",
        )
    if config.http_port == 0 or is_loopback(config.http_host):
        return
    need(
        config.http_allow_remote,
        f"http_host {config.http_host or '(all addresses)'!r} is not a loopback address: set "
        "http.allow_remote = true (and http.token_file) to serve other hosts",
    )
    need(
        bool(config.http_token),
        f"http_host {config.http_host or '(all addresses)'!r} is not a loopback address: "
        "http.allow_remote needs a bearer token (http.token_file or ASYMM_HTTP_TOKEN)",
    )


def public_view(config: DaemonConfig) -> dict[str, Any]:
    """The configuration as JSON-able values with every secret masked (see :mod:`asymm.redact`)."""
    data = dataclasses.asdict(config)
    data["dsn"] = mask_dsn(config.dsn)
    if config.redis_url:
        data["redis_url"] = mask_url(config.redis_url, keep_path=True)
    data["notify_urls"] = [mask_url(url) for url in config.notify_urls]
    data["http_token"] = MASK if config.http_token else None
    return data


def secrets(config: DaemonConfig) -> list[str]:
    """The literal secrets of a configuration, for :func:`asymm.redact.mask_text` on free text."""
    return [config.http_token] if config.http_token else []
