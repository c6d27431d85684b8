"""``asymm sandbox up --preload/--shared-buffers``: what reaches postgresql.conf is validated first."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from asymm.cli import main as cli
from asymm.dev.sandbox.options import ServerOptions, check_library, configured, missing, server_options
from asymm.errors import SandboxError


@pytest.fixture
def libdir(tmp_path: Path) -> str:
    (tmp_path / "pg_qualstats.so").write_bytes(b"")
    return str(tmp_path)


@pytest.mark.parametrize("name", ["../pg_qualstats", "/tmp/evil", "pg_qualstats.so", "a b", "x'; fsync=on", "", "1lib"])
def test_a_library_must_be_a_plain_identifier(name: str, libdir: str) -> None:
    with pytest.raises(SandboxError, match="plain identifier"):
        check_library(name, libdir)


def test_a_library_must_exist_in_the_library_directory(libdir: str) -> None:
    assert check_library("pg_qualstats", libdir) == "pg_qualstats"
    with pytest.raises(SandboxError, match=r"no nosuchlib\.so in"):
        check_library("nosuchlib", libdir)


@pytest.mark.parametrize("value", ["2G", "2 GB", "0MB", "2GB'", "1e3MB", "-1MB", "GB", "2GB\nfsync = on"])
def test_shared_buffers_must_be_a_whole_number_with_a_unit(value: str) -> None:
    with pytest.raises(SandboxError, match="whole number with kB, MB or GB"):
        server_options((), value)


def test_settings_keep_pg_stat_statements_first_and_each_library_once() -> None:
    opts = ServerOptions(("pg_qualstats", "pg_prewarm"), "3GB")
    assert opts.settings() == {
        "shared_preload_libraries": "'pg_stat_statements,pg_qualstats,pg_prewarm'",
        "shared_buffers": "'3GB'",
    }
    assert ServerOptions(("pg_stat_statements",)).settings() == {"shared_preload_libraries": "'pg_stat_statements'"}


def test_a_running_sandbox_is_compared_with_what_its_conf_says() -> None:
    conf = "shared_buffers = 128MB\n# asymm sandbox\nshared_preload_libraries = 'pg_stat_statements,pg_qualstats'\n"
    conf += "shared_buffers = '3GB'\n"
    have = configured(conf)
    assert have == ServerOptions(("pg_qualstats",), "3GB")
    assert missing(ServerOptions(("pg_qualstats",), "3GB"), have) == []
    assert missing(ServerOptions(), have) == []
    assert missing(ServerOptions(("pg_prewarm",), "2GB"), have) == ["--preload pg_prewarm", "--shared-buffers 2GB"]


def test_the_cli_refuses_a_bad_library_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sandbox", "up", "--dir", str(tmp_path / "box"), "--preload", "../evil"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --preload '../evil': a library name is a plain identifier (letters, digits, _), not a path"
    ]
    assert not (tmp_path / "box").exists()
