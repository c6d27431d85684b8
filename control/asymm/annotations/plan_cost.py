"""Cost class of a plan from its shape: the body of the PL/Python function ``asymm._plan_cost_class``.

Why a module: ``extension/build.py`` splices this file into that function
(``sql/12_annotations_coherence/20_cost_class.sql``), so that ruff, mypy and unit tests see it; it runs inside
the server, standard library only, and must not use ``from __future__`` imports or ``global``.
Index or primary-key lookup -> O(log n), full scan -> O(n), sort of a scan -> O(n log n), nested
loop over two scans -> O(n^2), no scan at all -> O(1); the worst node wins.  What is not a plan
gives ``{"problem": ...}`` (an error raised from PL/Python would read as a Python exception).
"""

import json
import re
from typing import Any

_ORDER = ["O(1)", "O(log n)", "O(n)", "O(n log n)", "O(n^2)"]
_LOG, _N, _NLOGN, _N2 = 1, 2, 3, 4


class BadPlan(Exception):
    """The argument is not an EXPLAIN (FORMAT JSON) plan."""


def _ident(part: str) -> str:
    """As quote_ident would: a dotted or quoted name must not read as another one (or none) later."""
    if re.match(r"^[a-z_][a-z0-9_$]*$", part):
        return part
    return '"' + part.replace('"', '""') + '"'


def _rel(node: dict[str, Any]) -> Any:
    name = node.get("Relation Name")
    if name is None:
        return node.get("Alias", "?")
    schema = node.get("Schema")
    return f"{_ident(schema)}.{_ident(name)}" if schema else _ident(name)


def plan_cost_class(plan: str) -> str:
    """JSON ``{cost, full_scans, reasons}`` of a plan (jsonb text), or ``{problem}``."""
    full_scans: list[Any] = []
    reasons: list[str] = []

    def walk(node: Any) -> int:
        if not isinstance(node, dict):
            raise BadPlan(f"a plan node is a JSON object, not {type(node).__name__}")
        kind = node.get("Node Type", "")
        plans = node.get("Plans", [])
        if not isinstance(kind, str) or not isinstance(plans, list):
            raise BadPlan('"Node Type" must be a string and "Plans" an array')
        children = [walk(child) for child in plans]
        worst = max(children, default=0)
        if kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
            if node.get("Index Cond"):
                return max(worst, _LOG)
            full_scans.append(_rel(node) if kind != "Bitmap Index Scan" else node.get("Index Name", "?"))
            reasons.append(f"full {kind} of {_rel(node)}")
            return max(worst, _N)
        if kind in ("Seq Scan", "Sample Scan", "Tid Range Scan", "Foreign Scan"):
            full_scans.append(_rel(node))
            reasons.append(f"{kind} on {_rel(node)}")
            return max(worst, _N)
        if (
            kind in ("Function Scan", "Table Function Scan", "CTE Scan", "WorkTable Scan", "Named Tuplestore Scan")
            and not children
        ):
            return max(worst, _N)
        if kind in ("Sort", "Incremental Sort"):
            if worst >= _N:
                reasons.append("sort of a scan")
                return max(worst, _NLOGN)
            return worst
        if kind == "Nested Loop" and len(children) == 2:
            outer, inner = children
            if outer >= _N and inner >= _N:
                reasons.append("nested loop over two scans")
                return _N2
            if outer >= _N and inner == _LOG:
                reasons.append("nested loop of index lookups over a scan")
                return max(_NLOGN, outer)
        return worst

    try:
        top = walk(json.loads(plan))
    except BadPlan as exc:
        return json.dumps({"problem": str(exc)})
    except RecursionError:
        return json.dumps({"problem": "the plan is nested too deeply"})
    return json.dumps({"cost": _ORDER[top], "full_scans": sorted(set(full_scans)), "reasons": reasons})
