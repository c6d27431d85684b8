"""Run a PL/Python function body the way the server does, without a server.

Why: the long PL/Python bodies are spliced by ``extension/build.py`` from modules of the control
package; these helpers let unit tests run both the built body (as PL/Python wraps it: the body
becomes a function, the arguments and ``plpy`` are globals) and the body of a released, frozen
script, so that a test can show the spliced code behaves as the released one did.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def build_module() -> ModuleType:
    """``extension/build.py``, imported (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("asymm_extension_build", REPO / "extension" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plpython_bodies(script: str) -> dict[str, str]:
    """Function name -> body of every ``LANGUAGE plpython3u`` function a script creates."""
    bodies = {}
    for match in re.finditer(r"^CREATE (?:OR REPLACE )?FUNCTION (asymm\.\w+)\(", script, re.M):
        header_end = re.compile(r"^AS (\$\w*\$)?.*$", re.M).search(script, match.end())
        assert header_end is not None, match.group(1)
        header = script[match.end() : header_end.start()]
        if "LANGUAGE plpython3u" not in header or header_end.group(0) != f"AS {header_end.group(1)}":
            continue
        tag = header_end.group(1)
        close = script.index("\n" + tag, header_end.end())
        bodies[match.group(1)] = script[header_end.end() + 1 : close + 1]
    return bodies


def released_body(name: str, version: str = "0.2.0") -> str:
    return plpython_bodies((REPO / "extension" / f"asymm--{version}.sql").read_text())[name]


def run_body(body: str, args: dict[str, Any], plpy: Any = None) -> Any:
    """Call ``body`` as PL/Python would: wrapped in a function whose globals hold the arguments."""
    source = "def __plpython_procedure():\n" + "".join("\t" + line + "\n" for line in body.splitlines())
    namespace: dict[str, Any] = {**args, "plpy": plpy}
    exec(compile(source, "<plpython>", "exec"), namespace)
    return namespace["__plpython_procedure"]()
