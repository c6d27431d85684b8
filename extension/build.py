#!/usr/bin/env python3
"""Build the extension's install and upgrade scripts from the sources in ``sql/``.

Why a generator: the SQL sources are kept one area per file so that each capability can be
read and reviewed on its own, but PostgreSQL wants one script per version.  Released versions
are frozen (``extension/asymm--X.Y.Z.sql`` is committed and never regenerated); the current
development version and the upgrade script into it are rebuilt from ``sql/`` on every build.

Conventions (see README, "Extension versions"):

* every ``sql/NN_area.sql`` starts with ``-- asymm: since X.Y.Z``: the version that introduced it,
  or with ``-- asymm: always``: idempotent statements (privileges) that end every script;
* ``asymm--<current>.sql`` is the concatenation of all of ``sql/*.sql`` in name order;
* ``asymm--<prev>--<current>.sql`` is ``sql/upgrade/<prev>--<current>.sql`` (changes to objects that
  already existed in ``prev``) followed by every source file whose ``since`` is newer than ``prev``.

Standard library only: this runs before any virtualenv exists.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE.parent / "sql"
GUARD = '\\echo Use "CREATE EXTENSION asymm" to load this file. \\quit\n'
SINCE = re.compile(r"^-- asymm: since (\d+)\.(\d+)\.(\d+)\s*$")
ALWAYS_HEADER = "-- asymm: always"
ALWAYS = (10**6, 0, 0)  # sorts after every real version: such files go into every script


def version_tuple(text: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in text.split("."))
    return (major, minor, patch)


def current_version() -> str:
    control = (HERE / "asymm.control").read_text()
    match = re.search(r"^default_version\s*=\s*'([^']+)'", control, re.M)
    if not match:
        sys.exit("build.py: default_version missing from asymm.control")
    return match.group(1)


def released_versions(current: str) -> list[str]:
    found = []
    for path in HERE.glob("asymm--*.sql"):
        match = re.fullmatch(r"asymm--(\d+\.\d+\.\d+)\.sql", path.name)
        if match and match.group(1) != current:
            found.append(match.group(1))
    return sorted(found, key=version_tuple)


def source_files() -> list[tuple[Path, tuple[int, int, int]]]:
    files = []
    for path in sorted(SOURCES.glob("*.sql")):
        first_line = path.read_text().split("\n", 1)[0]
        if first_line.strip() == ALWAYS_HEADER:
            files.append((path, ALWAYS))
            continue
        match = SINCE.match(first_line)
        if not match:
            sys.exit(f"build.py: {path} must start with '-- asymm: since X.Y.Z' or '{ALWAYS_HEADER}'")
        files.append((path, (int(match.group(1)), int(match.group(2)), int(match.group(3)))))
    return files


def body(paths: list[Path]) -> str:
    parts = [GUARD]
    for path in paths:
        parts.append(f"\n-- ===== {path.relative_to(SOURCES.parent)} =====\n")
        parts.append(path.read_text())
    return "".join(parts)


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "build"
    out_dir.mkdir(parents=True, exist_ok=True)
    current = current_version()
    sources = source_files()
    (out_dir / f"asymm--{current}.sql").write_text(body([p for p, _ in sources]))
    for previous in released_versions(current):
        prev = version_tuple(previous)
        hand_written = SOURCES / "upgrade" / f"{previous}--{current}.sql"
        paths = [hand_written] if hand_written.exists() else []
        paths += [p for p, since in sources if since > prev]
        (out_dir / f"asymm--{previous}--{current}.sql").write_text(body(paths))


if __name__ == "__main__":
    main()
