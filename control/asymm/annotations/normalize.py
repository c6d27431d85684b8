"""Query normalization ("asymm fingerprint v1"): the one tokenizer of both the server and the CLI.

Why here and standard library only: ``extension/build.py`` splices this file into the PL/Python
function ``asymm.normalize_query``, whose interpreter has only the standard library, and
:mod:`asymm.annotations.fingerprint` imports it, so both fingerprints agree by construction.
Spliced into a function body, it must not use ``from __future__`` imports or ``global``.

Details (the algorithm): docs/architecture.md, "The query fingerprint".
"""

import re

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<estring>[eE]'(?:[^'\\]|\\.|'')*')
  | (?P<prefixed>[bBxXnN]'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$)
  | (?P<param>\$[0-9]+)
  | (?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<ident>[A-Za-z_\x80-\uffff][A-Za-z_0-9$\x80-\uffff]*)
  | (?P<op>[-+*/<>=~!@#%^&|`?]+)
  | (?P<punct>::|[(),;\[\].:])
  | (?P<other>.)
""",
    re.X | re.S,
)
_PLAIN = re.compile(r"[a-z_][a-z_0-9$]*")
_CONSTANTS = ("estring", "prefixed", "string", "param", "number")


def _skip_block_comment(query: str, pos: int) -> int:
    """Position after a (nested) block comment whose opening ``/*`` ends at ``pos``."""
    depth, end = 1, len(query)
    while pos < end and depth:
        if query.startswith("/*", pos):
            depth, pos = depth + 1, pos + 2
        elif query.startswith("*/", pos):
            depth, pos = depth - 1, pos + 2
        else:
            pos += 1
    return pos


def _tokens(query: str) -> list[str]:
    tokens: list[str] = []
    pos, end = 0, len(query)
    while pos < end:
        match = _TOKEN.match(query, pos)
        assert match is not None  # the last alternative matches any character
        kind = "dollar" if match.group("dollar") is not None else str(match.lastgroup)
        text = match.group(0)
        pos = match.end()
        if kind in ("ws", "line_comment"):
            continue
        if kind == "block_comment":
            pos = _skip_block_comment(query, pos)
        elif kind == "dollar":
            close = query.find(text, pos)
            pos = end if close < 0 else close + len(text)
            tokens.append("?")
        elif kind in _CONSTANTS:
            tokens.append("?")
        elif kind == "qident":
            inner = text[1:-1].replace('""', '"')
            tokens.append(inner if _PLAIN.fullmatch(inner) else text)
        elif kind == "ident":
            tokens.append(text.lower())
        else:
            tokens.append(text)
    return tokens


def normalize_query(query: str) -> str:
    """Normalized text: constants and $n become ?, comments dropped, identifiers lowercased."""
    out: list[str] = []
    for token in _tokens(query):
        out.append(token)
        # collapse "( ? , ? , ... )" and "[ ? , ... ]" into "( ? )"
        while len(out) >= 4 and out[-1] in (")", "]") and out[-2] == "?" and out[-3] == "," and out[-4] == "?":
            del out[-3:-1]
    while out and out[-1] == ";":
        out.pop()
    return " ".join(out)
