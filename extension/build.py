#!/usr/bin/env python3
"""Build the extension's install and upgrade scripts from the sources in ``sql/``.

Why a generator: the SQL sources are kept one area per file so that each capability can be
read and reviewed on its own, and long PL/Python bodies are kept as Python modules of the
control package (so that ruff, mypy and unit tests see them), but PostgreSQL wants one script
per version.  Released scripts are frozen: ``extension/asymm--X.Y.Z.sql`` and
``extension/asymm--A--B.sql`` are committed, listed with their SHA-256 in ``extension/frozen.sha256``
and never regenerated (the build refuses to run when one differs from its checksum).  Only the
current development version and the one upgrade script into it are rebuilt from ``sql/``.

Conventions (see README, "Extension versions"):

* every ``sql/NN_area.sql``, and every part ``sql/NN_area/MM_part.sql`` of an area split one part
  a file, starts with ``-- asymm: since X.Y.Z``: the version that introduced it, or with
  ``-- asymm: always``: idempotent statements (privileges) that end every script;
* ``asymm--<current>.sql`` is the concatenation of all of them in path order (objects before users);
* ``asymm--<latest released>--<current>.sql`` is ``sql/upgrade/<latest>--<current>.sql`` (changes to
  objects that already existed) followed by every source file whose ``since`` is newer than
  ``latest``; older versions reach ``current`` through the frozen chain;
* a line ``-- asymm: include <path>`` inside a dollar-quoted function body is replaced by the
  file at ``<path>`` (relative to the repository); the file must not contain the body's delimiter;
* a line ``-- asymm: replace asymm.<function>`` in an upgrade source is replaced by that function's
  current ``CREATE FUNCTION`` statement as ``CREATE OR REPLACE FUNCTION`` (a body that changed).

``build.py [OUT_DIR]`` builds; ``--outputs``/``--inputs`` print what a build writes and reads (for
make); ``--check`` only verifies the frozen scripts; ``release`` freezes the current build.
Standard library only: this runs before any virtualenv exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCES = REPO / "sql"
MANIFEST = HERE / "frozen.sha256"
GUARD = '\\echo Use "CREATE EXTENSION asymm" to load this file. \\quit\n'
SINCE = re.compile(r"^-- asymm: since (\d+)\.(\d+)\.(\d+)\s*$")
ALWAYS_HEADER = "-- asymm: always"
ALWAYS = (10**6, 0, 0)  # sorts after every real version: such files go into every script
INCLUDE = re.compile(r"^-- asymm: include (\S+)[ \t]*$", re.M)
REPLACE = re.compile(r"^-- asymm: replace (asymm\.\w+)[ \t]*$", re.M)
OPENING = re.compile(r"\bAS\s+(\$[A-Za-z_]*\$)[ \t]*$", re.M)
SCRIPT = re.compile(r"asymm--(\d+\.\d+\.\d+)(?:--(\d+\.\d+\.\d+))?\.sql")


class BuildError(Exception):
    """A source or frozen script breaks a convention above."""


def version_tuple(text: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in text.split("."))
    return (major, minor, patch)


def current_version() -> str:
    control = (HERE / "asymm.control").read_text()
    match = re.search(r"^default_version\s*=\s*'([^']+)'", control, re.M)
    if not match:
        raise BuildError("default_version missing from asymm.control")
    return match.group(1)


def frozen_manifest() -> dict[str, str]:
    """File name -> SHA-256 of every released (frozen) script."""
    entries = {}
    for line in MANIFEST.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            entries[name] = digest
    return entries


def check_frozen() -> None:
    """Every ``extension/asymm--*.sql`` is listed in the manifest, unchanged, and vice versa."""
    manifest = frozen_manifest()
    present = {path.name for path in HERE.glob("asymm--*.sql")}
    if present != set(manifest):
        raise BuildError(
            f"{MANIFEST.name} lists {sorted(manifest)} but extension/ holds {sorted(present)}:"
            " released scripts are frozen (see 'build.py release')"
        )
    for name, digest in sorted(manifest.items()):
        if hashlib.sha256((HERE / name).read_bytes()).hexdigest() != digest:
            raise BuildError(
                f"extension/{name} differs from its SHA-256 in {MANIFEST.name}: a released script"
                " is frozen; change the current version's sources (sql/, sql/upgrade/) instead"
            )


def latest_released() -> str:
    versions = set()
    for name in frozen_manifest():
        match = SCRIPT.fullmatch(name)
        if not match:
            raise BuildError(f"{name} in {MANIFEST.name} is not asymm--X.Y.Z.sql or asymm--A--B.sql")
        versions.add(match.group(2) or match.group(1))
    return max(versions, key=version_tuple)


def source_paths() -> list[Path]:
    """``sql/*.sql`` and ``sql/<area>/*.sql`` (an area split one part a file), in path order."""
    paths = [*SOURCES.glob("*.sql"), *(p for p in SOURCES.glob("*/*.sql") if p.parent.name != "upgrade")]
    return sorted(paths, key=lambda path: path.relative_to(SOURCES).as_posix())


def source_files() -> list[tuple[Path, tuple[int, int, int]]]:
    files = []
    for path in source_paths():
        first_line = path.read_text().split("\n", 1)[0]
        if first_line.strip() == ALWAYS_HEADER:
            files.append((path, ALWAYS))
            continue
        match = SINCE.match(first_line)
        if not match:
            raise BuildError(f"{path} must start with '-- asymm: since X.Y.Z' or '{ALWAYS_HEADER}'")
        files.append((path, (int(match.group(1)), int(match.group(2)), int(match.group(3)))))
    return files


def included_paths(text: str) -> list[Path]:
    return [REPO / match.group(1) for match in INCLUDE.finditer(text)]


def splice(text: str, origin: Path) -> str:
    """Replace every include marker by its file; the marker must sit inside a dollar-quoted body."""

    def insert(match: re.Match[str]) -> str:
        where = f"{origin.relative_to(REPO)}:{text.count(chr(10), 0, match.start()) + 1}"
        openings = list(OPENING.finditer(text, 0, match.start()))
        if not openings:
            raise BuildError(f"{where}: an include marker must be inside an 'AS $tag$' function body")
        tag = openings[-1].group(1)
        if tag in text[openings[-1].end() : match.start()] or tag not in text[match.end() :]:
            raise BuildError(f"{where}: an include marker must be inside an 'AS {tag}' function body")
        path = REPO / match.group(1)
        if not path.is_file():
            raise BuildError(f"{where}: {match.group(1)} does not exist")
        content = path.read_text()
        if tag in content:
            raise BuildError(f"{where}: {match.group(1)} contains {tag}, the delimiter of the body it goes into")
        return content.rstrip("\n")

    return INCLUDE.sub(insert, text)


def function_statement(name: str, sources: dict[Path, str]) -> str:
    """The (spliced) ``CREATE FUNCTION name(...)`` statement of the sources, as CREATE OR REPLACE."""
    start = re.compile(rf"^CREATE FUNCTION {re.escape(name)}\(", re.M)
    found = [(path, m) for path, text in sources.items() for m in start.finditer(text)]
    if len(found) != 1:
        raise BuildError(f"'-- asymm: replace {name}': {len(found)} CREATE FUNCTION statements of it in sql/")
    path, match = found[0]
    text = sources[path]
    opening = OPENING.search(text, match.end())
    if opening is None:
        raise BuildError(f"{name}: its body must be dollar-quoted (AS $tag$ ... $tag$)")
    close = text.find(opening.group(1), opening.end())
    semicolon = text.find(";", close)
    if close < 0 or semicolon < 0:
        raise BuildError(f"{name}: its body is not closed")
    return "CREATE OR REPLACE FUNCTION" + text[match.start() + len("CREATE FUNCTION") : semicolon + 1]


def body(paths: list[Path], texts: dict[Path, str]) -> str:
    parts = [GUARD]
    for path in paths:
        parts.append(f"\n-- ===== {path.relative_to(REPO)} =====\n")
        parts.append(texts[path])
    return "".join(parts)


def plan() -> dict[str, str]:
    """Output file name -> content of every script the current sources build."""
    check_frozen()
    current, latest = current_version(), latest_released()
    if version_tuple(current) <= version_tuple(latest):
        raise BuildError(f"default_version {current} is released already: raise it in asymm.control")
    sources = source_files()
    texts = {path: splice(path.read_text(), path) for path, _ in sources}
    scripts = {f"asymm--{current}.sql": body([p for p, _ in sources], texts)}
    upgrade = SOURCES / "upgrade" / f"{latest}--{current}.sql"
    paths = [p for p, since in sources if since > version_tuple(latest)]
    if upgrade.exists():
        raw = splice(upgrade.read_text(), upgrade)
        texts[upgrade] = REPLACE.sub(lambda m: function_statement(m.group(1), texts), raw)
        paths.insert(0, upgrade)
    scripts[f"asymm--{latest}--{current}.sql"] = body(paths, texts)
    return scripts


def inputs() -> list[Path]:
    found = [HERE / "asymm.control", MANIFEST, *source_paths(), *(SOURCES / "upgrade").glob("*.sql")]
    for path in list(found):
        if path.suffix == ".sql":
            found += included_paths(path.read_text())
    return sorted(set(found))


def release() -> None:
    """Freeze the current build: copy its scripts into extension/ and record their checksums."""
    lines = MANIFEST.read_text().splitlines()
    for name, content in plan().items():
        (HERE / name).write_text(content)
        lines.append(f"{hashlib.sha256(content.encode()).hexdigest()}  {name}")
    MANIFEST.write_text("\n".join(line for line in lines if line.strip()) + "\n")
    print(
        f"frozen {current_version()}: now raise default_version in asymm.control and start"
        f" sql/upgrade/{current_version()}--<next>.sql",
        file=sys.stderr,
    )


USAGE = (
    "usage: build.py [build [DIR]] | --check | --outputs | --inputs | release\n"
    "  build [DIR]  write the current install and upgrade scripts into DIR (default: extension/build)"
)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--check"]:
        check_frozen()
    elif argv[:1] == ["--outputs"]:
        print(" ".join(f"build/{name}" for name in plan()))
    elif argv[:1] == ["--inputs"]:
        print(" ".join(os.path.relpath(path, Path.cwd()) for path in inputs()))
    elif argv[:1] == ["release"]:
        release()
    elif argv[:1] in (["build"], []) and len(argv) <= 2:
        out_dir = Path(argv[1]) if len(argv) == 2 else HERE / "build"
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, content in plan().items():
            (out_dir / name).write_text(content)
    else:
        sys.exit(USAGE)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except BuildError as exc:
        sys.exit(f"build.py: {exc}")
