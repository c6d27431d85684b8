"""Schema drift: compare two snapshots and plan the statements that go back to the first.

Why here: this is the body of the PL/Python function ``asymm._drift_compare`` (``sql/50_drift/30_report.sql``),
which ``extension/build.py`` splices in, so that ruff, mypy and unit tests see it.  It runs inside
the server, with the standard library only; ``plpy`` (PL/Python's module) is passed in, so that a
test can give a stand-in.  Spliced into a function body, it must not use ``from __future__``
imports or ``global``.  Objects are paired by OID key within the same database, then by identity;
renames and moves are reported as such; each item carries a plan back to the baseline.
"""

import json
import re
from typing import Any


def compare(base: str | None, cur: str | None, same_db: bool, lock_timeout: str, plpy: Any) -> str | None:
    """JSON array of drift items from snapshot ``base`` to snapshot ``cur`` (NULL when either is)."""

    if base is None or cur is None:
        return None  # as a STRICT function would: nothing to compare
    B = json.loads(base)
    C = json.loads(cur)
    # A baseline taken before these kinds were tracked: what exists of them now is not drift (a plan
    # would drop every enum and extension of the schema).
    recorded = {k for o in B if o["kind"] == "schema" for k in o["props"].get("_tracks") or []}
    if any(o["kind"] == "schema" for o in B):
        C = [o for o in C if o["kind"] not in {"type", "extension", "default_acl"} - recorded]
    qi = plpy.quote_ident
    ql = plpy.quote_literal

    def key(o: Any) -> Any:
        return (o["kind"], o["key"])

    def ident_key(o: Any) -> Any:
        return (o["kind"], o["identity"])

    bmap = {key(o): o for o in B}
    cmap = {key(o): o for o in C}
    pair = {}  # base key -> cur object
    rpair = {}  # cur key -> base object
    if same_db:
        for k, o in bmap.items():
            if k in cmap:
                pair[k] = cmap[k]
                rpair[k] = o
    cur_by_ident: dict[Any, Any] = {}
    for k, o in cmap.items():
        if k not in rpair:
            cur_by_ident.setdefault(ident_key(o), o)
    # By identity: relations and schemas first, then what lives on a table, and only on the
    # table paired with its baseline table (an index named as before but on another table is
    # another index: the baseline's is re-created, the new one dropped).
    children_kinds = ("column", "constraint", "index", "trigger", "policy")
    for k, o in sorted(bmap.items(), key=lambda kv: kv[1]["kind"] in children_kinds):
        if k in pair:
            continue
        c = cur_by_ident.get(ident_key(o))
        if c is None:
            continue
        if o["kind"] in children_kinds:
            parent = rpair.get(("table", c.get("parent"))) or rpair.get(("view", c.get("parent")))
            if parent is None or parent["key"] != o.get("parent"):
                continue
        del cur_by_ident[ident_key(o)]
        pair[k] = c
        rpair[key(c)] = o

    # Definitions print qualified names: once a schema or relation is renamed, every view, trigger,
    # default or partition that mentions it prints differently.  Translate current names back to the
    # baseline names before comparing, so one rename is reported once.
    renames = []
    for k, o in bmap.items():
        c = pair.get(k)
        if c is None or o["kind"] not in ("schema", "table", "view", "sequence", "function", "type"):
            continue
        if o["kind"] == "schema" and o["name"] != c["name"]:
            renames.append((c["qname"] + ".", o["qname"] + "."))
        elif o["kind"] in ("table", "view", "sequence", "type") and o["qname"] != c["qname"]:
            renames.append((c["qname"], o["qname"]))
    renames.sort(key=lambda r: -len(r[0]))
    TRANSLATED = ("def", "default", "generated", "partition_of", "owned_by", "source", "using", "check", "type", "base")

    rename_to = dict(renames)
    rename_pattern = re.compile(r'(?<![\w".])(' + "|".join(re.escape(r[0]) for r in renames) + ")") if renames else None

    def translate(value: Any) -> Any:
        """One pass, so that a swap (a -> b, b -> a) maps each name once."""
        if not isinstance(value, str) or rename_pattern is None:
            return value

        def back(m: Any) -> Any:
            cur = m.group(1)
            following = value[m.end() : m.end() + 1]
            if not cur.endswith(".") and following and (following.isalnum() or following in '_"$'):
                return cur  # a longer name that begins with this one
            return rename_to[cur]

        return rename_pattern.sub(back, value)

    # Column renames print through the definitions of what stays on the table (a CHECK, an index,
    # a default, the columns of a foreign key): after the plan renames the columns back, those
    # print as in the baseline again, so they are compared with the current names mapped back.
    column_renames: dict[Any, Any] = {}  # base table key -> {current name: baseline name}
    for k, o in bmap.items():
        c = pair.get(k)
        if c is not None and o["kind"] == "column" and o["name"] != c["name"]:
            column_renames.setdefault(o["parent"], {})[c["name"]] = o["name"]
    _TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*|\s+|.""", re.S)

    def translate_columns(text: Any, table_key: Any) -> Any:
        """``text`` with the renamed columns of a table named as in the baseline: an identifier token
        (PostgreSQL prints those lower case or quoted) that is not qualified, not a cast's type and
        not a call."""
        mapping = column_renames.get(table_key)
        if not mapping or not isinstance(text, str):
            return text
        tokens = _TOKEN.findall(text)
        out = []
        for i, tok in enumerate(tokens):
            before = next((t for t in reversed(tokens[:i]) if not t.isspace()), "")
            after = next((t for t in tokens[i + 1 :] if not t.isspace()), "")
            name = unquote(tok)
            if (tok[0].isalpha() or tok[0] in '_"') and name in mapping and before not in (".", ":") and after != "(":
                out.append(qi(mapping[name]))
            else:
                out.append(tok)
        return "".join(out)

    def same_after_renames(o: Any, prop: Any, old: Any, new: Any) -> Any:
        """Whether a property differs only by the renames the plan undoes."""
        if prop not in TRANSLATED:
            return False
        new = translate(new)
        table = o["parent"] if o["kind"] in REL_CHILD else None
        if table and isinstance(new, str) and " REFERENCES " in new:  # a foreign key: two tables' columns
            mine, theirs = new.split(" REFERENCES ", 1)
            target = next((t for t in B if t["kind"] == "table" and theirs.startswith(t["qname"] + "(")), None)
            new = translate_columns(mine, table) + " REFERENCES " + translate_columns(theirs, target and target["key"])
        elif table:
            new = translate_columns(new, table)
        return old == new

    base_by_key = {o["key"]: o for o in B}
    cur_by_key = {o["key"]: o for o in C}
    REL_CHILD = {"column", "constraint", "index", "trigger", "policy"}
    REL_KW = {
        "table": "TABLE",
        "view": "VIEW",
        "sequence": "SEQUENCE",
        "index": "INDEX",
        "function": "FUNCTION",
        "schema": "SCHEMA",
        "type": "TYPE",
        "extension": "EXTENSION",
    }

    def kw(o: Any) -> Any:
        if o["kind"] == "view" and o["props"].get("relkind") == "m":
            return "MATERIALIZED VIEW"
        if o["kind"] == "function" and o["props"].get("prokind") == "p":
            return "PROCEDURE"
        if o["kind"] == "type" and o["props"].get("typtype") == "d":
            return "DOMAIN"
        return REL_KW[o["kind"]]

    def parent_base(o: Any) -> Any:
        return base_by_key.get(o["parent"]) if o.get("parent") else None

    def parent_paired(o_cur: Any) -> Any:
        """The baseline partner of a current object's parent, if any."""
        p = o_cur.get("parent")
        if not p:
            return None
        c = cur_by_key.get(p)
        return rpair.get(("table", p)) or rpair.get(("schema", p)) if c is not None else None

    def table_now(o_cur: Any) -> Any:
        """Name of a current object's table once the plan has renamed things back."""
        pb = parent_paired(o_cur)
        return pb["qname"] if pb else cur_by_key[o_cur["parent"]]["qname"]

    def schema_name_after(cur_parent_key: Any) -> Any:
        pb = rpair.get(("schema", cur_parent_key))
        if pb:
            return pb["name"]
        c = cur_by_key.get(cur_parent_key)
        return c["name"] if c else None

    items = []
    NAMED_IN_DDL = ("column", "constraint", "index", "trigger", "policy", "type", "sequence", "view", "table")

    def stmt(phase: Any, sql: Any, hazards: Any = (), transactional: Any = True, online: Any = False) -> Any:
        return {"phase": phase, "sql": sql, "hazards": list(hazards), "transactional": transactional, "online": online}

    def add(
        kind: Any,
        obj_b: Any,
        obj_c: Any,
        prop: Any,
        old: Any,
        new: Any,
        severity: Any,
        hazards: Any,
        plan: Any,
        detail: Any = "",
    ) -> Any:
        o = obj_b or obj_c
        oids = sorted(
            {int(x["oid"]) for x in (obj_b, obj_c) if x}
            | {int(x["parent"].split(":")[1]) for x in (obj_b, obj_c) if x and x["kind"] in REL_CHILD and x["parent"]}
        )
        items.append(
            {
                "kind": kind,
                "object_type": o["kind"],
                "identity": (obj_c or obj_b)["identity"],
                "baseline_identity": obj_b["identity"] if obj_b else None,
                "property": prop,
                "old": old,
                "new": new,
                "severity": severity,
                "hazards": list(hazards),
                "detail": detail,
                "plan": plan,
                "match_oids": oids,
                # the DDL that caused an item names the object: among the log rows of its table,
                # the one whose text holds the column's, index's or constraint's own name
                "match_names": sorted({x["name"] for x in (obj_b, obj_c) if x and x["kind"] in NAMED_IN_DDL}),
                "match_identities": sorted(
                    {x["identity"] for x in (obj_b, obj_c) if x}
                    | {
                        x["identity"].split(" on ", 1)[-1]
                        for x in (obj_b, obj_c)
                        if x and x["kind"] in ("constraint", "trigger")
                    }
                    | {x["identity"].rsplit(".", 1)[0] for x in (obj_b, obj_c) if x and x["kind"] == "column"}
                    | {x["props"]["partition_of"] for x in (obj_b, obj_c) if x and x["props"].get("partition_of")}
                ),
            }
        )

    # ---- code that a statement runs ----------------------------------------------------------------
    # Some ALTER TABLE forms evaluate an expression a role wrote, with the rights of whoever runs the
    # statement (ADD COLUMN's default, once, for the "missing value"; a generated column; a domain's
    # checks; VALIDATE of a CHECK; ALTER TYPE ... USING; the partition constraint of ATTACH), even on
    # an empty table (constant-folding IMMUTABLE calls).  CREATE INDEX and REFRESH run as the table's
    # owner and are not listed.  Under the pinned search_path, pg_get_expr() qualifies every function,
    # operator and type outside pg_catalog, so a qualified name is another role's code: the plan
    # avoids such evaluations where it can and flags the rest with a "runs code of role X" hazard.

    _IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
    _STRING = re.compile(r"'(?:[^']|'')*'")
    _CALL = re.compile(r'(?<![A-Za-z0-9_$."])(' + _IDENT + r")\.(" + _IDENT + r")\s*\(")
    _OPERATOR = re.compile(r"OPERATOR\((" + _IDENT + r")\.([^)\s]+)\)")
    _CAST = re.compile(r"::(" + _IDENT + r")\.(" + _IDENT + r")")
    _owner_plans = {}

    def unquote(ident: Any) -> Any:
        return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident

    def catalog_owners(what: Any, schema: Any, name: Any) -> Any:
        """Owners the catalog knows of a function, operator or type called schema.name."""
        queries = {
            "function": "SELECT DISTINCT pg_get_userbyid(p.proowner) AS o FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = $2",
            "operator": "SELECT DISTINCT pg_get_userbyid(p.oprowner) AS o FROM pg_operator p"
            " JOIN pg_namespace n ON n.oid = p.oprnamespace WHERE n.nspname = $1 AND p.oprname = $2",
            "type": "SELECT DISTINCT pg_get_userbyid(t.typowner) AS o FROM pg_type t"
            " JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typname = $2",
        }
        if what not in _owner_plans:
            _owner_plans[what] = plpy.prepare(queries[what], ["text", "text"])
        return [r["o"] for r in plpy.execute(_owner_plans[what], [schema, name])]

    def owners_of(what: Any, schema_q: Any, name_q: Any) -> Any:
        schema, name = unquote(schema_q), unquote(name_q)
        if what == "function":
            known = sorted(
                {
                    f["props"]["owner"]
                    for f in B
                    if f["kind"] == "function" and f["schema"] == schema and f["name"] == name
                }
            )
            if known:
                return known
        return sorted(set(catalog_owners(what, schema, name))) or [None]

    def expr_code(expr: Any) -> Any:
        """[(owner, label)] of the other roles' code an expression calls: qualified functions,
        operators and casts outside pg_catalog (a cast may run a cast function or a domain's checks)."""
        if not expr:
            return []
        text = _STRING.sub("''", expr)
        found = []
        for m in _CALL.finditer(text):
            if unquote(m.group(1)) != "pg_catalog":
                found += [(o, f"{m.group(1)}.{m.group(2)}()") for o in owners_of("function", m.group(1), m.group(2))]
        for m in _OPERATOR.finditer(text):
            if unquote(m.group(1)) != "pg_catalog":
                found += [
                    (o, f"OPERATOR({m.group(1)}.{m.group(2)})") for o in owners_of("operator", m.group(1), m.group(2))
                ]
        for m in _CAST.finditer(text):
            if unquote(m.group(1)) != "pg_catalog":
                found += [(o, f"cast to {m.group(1)}.{m.group(2)}") for o in owners_of("type", m.group(1), m.group(2))]
        return found

    _domain_plan: list[Any] = []

    def type_code(type_text: Any) -> Any:
        """A domain with CHECK constraints runs them on every value it takes, the first time even
        without a row (loading a domain constant-folds its checks)."""
        if not type_text or "." not in type_text:
            return []
        if not _domain_plan:
            _domain_plan.append(
                plpy.prepare(
                    "SELECT pg_get_userbyid(t.typowner) AS o FROM pg_type t WHERE t.oid = to_regtype($1)"
                    "   AND t.typtype = 'd' AND EXISTS (SELECT 1 FROM pg_constraint k"
                    "                                    WHERE k.contypid = t.oid AND k.contype = 'c')",
                    ["text"],
                )
            )
        try:
            rows = plpy.execute(_domain_plan[0], [type_text])
        except plpy.SPIError:
            return []
        return [(r["o"], f"checks of domain {type_text}") for r in rows]

    def runs_code(*found_lists: Any) -> Any:
        """One "runs code of role X: ..." hazard per role, in a stable order."""
        by_owner: dict[Any, Any] = {}
        for found in found_lists:
            for owner, label in found:
                labels = by_owner.setdefault(owner, [])
                if label not in labels:
                    labels.append(label)
        return [
            ("runs code of role " + qi(owner) if owner else "runs code of an unknown role") + ": " + ", ".join(labels)
            for owner, labels in sorted(by_owner.items(), key=lambda kv: kv[0] or "")
        ]

    def table_check_code(table_q: Any) -> Any:
        """Code of the CHECK constraints of a table (in the baseline or now): an ALTER TYPE re-validates
        those on the column; SET NOT NULL and ATTACH PARTITION constant-fold all of them, to see whether
        they already prove the new constraint."""
        return [
            x
            for k in B + C
            if k["kind"] == "constraint" and k["props"].get("type") == "c" and k["props"].get("_table") == table_q
            for x in expr_code(k["props"].get("def"))
        ]

    def partition_key_code(parent_q: Any) -> Any:
        """A partition key runs its expressions over the rows of a partition being attached."""
        for t in B + C:
            if t["kind"] == "table" and t["qname"] == parent_q and t["props"].get("partition_key"):
                return expr_code(t["props"]["partition_key"])
        return []

    # ---- statements that (re)create baseline objects ---------------------------------------------
    # Phases: functions are (re)created at 50, before everything that calls them: column defaults
    # with code (SET DEFAULT, 52), columns whose generated expression or default must be evaluated
    # (52, their NOT NULL at 53), constraints (60-63), indexes (61), views (70), triggers (71).

    def column_sql(col: Any, with_default: Any = True) -> Any:
        p = col["props"]
        s = col["qname"] + " " + p["type"]
        if p.get("collation"):
            s += " COLLATE " + p["collation"]
        if p.get("generated"):
            s += " GENERATED ALWAYS AS (" + p["generated"] + ") STORED"
        if p.get("identity"):
            s += " GENERATED " + ("ALWAYS" if p["identity"] == "a" else "BY DEFAULT") + " AS IDENTITY"
        if p.get("default") is not None and with_default:
            s += " DEFAULT " + p["default"]
        if p.get("notnull"):
            s += " NOT NULL"
        return s

    _CALLED = re.compile(r"(?:(" + _IDENT + r")\.)?(" + _IDENT + r")\s*\(")
    _volatile_plan: list[Any] = []

    def volatile(expr: Any) -> Any:
        """Whether an expression calls a volatile function (any overload of that name: the safe side),
        the case where ADD COLUMN ... DEFAULT computes a value for every row, a table rewrite."""
        if not expr:
            return False
        if not _volatile_plan:
            _volatile_plan.append(
                plpy.prepare(
                    "SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                    " WHERE n.nspname = coalesce($1, 'pg_catalog') AND p.proname = $2 AND p.provolatile = 'v') AS v",
                    ["text", "text"],
                )
            )
        for m in _CALLED.finditer(_STRING.sub("''", expr)):
            schema = unquote(m.group(1)) if m.group(1) else None
            if plpy.execute(_volatile_plan[0], [schema, unquote(m.group(2))])[0]["v"]:
                return True
        return False

    _TYPMOD = re.compile(r"^(.*)\((\d+)(?:,(\d+))?\)$")
    _cast_plan: list[Any] = []

    def rewrites(from_type: Any, to_type: Any) -> Any:
        """Whether ALTER COLUMN ... TYPE from ``from_type`` to ``to_type`` rewrites the table: not for a
        binary-coercible cast into an unconstrained type (varchar <-> text), a longer varchar or a
        numeric of more precision and the same scale; otherwise, on the safe side, yes."""
        fm, tm = _TYPMOD.match(from_type), _TYPMOD.match(to_type)
        f_base, t_base = (fm.group(1) if fm else from_type), (tm.group(1) if tm else to_type)
        if not _cast_plan:
            _cast_plan.append(
                plpy.prepare(
                    "SELECT s.t = d.t AS same, EXISTS (SELECT 1 FROM pg_cast c WHERE c.castsource = s.t"
                    "   AND c.casttarget = d.t AND c.castmethod = 'b') AS binary"
                    "  FROM (SELECT to_regtype($1) AS t) s, (SELECT to_regtype($2) AS t) d",
                    ["text", "text"],
                )
            )
        try:
            row = plpy.execute(_cast_plan[0], [f_base, t_base])[0]
        except plpy.SPIError:
            return True
        if row["same"] and f_base in ("character varying", "bit varying", "numeric"):
            if tm is None:
                return False  # the same type without a limit: nothing to check
            if fm is None:
                return True
            if f_base == "numeric":
                return not (int(tm.group(2)) >= int(fm.group(2)) and (tm.group(3) or "0") == (fm.group(3) or "0"))
            return int(tm.group(2)) < int(fm.group(2))
        if row["binary"] and not row["same"] and tm is None:
            return False
        return not (row["same"] and from_type == to_type)

    def generated_from(col: Any) -> Any:
        """Generated columns of the baseline table computed from ``col`` that exist now: PostgreSQL
        refuses to retype a column one of them uses, so they are dropped and added back around it
        (stored values, computed again)."""
        pattern = re.compile(r'(?<![\w".])' + re.escape(col["qname"]) + r'(?![\w"])')
        return [
            g
            for g in children(col["parent"], "column")
            if g["key"] != col["key"] and key(g) in pair and pattern.search(g["props"].get("generated") or "")
        ]

    def set_default(table: Any, col: Any) -> Any:
        """ALTER COLUMN ... SET DEFAULT stores the expression and evaluates nothing."""
        return stmt(52, f"ALTER TABLE {table} ALTER COLUMN {col['qname']} SET DEFAULT {col['props']['default']}")

    def add_column(table: Any, col: Any) -> Any:
        """Re-add a dropped column without evaluating its owner's code where that can be avoided.

        ADD COLUMN ... DEFAULT evaluates a non-volatile default once, at ALTER time, even on an empty
        table: a default that calls another role's code is added afterwards with SET DEFAULT, unless
        the column is NOT NULL (existing rows need its value: flagged, to be run as that role)."""
        p = col["props"]
        code = expr_code(p.get("default"))
        evaluates = bool(p.get("generated")) and bool(expr_code(p["generated"]))
        split = bool(code) and not p.get("notnull")
        plain = dict(col, props=dict(p, notnull=False))
        hazards = [
            "data loss: the old values cannot be restored",
            *runs_code([] if split else code, expr_code(p.get("generated")), type_code(p.get("type"))),
        ]
        if p.get("generated") or p.get("identity") or (not split and volatile(p.get("default"))):
            hazards[1:1] = ["table rewrite", "long exclusive lock"]  # a value computed for every row
        phase = 52 if (code and not split) or evaluates else 40
        if p.get("generated") and phase == 40:
            phase = 46  # computed from other columns: after the plan has given them their types back
        plan = [
            stmt(phase, f"ALTER TABLE {table} ADD COLUMN {column_sql(plain, with_default=not split)}", hazards=hazards)
        ]
        if split:
            plan.append(set_default(table, col))
        if p.get("notnull") and not p.get("identity"):
            plan += not_null_route(table, col["qname"], col["name"], phase=43 if phase == 40 else 53)
        return plan

    def not_null_route(table: Any, col_q: Any, col_name: Any, phase: Any = 43) -> Any:
        cname = qi(("asymm_nn_" + col_name)[:63])
        return [
            stmt(
                phase, f"ALTER TABLE {table} ADD CONSTRAINT {cname} CHECK ({col_q} IS NOT NULL) NOT VALID", online=True
            ),
            stmt(phase, f"ALTER TABLE {table} VALIDATE CONSTRAINT {cname}", online=True),
            stmt(
                phase,
                f"ALTER TABLE {table} ALTER COLUMN {col_q} SET NOT NULL",
                online=True,
                hazards=runs_code(table_check_code(table)),
            ),
            stmt(phase, f"ALTER TABLE {table} DROP CONSTRAINT {cname}"),
        ]

    def constraint_def(k: Any) -> Any:
        """pg_get_constraintdef() ends a constraint not yet validated with " NOT VALID": that is
        the ``validated`` property, not a new definition (a CHECK re-added NOT VALID is the same
        constraint waiting for one VALIDATE)."""
        d = k["props"].get("def")
        return d[: -len(" NOT VALID")] if isinstance(d, str) and d.endswith(" NOT VALID") else d

    def create_constraint(k: Any, fresh_table: Any = False) -> Any:
        p = dict(k["props"], **{"def": constraint_def(k)})
        t = p["_table"]
        if p["type"] in ("p", "u") and p.get("_index_def") and not p.get("_partitioned") and not fresh_table:
            idx = p["_index_def"].replace(" INDEX ", " INDEX CONCURRENTLY ", 1)
            idx_name = idx.split(" CONCURRENTLY ", 1)[1].split(" ON ", 1)[0]
            return [
                stmt(60, idx, transactional=False, online=True),
                stmt(
                    60,
                    f"ALTER TABLE {t} ADD CONSTRAINT {k['qname']} "
                    f"{'PRIMARY KEY' if p['type'] == 'p' else 'UNIQUE'} USING INDEX {idx_name}",
                    online=True,
                ),
            ]
        phase = 63 if p["type"] == "f" else (60 if p["type"] in ("p", "u", "x") else 62)
        # A CHECK is added NOT VALID (which evaluates nothing) and then validated, even on a table the
        # plan just created: validating prepares the expression, which constant-folds its calls.
        # (A validated CHECK of a new plain table goes inline into its CREATE TABLE instead.)
        if p["type"] == "c" or (p["type"] == "f" and not fresh_table and not p.get("_partitioned")):
            out = [stmt(phase, f"ALTER TABLE {t} ADD CONSTRAINT {k['qname']} {p['def']} NOT VALID", online=True)]
            if p.get("validated"):
                out.append(
                    stmt(
                        phase,
                        f"ALTER TABLE {t} VALIDATE CONSTRAINT {k['qname']}",
                        online=True,
                        hazards=runs_code(expr_code(p["def"])) if p["type"] == "c" else (),
                    )
                )
            return out
        return [
            stmt(
                phase,
                f"ALTER TABLE {t} ADD CONSTRAINT {k['qname']} {p['def']}"
                + ("" if p.get("validated", True) else " NOT VALID"),
                hazards=() if fresh_table else ("long exclusive lock",),
            )
        ]

    def replace_constraint(o: Any, c: Any) -> Any:
        """A CHECK or foreign key with another definition: the baseline's is added NOT VALID and
        validated under a temporary name first, then the current one dropped and the new one
        renamed, so that a failing step (rows that violate it) leaves the table with what it had."""
        p = o["props"]
        if p["type"] not in ("c", "f") or p.get("_partitioned"):
            return [stmt(13, f"ALTER TABLE {c['props']['_table']} DROP CONSTRAINT {c['qname']}"), *create_constraint(o)]
        table, tmp = p["_table"], qi(o["name"][:50] + "_asymm_new")  # the table has its name back by then
        built = create_constraint(dict(o, qname=tmp))
        phase = built[-1]["phase"]
        return [
            *built,
            stmt(phase, f"ALTER TABLE {table} DROP CONSTRAINT {c['qname']}"),
            stmt(phase, f"ALTER TABLE {table} RENAME CONSTRAINT {tmp} TO {o['qname']}"),
        ]

    def create_index(i: Any, fresh_table: Any = False) -> Any:
        p = i["props"]
        if p.get("_partitioned"):
            # pg_get_indexdef() prints a partitioned index ON ONLY its table (how pg_dump builds it,
            # attaching the partitions' indexes one by one): without ONLY, the partitions get theirs.
            ddl = p["_ddl"].replace(" ON ONLY ", " ON ", 1)
            return [stmt(61, ddl, hazards=() if fresh_table else ("blocks writes while building",))]
        if fresh_table:
            return [stmt(61, p["_ddl"])]
        return [stmt(61, p["_ddl"].replace(" INDEX ", " INDEX CONCURRENTLY ", 1), transactional=False, online=True)]

    POLICY_COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}

    def create_policy(o: Any) -> Any:
        """CREATE POLICY evaluates nothing: its expressions run when rows are read or written."""
        p = o["props"]
        sql = (
            f"CREATE POLICY {o['qname']} ON {p['_table']} AS {'PERMISSIVE' if p['permissive'] else 'RESTRICTIVE'}"
            f" FOR {POLICY_COMMANDS[p['command']]} TO {', '.join(p.get('roles') or ['PUBLIC'])}"
        )
        if p.get("using"):
            sql += f" USING ({p['using']})"
        if p.get("check"):
            sql += f" WITH CHECK ({p['check']})"
        return stmt(72, sql, hazards=("privilege change",))

    def row_security(table: Any, prop: Any, value: Any) -> Any:
        if prop == "row_security":
            return stmt(72, f"ALTER TABLE {table} {'ENABLE' if value else 'DISABLE'} ROW LEVEL SECURITY")
        return stmt(72, f"ALTER TABLE {table} {'FORCE' if value else 'NO FORCE'} ROW LEVEL SECURITY")

    def policies_tracked(base_table_key: Any) -> Any:
        """Whether the baseline recorded this table's policies (snapshots before 0.3.0 did not)."""
        t = base_by_key.get(base_table_key)
        return t is not None and "row_security" in t["props"]

    _KEY = _IDENT + r"(?: (?:ASC|DESC))?(?: NULLS (?:FIRST|LAST))?"
    _PLAIN_UNIQUE = re.compile(
        r"^USING btree \(("
        + _KEY
        + r"(?:, "
        + _KEY
        + r")*)\)(?: INCLUDE \([^()]*\))?( NULLS NOT DISTINCT)?(?: WHERE (.*))?$"
    )

    def unique_precheck(o: Any) -> Any:
        """A check that stops the plan before a UNIQUE build meets duplicate rows (a failed concurrent
        build leaves an INVALID index behind): only for keys of plain columns of built-in types and a
        predicate that calls no role's code, so that it runs nothing but PostgreSQL's own operators."""
        p = o["props"]
        m = _PLAIN_UNIQUE.match(p.get("def") or "")
        if not m or not o.get("parent") or expr_code(m.group(3)):
            return []
        keys = [re.match(_IDENT, k.strip()).group(0) for k in m.group(1).split(", ")]  # type: ignore[union-attr]
        types = {c["qname"]: c["props"]["type"] for c in children(o["parent"], "column")}
        if any(k not in types or "." in types[k] for k in keys):
            return []
        where = [f"{k} IS NOT NULL" for k in keys] if not m.group(2) else []
        if m.group(3):
            where.append(f"({m.group(3)})")
        table = p["_table"]
        query = (
            f"SELECT FROM {table}"
            + (" WHERE " + " AND ".join(where) if where else "")
            + (f" GROUP BY {', '.join(keys)} HAVING count(*) > 1")
        )
        message = ql(
            f"{table} has duplicate keys ({', '.join(keys)}): the UNIQUE index {o['name']} cannot be built".replace(
                "%", "%%"
            )
        )
        hint = ql("Remove the duplicates, then run the plan again; nothing was changed.")
        body = f"BEGIN IF EXISTS ({query}) THEN RAISE EXCEPTION {message} USING HINT = {hint}; END IF; END"
        tag = "asymm_check"
        while f"${tag}$" in body:  # a name may hold the dollar quote: it must not end the body early
            tag += "_"
        return [dict(stmt(61, f"DO ${tag}$ {body} ${tag}$", hazards=("scans the table",)), seq=-1)]

    def replace_index(o: Any) -> Any:
        """An index with the baseline's name and another definition: the baseline's is built under a
        temporary name first, then the current one is dropped and the new one takes the name (as
        pg-schema-diff does), so that the table is never without the index.  A UNIQUE build that
        meets duplicate rows fails there, before anything was dropped."""
        p = o["props"]
        sch, name = qi(o["schema"]), o["name"]
        tmp = name[:50] + "_asymm_new"
        ddl = p["_ddl"].replace(f" INDEX {qi(name)} ON ", f" INDEX {qi(tmp)} ON ", 1)
        build = create_index(dict(o, props=dict(p, _ddl=ddl)))
        if p.get("unique"):
            build[0]["hazards"].append("fails if existing rows are duplicates (the current index stays)")
            build = unique_precheck(o) + build
        drop = drop_relation(dict(o, qname=f"{sch}.{qi(name)}"))[0]
        return [*build, dict(drop, phase=61), stmt(61, f"ALTER INDEX {sch}.{qi(tmp)} RENAME TO {qi(name)}")]

    def grants(frm: Any, to: Any, head: Any, target: Any, phase: Any, hazards: Any = ()) -> Any:
        """REVOKE and GRANT statements (``head`` first) that take ACL entries ``frm`` to ``to``."""
        out = []
        for entry in sorted(set(frm) - set(to)):
            grantee, priv = entry.split(":")[:2]
            out.append(stmt(phase, f"{head}REVOKE {priv} ON {target} FROM {grantee}", hazards=hazards))
        for entry in sorted(set(to) - set(frm)):
            parts = entry.split(":")
            grant = f"{head}GRANT {parts[1]} ON {target} TO {parts[0]}" + (
                " WITH GRANT OPTION" if len(parts) > 2 else ""
            )
            out.append(stmt(phase, grant, hazards=hazards))
        return out

    def acl_plan(o: Any, old: Any, new: Any, phase: Any = 81) -> Any:
        target = ("TABLE " if o["kind"] == "view" else kw(o) + " ") + o["qname"]
        return grants(new, old, "", target, phase)

    # ---- types, extensions, default privileges ----------------------------------------------------
    TYPE_ORDER = {"e": 0, "d": 1, "c": 2}  # created in this order (a domain over an enum, ...), dropped in reverse
    DEFACL_ON = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}

    def create_type(o: Any) -> Any:
        p, q = o["props"], o["qname"]
        later = []
        if p["typtype"] == "e":
            sql = f"CREATE TYPE {q} AS ENUM (" + ", ".join(ql(x) for x in p["labels"] or []) + ")"
        elif p["typtype"] == "c":
            sql = f"CREATE TYPE {q} AS (" + ", ".join(f"{qi(n)} {t}" for n, t in p["attributes"] or []) + ")"
        else:
            sql = f"CREATE DOMAIN {q} AS {p['base']}"
            if p.get("default") is not None:
                sql += f" DEFAULT {p['default']}"
            if p.get("notnull"):
                sql += " NOT NULL"
            for name, definition in sorted((p.get("checks") or {}).items()):
                if definition.endswith(" NOT VALID"):  # CREATE DOMAIN takes no NOT VALID
                    later.append(dict(stmt(31, f"ALTER DOMAIN {q} ADD CONSTRAINT {qi(name)} {definition}"), seq=5))
                else:
                    sql += f" CONSTRAINT {qi(name)} {definition}"
        return [dict(stmt(31, sql), seq=1 + TYPE_ORDER[p["typtype"]]), *later]

    def columns_of_type(type_q: Any) -> Any:
        """Baseline columns of a type or of its array that exist now (those the plan adds again come
        later), not the partitions' (their parent's ALTER reaches them)."""
        return [
            x
            for x in B
            if x["kind"] == "column"
            and key(x) in pair
            and x["props"].get("type") in (type_q, type_q + "[]")
            and not x["props"].get("_inherited")
            and not x["props"].get("generated")
        ]

    _types_rebuilt: set[Any] = set()

    def recreate_type(o: Any) -> Any:
        """A type PostgreSQL cannot alter back (an enum value removed, a domain's base type): the
        baseline's definition is built beside the current one, its columns moved over through text,
        and the current type dropped last.  With the types (phase 31), after the renames back and
        before the tables and columns the plan creates again, which then get the rebuilt type."""
        sch, name = qi(o["schema"]), o["name"]
        old_q = f"{sch}.{qi(name[:40] + '_asymm_old')}"
        plan = [dict(stmt(31, f"ALTER TYPE {o['qname']} RENAME TO {qi(name[:40] + '_asymm_old')}"), seq=7)]
        plan += [dict(s2, phase=31, seq=8) for s2 in create_type(o)]
        checks = (o["props"].get("checks") or {}).values() if o["props"].get("typtype") == "d" else []
        for col in columns_of_type(o["qname"]):
            t, cq, array = base_by_key[col["parent"]]["qname"], col["qname"], col["props"]["type"].endswith("[]")
            drops, creates = recreate_views(col["key"], [])
            plan += drops
            if col["props"].get("default") is not None:
                plan.append(dict(stmt(31, f"ALTER TABLE {t} ALTER COLUMN {cq} DROP DEFAULT"), seq=9))
                plan.append(set_default(t, col))
            via = "text[]" if array else "text"
            plan.append(
                dict(
                    stmt(
                        31,
                        f"ALTER TABLE {t} ALTER COLUMN {cq} TYPE {col['props']['type']} USING {cq}::{via}::"
                        f"{col['props']['type']}",
                        hazards=(
                            "table rewrite",
                            "long exclusive lock",
                            "fails if rows hold values the baseline lacks",
                            *runs_code(*[expr_code(d) for d in checks]),
                        ),
                    ),
                    seq=10,
                )
            )
            plan += creates
        plan.append(dict(stmt(92, f"DROP TYPE {old_q}"), seq=3 - TYPE_ORDER[o["props"]["typtype"]]))
        return plan + ownership_after_create(o)

    def enum_plan(o: Any, old: Any, new: Any) -> Any:
        """Values put back with ADD VALUE where the current ones keep the baseline's order, renamed
        where only names differ, else the type is re-created."""
        old, new, q = old or [], new or [], o["qname"]
        if set(new) <= set(old) and [x for x in old if x in new] == new:
            plan, present = [], list(new)
            for i, label in enumerate(old):
                if label in present:
                    continue
                before = [x for x in old[:i] if x in present]
                where = f" AFTER {ql(before[-1])}" if before else (f" BEFORE {ql(present[0])}" if present else "")
                present.append(label)
                # outside a transaction block: a value added in one cannot be used before it commits
                plan.append(dict(stmt(31, f"ALTER TYPE {q} ADD VALUE {ql(label)}{where}", transactional=False), seq=4))
            return plan
        if len(old) == len(new) and not (set(old) - set(new)) & set(new):
            return [
                dict(stmt(31, f"ALTER TYPE {q} RENAME VALUE {ql(n)} TO {ql(b)}"), seq=4)
                for b, n in zip(old, new, strict=True)
                if b != n
            ]
        return recreate_type(o)

    def attributes_plan(o: Any, old: Any, new: Any) -> Any:
        """A composite type's attributes from the first one that differs: dropped and re-added in the
        baseline's order (ALTER ATTRIBUTE ... TYPE is refused while a column uses the type)."""
        old, new = old or [], [[n, translate(t)] for n, t in new or []]
        same = 0
        while same < min(len(old), len(new)) and old[same] == new[same]:
            same += 1
        q = o["qname"]
        plan = [
            dict(stmt(31, f"ALTER TYPE {q} DROP ATTRIBUTE {qi(n)} CASCADE", hazards=("data loss",)), seq=4)
            for n, _ in new[same:]
        ]
        return plan + [
            dict(stmt(31, f"ALTER TYPE {q} ADD ATTRIBUTE {qi(n)} {t} CASCADE"), seq=4) for n, t in old[same:]
        ]

    def domain_plan(o: Any, prop: Any, old: Any, new: Any) -> Any:
        q = o["qname"]
        if prop == "notnull":
            return [stmt(43, f"ALTER DOMAIN {q} {'SET' if old else 'DROP'} NOT NULL")]
        if prop == "default":
            return [
                stmt(52, f"ALTER DOMAIN {q} SET DEFAULT {old}" if old is not None else f"ALTER DOMAIN {q} DROP DEFAULT")
            ]
        old, new = old or {}, new or {}
        # after the renames and moves back (phase 21), which give the domain its baseline name
        plan = [
            dict(stmt(31, f"ALTER DOMAIN {q} DROP CONSTRAINT {qi(n)}"), seq=6)
            for n in sorted(new)
            if old.get(n) != new[n]
        ]
        return plan + [
            stmt(
                60,
                f"ALTER DOMAIN {q} ADD CONSTRAINT {qi(n)} {d}",
                hazards=()
                if d.endswith(" NOT VALID")
                else ("scans every column of the domain", *runs_code(expr_code(d))),
            )
            for n, d in sorted(old.items())
            if new.get(n) != d
        ]

    def default_acl_plan(o: Any, frm: Any, to: Any) -> Any:
        """ALTER DEFAULT PRIVILEGES from entries ``frm`` to entries ``to``: once the schemas exist and before
        the plan creates anything, so that what it creates starts with the baseline's defaults."""
        p = o["props"]
        head = f"ALTER DEFAULT PRIVILEGES FOR ROLE {p['_role']} " + (
            f"IN SCHEMA {qi(o['schema'])} " if o.get("parent") else ""
        )
        steps = grants(frm, to, head, DEFACL_ON[p["_objtype"]], 30, hazards=("privilege change",))
        return [dict(x, seq=3) for x in steps]

    def extension_plan(o: Any, prop: Any, old: Any, new: Any) -> Any:
        q = o["qname"]
        if prop == "schema":
            return [stmt(21, f"ALTER EXTENSION {q} SET SCHEMA {qi(old)}", hazards=("breaks dependents",))]
        hazards = ["extension upgrade", "runs the extension's update scripts"]
        if same_db:
            paths = plpy.execute(
                plpy.prepare(
                    "SELECT count(*) AS n FROM pg_catalog.pg_extension_update_paths($1)"
                    " WHERE source = $2 AND target = $3 AND path IS NOT NULL",
                    ["name", "text", "text"],
                ),
                [o["name"], new, old],
            )
            if not paths[0]["n"]:
                hazards.append(f"no update path from {new} to {old} is installed: this step fails")
        return [dict(stmt(30, f"ALTER EXTENSION {q} UPDATE TO {ql(old)}", hazards=hazards), seq=2)]

    def children(base_parent_key: Any, kind: Any) -> Any:
        return [o for o in B if o.get("parent") == base_parent_key and o["kind"] == kind]

    ACL_KIND = {"table": "r", "view": "r", "sequence": "s", "function": "f", "schema": "n", "type": "T"}

    def ownership_after_create(o: Any) -> Any:
        """A re-created object starts with the creator as owner and default privileges: put back
        the baseline owner and grants."""
        p = o["props"]
        if "owner" not in p:
            return []
        out = []
        me = plpy.execute("SELECT current_user AS u")[0]["u"]
        if p["owner"] != me:
            out.append(stmt(80, f"ALTER {kw(o)} {o['qname']} OWNER TO {qi(p['owner'])}"))
        default = json.loads(
            plpy.execute(
                "SELECT asymm._drift_acl(acldefault(%s, %s::regrole))::text AS a"  # noqa: UP031 (quoted by ql)
                % (ql(ACL_KIND[o["kind"]]), ql(p["owner"]))
            )[0]["a"]
        )
        # ... and the default privileges the plan has put back (phase 30) for the creator, whose
        # entries OWNER TO hands to the owner
        objtype = {"table": "r", "view": "r", "sequence": "S", "function": "f", "type": "T", "schema": "n"}[o["kind"]]
        mine = [
            d
            for d in B
            if d["kind"] == "default_acl"
            and d["props"]["_role"] == qi(me)
            and d["props"]["_objtype"] == objtype
            and d.get("parent") in (None, o.get("parent"))
        ]
        for d in sorted(mine, key=lambda d: d.get("parent") is not None):  # everywhere replaces the built-in
            entries = {qi(p["owner"]) + e[len(qi(me)) :] if e.split(":")[0] == qi(me) else e for e in d["props"]["acl"]}
            default = sorted(entries if d.get("parent") is None else set(default) | entries)
        return out + acl_plan(o, p.get("acl") or [], default)

    TRIGGER_STATE = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}

    def create_trigger(t: Any) -> Any:
        """CREATE TRIGGER makes it enabled: a baseline trigger that was not gets its state back."""
        p = t["props"]
        out = [stmt(71, p["_ddl"])]
        if p.get("enabled", "O") != "O":
            out.append(stmt(71, f"ALTER TABLE {p['_table']} {TRIGGER_STATE[p['enabled']]} TRIGGER {t['qname']}"))
        return out

    def create_relation(o: Any) -> Any:
        return create_relation_only(o) + ownership_after_create(o)

    def create_relation_only(o: Any) -> Any:
        p = o["props"]
        if o["kind"] == "table":
            inline, later = [], []
            if p.get("partition_of"):
                sql = f"CREATE TABLE {o['qname']} PARTITION OF {p['partition_of']} {p['partition_bound']}"
                hazards = runs_code(partition_key_code(p["partition_of"]))
            else:
                cols = sorted(children(o["key"], "column"), key=lambda c: c["props"]["_attnum"])
                # CREATE TABLE evaluates no default or CHECK, but a default must not name a
                # function before the plan re-creates it (phase 50): those are set afterwards.
                later = [c for c in cols if expr_code(c["props"].get("default"))]
                inline = [
                    k
                    for k in children(o["key"], "constraint")
                    if k["props"]["type"] == "c" and k["props"].get("validated")
                ]
                sql = (
                    f"CREATE {'UNLOGGED ' if p.get('persistence') == 'u' else ''}TABLE {o['qname']} ("
                    + ", ".join(
                        [column_sql(c, with_default=c not in later) for c in cols]
                        + [f"CONSTRAINT {k['qname']} {k['props']['def']}" for k in inline]
                    )
                    + ")"
                )
                if p.get("partition_key"):
                    sql += " PARTITION BY " + p["partition_key"]
                # ... but it plans a generated expression and a partition key (checking that they are
                # immutable), which constant-folds their calls.
                hazards = runs_code(
                    expr_code(p.get("partition_key")), *[expr_code(c["props"].get("generated")) for c in cols]
                )
            phase = 32 if not p.get("partition_of") else 33
            out = [stmt(phase, sql, hazards=hazards)] + [set_default(o["qname"], c) for c in later]
            for k in children(o["key"], "constraint"):
                if k not in inline:
                    out += create_constraint(k, fresh_table=True)
            for i in children(o["key"], "index"):
                out += create_index(i, fresh_table=True)
            for t in children(o["key"], "trigger"):
                out += create_trigger(t)
            for y in children(o["key"], "policy"):
                out.append(create_policy(y))
            for flag in ("row_security", "force_row_security"):
                if p.get(flag):
                    out.append(row_security(o["qname"], flag, True))
            return out
        if o["kind"] == "view":
            query = p["def"].rstrip().rstrip(";")
            if p["relkind"] == "m":
                # WITH NO DATA, filled by REFRESH once its owner is back: CREATE ... WITH DATA would run
                # the view's query (its functions) with the rights of whoever applies the plan, a
                # superuser; REFRESH runs it as the view's owner, in a security-restricted operation.
                return [
                    dict(
                        stmt(70, f"CREATE MATERIALIZED VIEW {o['qname']} AS {query} WITH NO DATA"),
                        seq=view_depth(o),
                    ),
                    stmt(82, f"REFRESH MATERIALIZED VIEW {o['qname']}", hazards=("long exclusive lock",)),
                ]
            return [dict(stmt(70, f"CREATE VIEW {o['qname']} AS {p['def'].rstrip(';')}"), seq=view_depth(o))]
        if o["kind"] == "sequence":
            out = [
                stmt(
                    31,
                    f"CREATE SEQUENCE {o['qname']} AS {p['type']} INCREMENT BY {p['increment']}"
                    f" MINVALUE {p['min']} MAXVALUE {p['max']} START WITH {p['start']} CACHE {p['cache']}"
                    + (" CYCLE" if p["cycle"] else ""),
                )
            ]
            if p.get("owned_by"):
                out.append(stmt(45, f"ALTER SEQUENCE {o['qname']} OWNED BY {p['owned_by']}"))
            return out
        if o["kind"] == "function":
            return [stmt(50, o["props"]["_ddl"])]
        if o["kind"] == "schema":
            return [stmt(30, f"CREATE SCHEMA {o['qname']}")]
        if o["kind"] == "type":
            return create_type(o)
        if o["kind"] == "extension":
            return [
                dict(
                    stmt(
                        30,
                        f"CREATE EXTENSION IF NOT EXISTS {o['qname']} WITH SCHEMA {qi(p['schema'])}"
                        f" VERSION {ql(p['version'])}",
                        hazards=("runs the extension's install script",),
                    ),
                    seq=1,
                )
            ]
        if o["kind"] == "default_acl":
            return default_acl_plan(o, p["_default"], p["acl"])
        raise ValueError(o["kind"])

    def drop_relation(o: Any, for_added: Any = True) -> Any:
        p = o["props"]
        if o["kind"] == "table":
            return [stmt(91, f"DROP TABLE {o['qname']}", hazards=("data loss",))]
        if o["kind"] == "view":  # CASCADE: what depends on it is dropped (and re-created) too
            return [stmt(11, f"DROP {kw(o)} IF EXISTS {o['qname']} CASCADE")]
        if o["kind"] == "sequence":
            # a sequence owned by a column goes with it when the plan drops that column first
            exists = " IF EXISTS" if p.get("owned_by") else ""
            return [stmt(92, f"DROP SEQUENCE{exists} {o['qname']}", hazards=("data loss",))]
        if o["kind"] == "function":
            return [stmt(15, f"DROP {kw(o)} {o['qname']}")]
        if o["kind"] == "schema":
            return [stmt(93, f"DROP SCHEMA {o['qname']}")]
        if o["kind"] == "type":  # after the columns (90) and tables (91) that use it
            return [dict(stmt(92, f"DROP {kw(o)} {o['qname']}"), seq=3 - TYPE_ORDER[p["typtype"]])]
        if o["kind"] == "extension":
            return [dict(stmt(92, f"DROP EXTENSION {o['qname']}", hazards=("drops the extension's objects",)), seq=9)]
        if o["kind"] == "default_acl":
            return default_acl_plan(o, p["acl"], p["_default"])
        if o["kind"] == "index":
            if p.get("_partitioned"):
                return [stmt(14, f"DROP INDEX {o['qname']}")]
            return [stmt(14, f"DROP INDEX CONCURRENTLY {o['qname']}", transactional=False, online=True)]
        raise ValueError(o["kind"])

    # ---- views and what depends on them ---------------------------------------------------------------
    # A view is re-created only when PostgreSQL requires it: its query changed (not merely printed
    # with names that the plan renames back), or a column under it changes type.  Then the views
    # that depend on it, transitively, are dropped with it (CASCADE) and re-created after it, in
    # dependency order (the "seq" of phase 70 is a view's depth).

    def mentions(text: Any, qname: Any) -> Any:
        return isinstance(text, str) and re.search(r'(?<![\w".])' + re.escape(qname) + r'(?![\w"])', text) is not None

    base_views = [v for v in B if v["kind"] == "view"]
    _depth: dict[Any, Any] = {}

    def view_depth(v: Any) -> Any:
        if v["key"] not in _depth:
            _depth[v["key"]] = 0  # a cycle cannot happen; this stops one anyway
            under = [w for w in base_views if w["key"] != v["key"] and mentions(v["props"].get("def"), w["qname"])]
            _depth[v["key"]] = 1 + max((view_depth(w) for w in under), default=-1)
        return _depth[v["key"]]

    def dependents(qname: Any) -> Any:
        """Baseline views that read ``qname``, transitively, that exist now (a removed one is
        re-created by its own item)."""
        out: list[Any] = []
        todo = [qname]
        while todo:
            name = todo.pop()
            for v in base_views:
                if v not in out and key(v) in pair and mentions(v["props"].get("def"), name):
                    out.append(v)
                    todo.append(v["qname"])
        return out

    relation_names = {}  # current bare name of a renamed table or view -> its baseline name
    for k, b in bmap.items():
        cur = pair.get(k)
        if cur is not None and b["kind"] in ("table", "view") and b["name"] != cur["name"]:
            relation_names[cur["name"]] = b["name"]
    tables_by_name: dict[Any, Any] = {}  # baseline bare name -> the tables of that name
    for b in B:
        if b["kind"] == "table":
            tables_by_name.setdefault(b["name"], []).append(b["key"])

    def same_view_query(o: Any, c: Any) -> Any:
        """Whether a view's current query is the baseline's once the plan's renames are undone: a
        renamed table prints through its qualified name, its alias (the table's name) and its
        columns, and a renamed column keeps the view's output name with an "AS"."""
        old, new = o["props"].get("def"), translate(c["props"].get("def"))
        if old == new or not isinstance(new, str):
            return old == new
        tokens = _TOKEN.findall(new)
        out: list[Any] = []
        for i, tok in enumerate(tokens):
            name = unquote(tok)
            is_ident = tok[0].isalpha() or tok[0] in '_"'
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            prev = tokens[i - 1] if i else ""
            if is_ident and nxt == "." and prev != "." and name in relation_names:
                out.append(qi(relation_names[name]))  # an alias that is a renamed relation's name
            elif is_ident and prev == "." and i >= 2:
                qualifier = unquote(tokens[i - 2])
                qualifier = relation_names.get(qualifier, qualifier)
                keys = tables_by_name.get(qualifier, [])
                mapping = column_renames.get(keys[0], {}) if len(keys) == 1 else {}
                out.append(qi(mapping[name]) if name in mapping and nxt != "(" else tok)
            else:
                out.append(tok)
        new = "".join(out)
        new = re.sub(r'(\.("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)) AS \2(?![\w"])', r"\1", new)
        return old == new

    _recreated: set[Any] = set()
    _moves: dict[Any, Any] = {}  # base key of a moved or renamed object -> the plan that does it

    def forget_moves_of_recreated() -> None:
        """An object the plan drops and re-creates (a view, a constraint, a trigger) is created under
        its baseline name: moving or renaming the current one (dropped by then) would fail."""
        doomed = {id(x) for k in _recreated for x in _moves.get(k, [])}
        _renames[:] = [r for r in _renames if id(r[4]) not in doomed]
        for item in items:
            item["plan"][:] = [x for x in item["plan"] if id(x) not in doomed]

    def recreate_views(cause: Any, changed: Any) -> Any:
        """Drop (phase 11) and re-create (70) the views in ``changed`` and every view that depends on
        them or on the table of the column ``cause``, each once in the whole plan."""
        if changed:
            roots = list(changed)
        else:
            col = base_by_key[cause]
            table = base_by_key[col["parent"]]["qname"]
            roots = [v for v in base_views if key(v) in pair and mentions(v["props"].get("def"), table)]
        views = []
        for v in roots:
            for w in [v, *dependents(v["qname"])]:
                if w not in views:
                    views.append(w)
        drops, creates = [], []
        for v in views:
            if v["key"] in _recreated:  # by an earlier item: the same baseline definition
                continue
            _recreated.add(v["key"])
            now = pair[key(v)]
            drops.append(stmt(11, f"DROP {kw(now)} IF EXISTS {now['qname']} CASCADE", hazards=("breaks dependents",)))
            creates += create_relation(v)
        return drops, creates

    # ---- renames, planned as a permutation ---------------------------------------------------------
    # A rename back can need a name that another object holds now (a swap of a and b through a
    # temporary name, a chain a -> b -> c, a column renamed away and a new one given its name).
    # Each rename is registered with its scope (the namespace its name lives in) and planned at the
    # end by schedule_renames(): free targets first, cycles broken through a temporary name, and a
    # name held by an object the plan drops moved out of the way first.

    _renames: list[Any] = []  # [scope, current name, baseline name, render(from, to), its stmt]
    _droppable: dict[Any, Any] = {}  # (scope, name) -> (drop stmt, render(from, to), drop_sql(name))

    def renamer(before: Any, between: Any) -> Any:
        """render(from, to) of a rename statement: ``before`` "from" ``between`` "to"."""
        return lambda frm, to: before + qi(frm) + between + qi(to)

    def dropper(before: Any) -> Any:
        return lambda name: before + qi(name)

    _temporaries: set[Any] = set()  # every temporary name of the plan, whatever its scope

    def temporary(taken: Any) -> Any:
        n = 1
        while f"asymm_rename_{n}" in taken or f"asymm_rename_{n}" in _temporaries:
            n += 1
        taken.add(f"asymm_rename_{n}")
        _temporaries.add(f"asymm_rename_{n}")
        return f"asymm_rename_{n}"

    _reborn: set[Any] = set()  # base keys of objects the plan drops and creates again (besides _recreated)

    def annotations_back() -> None:
        """Dropping an object removes its annotations (asymm_annotations_sql_drop): for the objects the
        plan drops and creates again, a last step writes their annotations back, at their baseline
        addresses (the data of asymm.annotation_entries, no code)."""
        if not same_db:
            return
        address: dict[Any, Any] = {}  # (objid, objsubid) now -> baseline address
        for o in B:
            c = pair.get(key(o))
            if c is None or o["key"] not in (_recreated | _reborn):
                continue
            if o["kind"] in ("table", "view", "index", "function"):
                address[(int(c["oid"]), 0)] = [o["schema"], o["name"]]
            elif o["kind"] == "column":
                table = base_by_key[o["parent"]]
                address[(int(c["oid"]), int(c["props"]["_attnum"]))] = [table["schema"], table["name"], o["name"]]
        if not address:
            return
        rows = plpy.execute(
            plpy.prepare(
                "SELECT e.target_type, e.target_args, e.query_text, e.symbol, e.scope, e.regime, e.cost, e.lineage,"
                " e.source, e.confidence, e.evidence, l.objid, l.objsubid FROM asymm.annotation_entries e"
                " CROSS JOIN LATERAL asymm._locate(e.id, e.target_type, e.target_names, e.target_args) l"
                " WHERE e.derived_from IS NULL AND l.objid = ANY ($1) ORDER BY e.created_at, e.id",
                ["oid[]"],
            ),
            [sorted({objid for objid, _ in address})],
        )
        entries = []
        for r in rows:
            names = address.get((int(r["objid"]), int(r["objsubid"] or 0)))
            if names is not None:
                entries.append(
                    dict({k: r[k] for k in r.keys() if k not in ("objid", "objsubid")}, target_names=names)  # noqa: SIM118
                )
        carrier = next((i for i in items if i["plan"]), None)
        if entries and carrier is not None:
            sql = f"SELECT asymm.import_annotations({ql(json.dumps(entries))}::jsonb)"
            carrier["plan"].append(stmt(99, sql, hazards=("annotations written back",)))

    def owner_moved_back(seq_c: Any) -> Any:
        """The table owning a current sequence, if the plan moves it back to another schema."""
        owned_by = seq_c["props"].get("owned_by") or ""
        for t in C:
            if t["kind"] == "table" and owned_by.startswith(t["qname"] + "."):
                tb = rpair.get(key(t))
                if tb is None:
                    return None
                sb = pair.get(("schema", tb["parent"]))
                moved = (sb["key"] != t["parent"]) if sb else (tb["schema"] != t["schema"])
                return t if moved else None
        return None

    def move_indexes_aside() -> None:
        """A table moved back takes its indexes along, whose names may be held in the schema it goes
        back to: they travel under names no schema holds (before the table moves), and take their
        baseline names in the permutation."""
        for tkey, _tmp in list(_moved_as.items()):
            table_c = cmap.get(tkey)
            if tkey[0] != "table" or table_c is None:
                continue
            move_plan = _moves[rpair[tkey]["key"]]
            schema_now = qi(schema_name_after(table_c["parent"]) or table_c["schema"])
            for x in C:
                ob = rpair.get(key(x))
                along = (x["kind"] == "index" and x["parent"] == table_c["key"]) or (
                    x["kind"] == "sequence" and owner_moved_back(x) is table_c
                )
                if not along or ob is None:
                    continue
                aside = move_name()
                _moved_as[key(x)] = aside
                move_plan.insert(0, stmt(21, f"ALTER {kw(x)} {schema_now}.{qi(x['name'])} RENAME TO {qi(aside)}"))
                carrier = (_moves.get(ob["key"]) or [None])[0]
                registered = [r for r in _renames if r[4] is carrier]
                if registered:
                    registered[0][1] = aside
                else:
                    render = renamer(f"ALTER {kw(x)} {qi(ob['schema'])}.", " RENAME TO ")
                    move_plan.append(rename(21, ("rel", ob["schema"]), aside, ob["name"], render))

    def clear_names_for_creates() -> None:
        """A baseline object the plan creates again may find its name held by an object the plan
        drops (a table b dropped, then a type b created): that one is renamed aside first (phase 21)."""
        for o in B:
            if key(o) in pair or o["kind"] not in REL_SCOPE_KINDS:
                continue
            scope = scope_of(o, False)
            if (scope, o["name"]) not in _droppable:
                continue
            drop_stmt, render, drop_sql = _droppable.pop((scope, o["name"]))
            tmp = temporary(names_now(scope) | {x["name"] for x in B if scope_of(x, False) == scope})
            aside = dict(stmt(21, render(o["name"], tmp)), seq=0)
            drop_stmt["sql"] = drop_sql(tmp)
            for item in items:
                if any(x is drop_stmt for x in item["plan"]):
                    item["plan"].insert(0, aside)
                    break

    def rename(phase: Any, scope: Any, cur_name: Any, base_name: Any, render: Any) -> Any:
        s = stmt(phase, render(cur_name, base_name))
        _renames.append([scope, cur_name, base_name, render, s])
        return s

    def schema_after(x: Any) -> Any:
        """The schema a current object is in once the plan has renamed schemas and moved objects back."""
        b = rpair.get(key(x))
        if b is not None:
            return b["schema"]
        for sc in C:
            if sc["kind"] == "schema" and sc["name"] == x["schema"]:
                sb = rpair.get(key(sc))
                return sb["name"] if sb else sc["name"]
        return x["schema"]

    REL_SCOPE_KINDS = ("table", "view", "sequence", "index", "type")  # a relation's row type has its name

    def scope_of(x: Any, current: Any) -> Any:
        """The namespace of a name: a schema's relations, a table's columns, constraints or triggers."""
        if x["kind"] in REL_SCOPE_KINDS:
            return ("rel", schema_after(x) if current else x["schema"])
        if x["kind"] in ("column", "constraint", "trigger", "policy"):
            parent = x["parent"]
            if current:
                pb = rpair.get(("table", parent))
                parent = pb["key"] if pb else parent
            return (x["kind"], parent)
        if x["kind"] == "schema":
            return ("schema",)
        return None

    _moved_as: dict[Any, Any] = {}  # current key of a relation moved back -> its name on the way

    def move_name() -> Any:
        taken = {x["name"] for x in B + C} | set(_moved_as.values())
        n = 1
        while f"asymm_move_{n}" in taken:
            n += 1
        return f"asymm_move_{n}"

    def names_now(scope: Any) -> Any:
        return {_moved_as.get(key(x), x["name"]) for x in C if scope_of(x, True) == scope}

    def partition_indexes(schema: Any) -> Any:
        """Names of the partitions' indexes in a schema now: not tracked (ATTACH names them), yet
        they hold names a rename back may need."""
        if not same_db:
            return set()
        rows = plpy.execute(
            plpy.prepare(
                "SELECT c.relname AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace"
                " WHERE s.nspname = $1 AND c.relispartition AND c.relkind IN ('i', 'I')",
                ["text"],
            ),
            [schema],
        )
        return {r["n"] for r in rows}

    def schedule_renames() -> None:
        by_scope: dict[Any, Any] = {}
        for r in _renames:
            by_scope.setdefault(r[0], []).append(r)
        for scope in sorted(by_scope, key=repr):
            pending = {r[1]: r for r in by_scope[scope] if r[1] != r[2]}
            occupied = names_now(scope)
            untracked = partition_indexes(scope[1]) if scope[0] == "rel" else set()
            occupied |= untracked
            taken = occupied | {r[2] for r in pending.values()}
            order = []  # (stmt of the item that carries it, sql)
            budget = 4 * len(pending) + 4  # each pass frees a name; a bug must not spin in the server
            while pending:
                budget -= 1
                if budget < 0:
                    raise ValueError(f"renames in {scope!r} could not be ordered: {sorted(pending)}")
                free = sorted(n for n, r in pending.items() if r[2] not in occupied)
                if free:
                    r = pending.pop(free[0])
                    order.append((r[4], r[3](r[1], r[2])))
                    occupied.discard(r[1])
                    occupied.add(r[2])
                    continue
                # every target is taken: first by something that is no pending rename (moved out
                # of the way when the plan drops it, else left for PostgreSQL to refuse) ...
                outside = [(n, r) for n, r in sorted(pending.items()) if r[2] not in pending]
                if outside:
                    cur, r = outside[0]
                    target = r[2]
                    if target in untracked:  # a partition's index: its name is PostgreSQL's choice
                        tmp = temporary(taken)
                        order.append((r[4], f"ALTER INDEX {qi(scope[1])}.{qi(target)} RENAME TO {qi(tmp)}"))
                        untracked.discard(target)
                        occupied.discard(target)
                        occupied.add(tmp)
                    elif (scope, target) in _droppable:
                        drop_stmt, render, drop_sql = _droppable.pop((scope, target))
                        tmp = temporary(taken)
                        order.append((r[4], render(target, tmp)))
                        drop_stmt["sql"] = drop_sql(tmp)
                        occupied.discard(target)
                        occupied.add(tmp)
                    else:
                        del pending[cur]
                        order.append((r[4], r[3](cur, target)))
                    continue
                # ... else the renames are cycles: one name moves aside, and its cycle unwinds
                cur, r = sorted(pending.items())[0]
                tmp = temporary(taken)
                del pending[cur]
                order.append((r[4], r[3](cur, tmp)))
                occupied.discard(cur)
                occupied.add(tmp)
                pending[tmp] = [scope, tmp, r[2], r[3], r[4]]
            first: dict[int, Any] = {}
            for seq, (carrier, text) in enumerate(order, start=1):
                if id(carrier) not in first:
                    first[id(carrier)] = carrier
                    carrier["sql"], carrier["seq"] = text, seq
                else:
                    extra = dict(carrier, sql=text, seq=seq, hazards=[])
                    for item in items:
                        plan = item["plan"]
                        if any(x is carrier for x in plan):
                            plan.insert(next(i for i, x in enumerate(plan) if x is carrier) + 1, extra)
                            break

    # ---- removed -----------------------------------------------------------------------------------
    removed_keys = {o["key"] for o in B if key(o) not in pair}
    added_keys = {o["key"] for o in C if key(o) not in rpair}

    for o in B:
        if key(o) in pair:
            continue
        if o["kind"] in REL_CHILD and o["parent"] in removed_keys:
            continue  # folded into the CREATE TABLE of its table
        p = o["props"]
        if o["kind"] == "column":
            plan = add_column(base_by_key[o["parent"]]["qname"], o)
            add("removed", o, None, None, p, None, "destructive", ["data loss"], plan)
        elif o["kind"] == "constraint":
            add("removed", o, None, None, p["def"], None, "functional", ["constraint dropped"], create_constraint(o))
        elif o["kind"] == "index":
            rebuilt = (unique_precheck(o) if p.get("unique") else []) + create_index(o)
            add("removed", o, None, None, p["def"], None, "functional", ["index dropped"], rebuilt)
        elif o["kind"] == "trigger":
            add("removed", o, None, None, p["def"], None, "functional", ["trigger dropped"], create_trigger(o))
        elif o["kind"] == "policy":
            add("removed", o, None, None, p, None, "functional", ["privilege change"], [create_policy(o)])
        elif o["kind"] in ("table", "sequence", "schema"):
            add(
                "removed",
                o,
                None,
                None,
                None,
                None,
                "destructive",
                ["data loss"] if o["kind"] != "schema" else [],
                create_relation(o),
            )
        else:
            add("removed", o, None, None, None, None, "functional", [], create_relation(o))

    # ---- added -------------------------------------------------------------------------------------
    for o in C:
        if key(o) in rpair:
            continue
        if o["kind"] in REL_CHILD and o["parent"] in added_keys:
            continue
        p = o["props"]
        if o["kind"] == "column":
            t = table_now(o)
            dropped = stmt(90, f"ALTER TABLE {t} DROP COLUMN {o['qname']}", hazards=("data loss",))
            _droppable[(scope_of(o, True), o["name"])] = (
                dropped,
                renamer(f"ALTER TABLE {t} RENAME COLUMN ", " TO "),
                dropper(f"ALTER TABLE {t} DROP COLUMN "),
            )
            add("added", None, o, None, None, p, "functional", [], [dropped])
        elif o["kind"] == "constraint":
            add(
                "added",
                None,
                o,
                None,
                None,
                p["def"],
                "functional",
                [],
                [stmt(12 if p["type"] == "f" else 13, f"ALTER TABLE {p['_table']} DROP CONSTRAINT {o['qname']}")],
            )
        elif o["kind"] == "index" and p.get("valid") is False:
            # the leftover of a failed CREATE INDEX CONCURRENTLY: writes maintain it, nothing reads it
            drop = f"DROP INDEX CONCURRENTLY IF EXISTS {o['qname']}"
            plan = [stmt(14, drop, transactional=False, online=True)]
            add("invalid", None, o, "valid", None, False, "functional", ["index invalid"], plan)
        elif o["kind"] == "index":
            add("added", None, o, None, None, p["def"], "cosmetic", [], drop_relation(o))
        elif o["kind"] == "trigger":
            add(
                "added",
                None,
                o,
                None,
                None,
                p["def"],
                "functional",
                [],
                [stmt(10, f"DROP TRIGGER {o['qname']} ON {p['_table']}")],
            )
        elif o["kind"] == "policy":
            base_table = rpair.get(("table", o["parent"]))
            if base_table is None or policies_tracked(base_table["key"]):
                drop = stmt(10, f"DROP POLICY {o['qname']} ON {p['_table']}", hazards=("privilege change",))
                add("added", None, o, None, None, p, "functional", ["privilege change"], [drop])
        else:
            plan = drop_relation(o)
            if o["kind"] == "table":
                # its foreign keys first: another new table they reference may be dropped before it
                plan = [
                    stmt(12, f"ALTER TABLE {o['qname']} DROP CONSTRAINT {k['qname']}")
                    for k in C
                    if k["kind"] == "constraint"
                    and k["parent"] == o["key"]
                    and k["props"]["type"] == "f"
                    and f" REFERENCES {o['qname']}(" not in k["props"]["def"]
                ] + plan
            if o["kind"] in ("table", "sequence", "type"):  # dropped last (phase 91-92): out of a rename's way
                sch = qi(schema_after(o))
                _droppable[(scope_of(o, True), o["name"])] = (
                    plan[-1],  # the DROP itself
                    renamer(f"ALTER {kw(o)} {sch}.", " RENAME TO "),
                    dropper(f"DROP {kw(o)} {sch}."),
                )
            add("added", None, o, None, None, None, "functional", [], plan)

    # ---- paired: renamed, moved, changed -----------------------------------------------------------
    for o in B:
        c = pair.get(key(o))
        if c is None:
            continue
        bp, cp = o["props"], c["props"]
        kind = o["kind"]
        # moved: a relation or function whose schema is not the partner of the baseline schema
        if kind in ("table", "view", "sequence", "function", "type"):
            sb = pair.get(("schema", o["parent"]))
            moved = (sb["key"] != c["parent"]) if sb else (o["schema"] != c["schema"])
            cur_q = qi(schema_name_after(c["parent"]) or c["schema"]) + "." + c["qname"].split(".", 1)[1]
            plan = []
            cur_name = c["name"]
            # an owned sequence goes with its table (see move_indexes_aside)
            moved_along = bool(moved and kind == "sequence" and owner_moved_back(c))
            if moved and kind != "function" and not moved_along:
                # under a name no schema holds, so that the move never meets a name the plan has
                # not freed yet; the rename to its own name is then one of the permutation's
                cur_name = move_name()
                _moved_as[key(c)] = cur_name
                plan.append(stmt(21, f"ALTER {kw(o)} {cur_q} RENAME TO {qi(cur_name)}"))
                plan.append(
                    stmt(21, f"ALTER {kw(o)} {cur_q.split('.', 1)[0]}.{qi(cur_name)} SET SCHEMA {qi(o['schema'])}")
                )
            elif moved and not moved_along:
                plan.append(stmt(21, f"ALTER {kw(o)} {cur_q} SET SCHEMA {qi(o['schema'])}"))
                cur_q = qi(o["schema"]) + "." + cur_q.split(".", 1)[1]
            if o["name"] != c["name"] and kind == "function":
                plan.append(stmt(21, f"ALTER {kw(o)} {cur_q} RENAME TO {qi(o['name'])}"))
            elif o["name"] != cur_name:
                plan.append(
                    rename(
                        21,
                        ("rel", o["schema"]),
                        cur_name,
                        o["name"],
                        renamer(f"ALTER {kw(o)} {qi(o['schema'])}.", " RENAME TO "),
                    )
                )
            _moves[o["key"]] = plan
            if moved:
                add("moved", o, c, "schema", o["schema"], c["schema"], "functional", ["breaks dependents"], plan)
            elif plan:
                add("renamed", o, c, "name", o["name"], c["name"], "functional", ["breaks dependents"], plan)
        elif kind == "schema" and o["name"] != c["name"]:
            add(
                "renamed",
                o,
                c,
                "name",
                o["name"],
                c["name"],
                "functional",
                ["breaks dependents"],
                [
                    rename(
                        20,
                        ("schema",),
                        c["name"],
                        o["name"],
                        renamer("ALTER SCHEMA ", " RENAME TO "),
                    )
                ],
            )
        elif kind in REL_CHILD and o["name"] != c["name"]:
            t = base_by_key[o["parent"]]["qname"]
            if kind == "column":
                render = renamer(f"ALTER TABLE {t} RENAME COLUMN ", " TO ")
            elif kind == "constraint":
                render = renamer(f"ALTER TABLE {t} RENAME CONSTRAINT ", " TO ")
            elif kind == "trigger":
                render = renamer("ALTER TRIGGER ", f" ON {t} RENAME TO ")
            elif kind == "policy":
                render = renamer("ALTER POLICY ", f" ON {t} RENAME TO ")
            else:  # an index: a relation name of its schema, renamed with the tables (phase 21)
                render = renamer(f"ALTER INDEX {qi(o['schema'])}.", " RENAME TO ")
            scope = ("rel", o["schema"]) if kind == "index" else (kind, o["parent"])
            renamed_back = rename(21 if kind == "index" else 22, scope, c["name"], o["name"], render)
            _moves[o["key"]] = [renamed_back]
            add(
                "renamed",
                o,
                c,
                "name",
                o["name"],
                c["name"],
                "functional" if kind == "column" else "cosmetic",
                ["breaks dependents"] if kind == "column" else [],
                [renamed_back],
            )

        # property changes
        for prop in sorted(set(bp) | set(cp)):
            if prop.startswith("_"):
                continue
            old, new = bp.get(prop), cp.get(prop)
            if kind == "constraint" and prop == "def":
                old, new = constraint_def(o), constraint_def(c)
            if prop == "acl" and isinstance(new, list) and bp.get("owner") and bp.get("owner") != cp.get("owner"):
                # ALTER ... OWNER TO (the plan's, phase 80) hands the owner's entries to the new
                # owner: those are the owner's implicit privileges, not grants to put back.
                now, then = qi(cp.get("owner") or ""), qi(bp["owner"])
                new = sorted({then + e[len(now) :] if e.split(":")[0] == now else e for e in new})
            if old == new or same_after_renames(o, prop, old, new):
                continue
            if prop == "acl" and isinstance(old, list) and isinstance(new, list) and set(old) == set(new):
                continue
            if prop in ("row_security", "force_row_security") and prop not in bp:
                continue  # a baseline captured before 0.3.0 did not record it
            if prop in ("validated", "valid") and new is True and old is False:
                continue  # a constraint validated or an index built since: nothing a plan should undo
            if kind == "view" and prop == "def" and same_view_query(o, c):
                continue
            plan, severity, hazards, k = [], "functional", [], "changed"
            if kind == "column":
                t = base_by_key[o["parent"]]["qname"]
                col = o["qname"]
                if prop == "type":
                    rewrite = rewrites(new, old)
                    view_drops, view_creates = recreate_views(o["key"], [])
                    hazards = ["table rewrite", "long exclusive lock"] if rewrite else ["long exclusive lock"]
                    # The cast may be another role's (cast function, domain checks), and the rewrite
                    # re-validates the table's CHECKs on the column.
                    computed = generated_from(o)
                    _reborn.update(g["key"] for g in computed)
                    plan = [
                        *view_drops,
                        *[stmt(41, f"ALTER TABLE {t} DROP COLUMN {g['qname']}") for g in computed],
                        stmt(
                            41,
                            f"ALTER TABLE {t} ALTER COLUMN {col} TYPE {old} USING {col}::{old}",
                            hazards=[
                                *hazards,
                                *(["possible data loss"] if rewrite else []),
                                *runs_code(type_code(old), expr_code(f"{col}::{old}"), table_check_code(t)),
                            ],
                        ),
                        *[
                            stmt(41, f"ALTER TABLE {t} ADD COLUMN {column_sql(g)}", hazards=("table rewrite",))
                            for g in computed
                        ],
                        *view_creates,
                    ]
                elif prop == "default":
                    # SET DEFAULT evaluates nothing; after phase 50, so that its functions exist.
                    plan = [
                        stmt(52, f"ALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT {old}")
                        if old is not None
                        else stmt(42, f"ALTER TABLE {t} ALTER COLUMN {col} DROP DEFAULT")
                    ]
                elif prop == "notnull":
                    if old:
                        plan = not_null_route(t, col, o["name"])
                    else:
                        plan = [stmt(43, f"ALTER TABLE {t} ALTER COLUMN {col} DROP NOT NULL")]
                        hazards = ["long exclusive lock"]
                elif prop == "identity":
                    if old and not new:
                        plan = [
                            stmt(
                                44,
                                f"ALTER TABLE {t} ALTER COLUMN {col} ADD GENERATED "
                                f"{'ALWAYS' if old == 'a' else 'BY DEFAULT'} AS IDENTITY",
                            )
                        ]
                    elif new and not old:
                        plan = [stmt(44, f"ALTER TABLE {t} ALTER COLUMN {col} DROP IDENTITY")]
                    else:
                        plan = [
                            stmt(
                                44,
                                f"ALTER TABLE {t} ALTER COLUMN {col} SET GENERATED "
                                f"{'ALWAYS' if old == 'a' else 'BY DEFAULT'}",
                            )
                        ]
                elif prop == "generated":
                    if new and not old:
                        plan = [stmt(44, f"ALTER TABLE {t} ALTER COLUMN {col} DROP EXPRESSION")]
                    else:
                        _reborn.add(o["key"])
                        code = runs_code(expr_code(old), expr_code(bp.get("default")), type_code(bp.get("type")))
                        plan = [
                            stmt(44, f"ALTER TABLE {t} DROP COLUMN {col}", hazards=("data loss",)),
                            stmt(
                                52 if code else 44,
                                f"ALTER TABLE {t} ADD COLUMN {column_sql(o)}",
                                hazards=["table rewrite", "long exclusive lock", *code],
                            ),
                        ]
                        hazards = ["table rewrite"]
                elif prop == "collation":
                    plan = [
                        stmt(
                            41,
                            f"ALTER TABLE {t} ALTER COLUMN {col} TYPE {bp['type']}"
                            + (f" COLLATE {old}" if old else ' COLLATE "default"'),
                            hazards=["long exclusive lock", *runs_code(type_code(bp["type"]), table_check_code(t))],
                        )
                    ]
            elif kind == "constraint":
                t = bp["_table"]
                same_def = constraint_def(o) == constraint_def(c) or same_after_renames(
                    o, "def", constraint_def(o), constraint_def(c)
                )
                if prop == "validated" and old and not new and not same_def:
                    k, hazards = "invalid", ["constraint not validated"]
                    plan = []  # the constraint is re-created (its definition changed), validated
                elif prop == "validated" and old and not new:
                    k, hazards = "invalid", ["constraint not validated"]
                    plan = [
                        stmt(
                            62,
                            f"ALTER TABLE {t} VALIDATE CONSTRAINT {o['qname']}",
                            online=True,
                            hazards=runs_code(expr_code(bp["def"])) if bp.get("type") == "c" else (),
                        )
                    ]
                elif prop == "validated":
                    severity = "cosmetic"
                else:
                    plan = replace_constraint(o, c)
                    _recreated.add(o["key"])
            elif kind == "index":
                if prop == "valid" and old and not new:
                    k, hazards = "invalid", ["index invalid"]
                    # Drop and rebuild rather than REINDEX: pg_dump leaves invalid indexes out, and an
                    # invalid index left by a failed CREATE INDEX CONCURRENTLY is best rebuilt anew.
                    plan = [
                        stmt(
                            14,
                            f"DROP INDEX CONCURRENTLY IF EXISTS {qi(o['schema'])}.{qi(c['name'])}",
                            transactional=False,
                            online=True,
                        ),
                        *create_index(o),
                    ]
                elif prop == "valid":
                    severity = "cosmetic"
                elif prop in ("def", "unique"):
                    if prop == "unique" and "def" in [p2 for p2 in bp if bp.get(p2) != cp.get(p2)]:
                        continue
                    hazards = ["index rebuilt"]
                    plan = replace_index(o)
                    _reborn.add(o["key"])
            elif kind == "trigger":
                if prop == "enabled":
                    plan = [stmt(71, f"ALTER TABLE {bp['_table']} {TRIGGER_STATE[old]} TRIGGER {o['qname']}")]
                else:
                    plan = [stmt(10, f"DROP TRIGGER {c['qname']} ON {cp['_table']}"), *create_trigger(o)]
                    _recreated.add(o["key"])
            elif kind == "policy":
                # one DROP and CREATE for every change of a policy, carried by its first changed property
                changed = [
                    p2
                    for p2 in sorted(set(bp) | set(cp))
                    if not p2.startswith("_")
                    and bp.get(p2) != cp.get(p2)
                    and not same_after_renames(o, p2, bp.get(p2), cp.get(p2))
                ]
                hazards = ["privilege change"]
                if prop == changed[0]:
                    plan = [stmt(10, f"DROP POLICY {c['qname']} ON {cp['_table']}"), create_policy(o)]
                    _recreated.add(o["key"])
            elif kind == "table" and prop in ("row_security", "force_row_security"):
                plan, hazards = [row_security(o["qname"], prop, old)], ["privilege change"]
            elif kind == "type" and prop not in ("owner", "acl"):
                # (not in _recreated: the current type is renamed aside from its baseline name, so
                # its renames and moves back stay in the plan)
                hazards = ["breaks dependents"] if prop != "default" else []
                if bp.get("typtype") != cp.get("typtype"):
                    plan = recreate_type(o) if prop == "typtype" else []
                elif prop == "base":
                    plan = recreate_type(o)
                    _types_rebuilt.add(o["key"])
                elif o["key"] in _types_rebuilt:
                    plan = []  # re-created from its baseline definition by another property
                elif prop == "labels":
                    plan = enum_plan(o, old, new)
                elif prop == "attributes":
                    if old != [[n, translate(t)] for n, t in new or []]:
                        plan = attributes_plan(o, old, new)
                    else:
                        continue
                else:
                    plan = domain_plan(o, prop, old, new)
            elif kind == "extension":
                plan, hazards = extension_plan(o, prop, old, new), ["breaks dependents"]
            elif kind == "default_acl":
                plan, hazards = default_acl_plan(o, new, old), ["privilege change"]
            elif prop == "owner":
                plan = [stmt(80, f"ALTER {kw(o)} {o['qname']} OWNER TO {qi(old)}")]
                hazards = ["privilege change"]
            elif prop == "acl":
                plan = acl_plan(o, old, new)
                hazards = ["privilege change"]
            elif kind == "view" and prop == "def":
                # CREATE OR REPLACE VIEW cannot drop or retype columns: drop and re-create instead,
                # with the views that depend on it (PostgreSQL refuses to drop it under them).
                drops, creates = recreate_views(o["key"], [o])
                plan = drops + creates
                hazards = ["breaks dependents"]
            elif kind == "view":
                plan = []
            elif kind == "function":
                # One statement for all the changes of a function: the first changed property carries it.
                changed = [
                    p2
                    for p2 in sorted(set(bp) | set(cp))
                    if not p2.startswith("_")
                    and p2 not in ("owner", "acl")
                    and bp.get(p2) != cp.get(p2)
                    and not same_after_renames(o, p2, bp.get(p2), cp.get(p2))
                ]
                if prop != changed[0]:
                    plan = []
                elif {"result", "prokind"} & set(changed):
                    plan = [stmt(15, f"DROP {kw(c)} {o['qname']}"), *create_relation(o)]
                    _reborn.add(o["key"])
                else:
                    plan = [stmt(50, bp["_ddl"])]
            elif kind == "sequence":
                clause = {
                    "type": f"AS {old}",
                    "start": f"START WITH {old}",
                    "increment": f"INCREMENT BY {old}",
                    "min": f"MINVALUE {old}",
                    "max": f"MAXVALUE {old}",
                    "cycle": "CYCLE" if old else "NO CYCLE",
                    "cache": f"CACHE {old}",
                    "owned_by": f"OWNED BY {old or 'NONE'}",
                }[prop]
                plan = [stmt(45, f"ALTER SEQUENCE {o['qname']} {clause}")]
            elif kind == "table":
                t = o["qname"]
                if prop in ("partition_of", "partition_bound"):
                    parent_moved = not same_after_renames(
                        o, "partition_of", bp.get("partition_of"), cp.get("partition_of")
                    )
                    if prop == "partition_bound" and parent_moved and bp.get("partition_of") != cp.get("partition_of"):
                        continue  # planned with the partition_of change
                    plan = []
                    if new:
                        # (the parent has its baseline name again since phase 21)
                        plan.append(stmt(33, f"ALTER TABLE {translate(cp['partition_of'])} DETACH PARTITION {t}"))
                    if old:
                        plan.append(
                            dict(
                                stmt(
                                    90,  # once the plan has put its columns back and dropped new ones
                                    f"ALTER TABLE {old if prop == 'partition_of' else bp['partition_of']} "
                                    f"ATTACH PARTITION {t} {bp['partition_bound']}",
                                    hazards=[
                                        "scans the partition",
                                        *runs_code(
                                            partition_key_code(old if prop == "partition_of" else bp["partition_of"]),
                                            table_check_code(t),
                                        ),
                                    ],
                                ),
                                seq=1,
                            )
                        )
                elif prop == "persistence":
                    plan = [
                        stmt(
                            41,
                            f"ALTER TABLE {t} SET {'UNLOGGED' if old == 'u' else 'LOGGED'}",
                            hazards=("table rewrite", "long exclusive lock"),
                        )
                    ]
                else:
                    plan = []
                    severity = "destructive"
                    hazards = ["data loss"]
            add(k, o, c, prop, old, new, severity, hazards, plan)

    forget_moves_of_recreated()
    annotations_back()
    move_indexes_aside()
    clear_names_for_creates()
    schedule_renames()
    order = {"removed": 0, "renamed": 1, "moved": 2, "changed": 3, "invalid": 4, "added": 5}
    items.sort(key=lambda i: (order[i["kind"]], i["object_type"], i["identity"], i["property"] or ""))
    return json.dumps(items)
