"""What is wrong with an annotation row: the body of the PL/Python function ``asymm._annotation_problem``.

Why a module: ``extension/build.py`` splices this file into that function
(``sql/10_annotations/20_validation.sql``), so that ruff, mypy and unit tests see it; it runs inside the server,
standard library only, and must not use ``from __future__`` imports or ``global``.  The answer is
``[field, message, hint]`` (the validation trigger raises it) or None when the row is valid.
"""

import json
import math
import re
from typing import Any

_ROW_HINT = "Pass the row as a jsonb object (asymm._annotation_validate does)."
_SYMBOL_HINT = (
    "A symbol is an identifier-like name such as dataEntity: a letter or _ then letters, digits or _ (at most 63)."
)
_LINEAGE_HINT = "lineage is an array of lowercase operation words such as {create,query}; use '{}' for none."
_LINEAGE_WORDS_HINT = (
    "lineage is an ordered list of distinct lowercase words (a-z and _), such as"
    " {create,query,sync,cache,optimize,update,delete}."
)
_VOCABULARY = {
    "scope": ["local", "schema", "global"],
    "regime": ["Exploration", "Optimization", "Stabilization", "Balance"],
    "cost": ["O(1)", "O(log n)", "O(n)", "O(n log n)", "O(n^2)"],
    "source": ["inferred", "propagated", "user"],
    "target_type": [
        "table",
        "view",
        "materialized view",
        "foreign table",
        "index",
        "table column",
        "view column",
        "materialized view column",
        "foreign table column",
        "function",
        "procedure",
        "query",
    ],
}


def _shown(value: object) -> str:
    """A value for a message: repr (one line), at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}... ({len(text)} characters)"


def annotation_problem(entry: str | None) -> list[str] | None:
    """``[field, message, hint]`` of the first problem of an annotation row (jsonb text), or None."""
    if entry is None:
        return ["entry", "annotation entry must not be NULL", _ROW_HINT]
    try:
        e: Any = json.loads(entry)
    except RecursionError:
        return ["entry", "annotation entry is nested too deeply", _ROW_HINT]
    if not isinstance(e, dict):
        return ["entry", f"an annotation entry must be a jsonb object, not {_shown(e)}", _ROW_HINT]
    vocab = _VOCABULARY
    symbol = e.get("symbol")
    if symbol is None or not isinstance(symbol, str) or symbol.strip() == "":
        return ["symbol", "annotation field symbol (σ) must not be empty", _SYMBOL_HINT]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", symbol):
        return ["symbol", f"invalid annotation field symbol (σ) {_shown(symbol)}", _SYMBOL_HINT]
    for field, greek in (("scope", "ρ"), ("regime", "γ"), ("cost", "κ"), ("source", "")):
        value = e.get(field)
        if value not in vocab[field]:
            label = f"{field} ({greek})" if greek else field
            return [
                field,
                f"invalid annotation field {label} {'NULL' if value is None else _shown(value)}",
                f"Accepted values for {field}: {', '.join(vocab[field])}.",
            ]
    lineage = e.get("lineage")
    if lineage is None:
        return ["lineage", "annotation field lineage (λ) must not be NULL", _LINEAGE_HINT]
    if not isinstance(lineage, list) or any(isinstance(word, list) for word in lineage):
        return ["lineage", "annotation field lineage (λ) must be a one-dimensional array", _LINEAGE_HINT]
    seen = set()
    for word in lineage:
        if not isinstance(word, str) or not re.fullmatch(r"[a-z][a-z_]{0,62}", word):
            return [
                "lineage",
                "invalid annotation field lineage (λ): "
                f"{'NULL' if word is None else _shown(word)} is not a lowercase operation word",
                _LINEAGE_WORDS_HINT,
            ]
        if word in seen:
            return [
                "lineage",
                f"invalid annotation field lineage (λ): {_shown(word)} appears twice",
                _LINEAGE_WORDS_HINT,
            ]
        seen.add(word)
    confidence = e.get("confidence")
    if (
        confidence is None
        or not isinstance(confidence, (int, float))
        or math.isnan(confidence)
        or not 0 <= confidence <= 1
    ):
        return [
            "confidence",
            f"invalid annotation field confidence {_shown(confidence)}",
            "confidence is a number between 0 and 1.",
        ]
    evidence = e.get("evidence")
    if not isinstance(evidence, int) or isinstance(evidence, bool) or evidence < 1:
        return [
            "evidence",
            f"invalid annotation field evidence {_shown(evidence)}",
            "evidence counts observations: 1 or more.",
        ]
    ttype = e.get("target_type")
    if ttype not in vocab["target_type"]:
        return [
            "target_type",
            f"invalid annotation target type {_shown(ttype)}",
            f"Accepted target types: {', '.join(vocab['target_type'])}.",
        ]
    names = e.get("target_names")
    if not isinstance(names, list) or not names or any(not isinstance(n, str) or n == "" for n in names):
        return [
            "target",
            "annotation target address has no names",
            "Annotate an existing object through asymm.annotate().",
        ]
    if (e.get("source") == "propagated") != (e.get("derived_from") is not None):
        return [
            "derived_from",
            "a propagated annotation (and only one) must name the annotation it was derived from",
            "Propagated annotations are made by asymm.propagate().",
        ]
    return None
