"""A jsonb event store: events (1.5M at scale 1) with a jsonb payload and a text[] of tags, and accounts.

Events are appended in time order (``occurred_at`` grows with ``id``, ten seconds apart); the
payload has a type, a user, a session and a country; tags are mostly common ones and, on a few
events, rare ones (``vip``, ``fraud-review``, ...) which are what the tag searches look for.
Writes are inserts of new events.
"""

from __future__ import annotations

import json
import random
from typing import Any

from advisor_workloads import Shape, Workload, rows, ts

TYPES = ["view", "click", "search", "cart", "purchase", "signup", "login", "logout", "share", "refund"]
COUNTRIES = ["FR", "DE", "US", "GB", "ES", "IT", "NL", "BR", "JP", "IN"]
COMMON_TAGS = ["web", "mobile", "api", "beta", "eu", "us", "apac", "campaign"]
RARE_TAGS = ["vip", "fraud-review", "chargeback", "escalated", "manual"]
STEP_S = 10


def counts(scale: float) -> dict[str, int]:
    return {"accounts": rows(10_000, scale), "events": rows(1_500_000, scale), "users": rows(50_000, scale)}


def schema(scale: float) -> str:
    c = counts(scale)
    a, e, us = c["accounts"], c["events"], c["users"]
    types, countries, common, rare = (
        "(ARRAY[" + ",".join(f"'{x}'" for x in values) + "])" for values in (TYPES, COUNTRIES, COMMON_TAGS, RARE_TAGS)
    )
    return f"""
CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, plan text NOT NULL);
INSERT INTO accounts SELECT g, 'account ' || g, (ARRAY['free','pro','enterprise'])[1 + g % 3]
  FROM generate_series(1::bigint, {a}) g;
CREATE TABLE events (id bigint PRIMARY KEY, account_id int NOT NULL, kind text NOT NULL,
                     occurred_at timestamptz NOT NULL, payload jsonb NOT NULL, tags text[] NOT NULL);
INSERT INTO events SELECT g, 1 + (g * 7919) % {a}, {types}[1 + g % {len(TYPES)}],
       timestamptz '2026-01-01 00:00+00' + g * interval '{STEP_S} s',
       jsonb_build_object('type', {types}[1 + (g / 3) % {len(TYPES)}], 'user', 'u' || (g * 31 % {us}),
                          'session', 's' || (g / 8), 'country', {countries}[1 + (g * 13) % {len(COUNTRIES)}],
                          'amount', g % 500),
       CASE WHEN g % 997 = 0 THEN ARRAY[{common}[1 + g % {len(COMMON_TAGS)}], {rare}[1 + (g / 997) % {len(RARE_TAGS)}]]
            ELSE ARRAY[{common}[1 + g % {len(COMMON_TAGS)}], {common}[1 + (g / 7) % {len(COMMON_TAGS)}]] END
  FROM generate_series(1::bigint, {e}) g;
CREATE SEQUENCE events_id_seq START {e + 1} OWNED BY events.id;
ALTER TABLE events ALTER id SET DEFAULT nextval('events_id_seq');
"""  # noqa: S608 - numbers and this module's fixed lists only


def shapes(scale: float) -> list[Shape]:
    c = counts(scale)
    a, e, us = c["accounts"], c["events"], c["users"]
    span = e * STEP_S

    def window(r: random.Random, seconds: int) -> tuple[Any, Any]:
        start = r.randint(0, span - seconds)
        return ts(start), ts(start + seconds)

    def new_event(r: random.Random) -> tuple[Any, ...]:
        payload = {
            "type": r.choice(TYPES),
            "user": f"u{r.randrange(us)}",
            "session": f"s{e // 8 + r.randrange(10**6)}",
            "country": r.choice(COUNTRIES),
            "amount": r.randrange(500),
        }
        tags = [r.choice(COMMON_TAGS)] + ([r.choice(RARE_TAGS)] if r.random() < 0.01 else [])
        return (r.randint(1, a), r.choice(TYPES), json.dumps(payload), tags)

    return [
        Shape(
            "events of a user (payload @>)",
            "SELECT id, kind, occurred_at FROM events WHERE payload @> $1::jsonb ORDER BY occurred_at DESC LIMIT 50",
            lambda r: (json.dumps({"user": f"u{r.randrange(us)}"}),),
            20,
        ),
        Shape(
            "purchases from a country in a week (payload @>, range)",
            "SELECT count(*) FROM events WHERE payload @> $1::jsonb AND occurred_at >= $2 AND occurred_at < $3",
            lambda r: (json.dumps({"type": "purchase", "country": r.choice(COUNTRIES)}), *window(r, 7 * 86400)),
            10,
        ),
        Shape(
            "events of a session (payload->>)",
            "SELECT id, kind, payload FROM events WHERE payload->>'session' = $1",
            lambda r: (f"s{r.randrange(e // 8)}",),
            20,
        ),
        Shape(
            "events with a rare tag (tags @>)",
            "SELECT id, account_id, occurred_at FROM events WHERE tags @> ARRAY[$1]::text[]"
            " ORDER BY occurred_at DESC LIMIT 100",
            lambda r: (r.choice(RARE_TAGS),),
            10,
        ),
        Shape(
            "kinds in an hour (time range)",
            "SELECT kind, count(*) FROM events WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY kind",
            lambda r: window(r, 3600),
            20,
        ),
        Shape(
            "latest events of an account",
            "SELECT id, kind, occurred_at FROM events WHERE account_id = $1 ORDER BY occurred_at DESC LIMIT 20",
            lambda r: (r.randint(1, a),),
            30,
        ),
        Shape(
            "account's events of a kind since",
            "SELECT count(*) FROM events WHERE account_id = $1 AND kind = $2 AND occurred_at >= $3",
            lambda r: (r.randint(1, a), r.choice(TYPES), ts(r.randint(0, span))),
            10,
        ),
        Shape(
            "a day's revenue per country (payload->>, range)",
            "SELECT payload->>'country', count(*), sum((payload->>'amount')::int) FROM events"
            " WHERE occurred_at >= $1 AND occurred_at < $2 AND payload->>'type' = $3 GROUP BY 1",
            lambda r: (*window(r, 86400), "purchase"),
            5,
        ),
        Shape("event by id", "SELECT payload, tags FROM events WHERE id = $1", lambda r: (r.randint(1, e),), 20),
        Shape(
            "record an event (INSERT)",
            "INSERT INTO events (account_id, kind, occurred_at, payload, tags) VALUES ($1, $2, now(), $3::jsonb, $4)",
            new_event,
            60,
            write=True,
        ),
    ]


# EXPERT: written first, before asymm's advisor was ever run on this workload (2026-12-02): a
# careful DBA's set for these shapes.  GIN (jsonb_path_ops: only @> is used) for the containment
# searches, an expression btree for the session key, a GIN on tags, a btree on occurred_at for
# the time ranges (and ORDER BY occurred_at), an (account_id, occurred_at DESC) composite for the
# per-account reads.  Five indexes on a table that takes inserts: a DBA accepts that here.
EXPERT = [
    "CREATE INDEX expert_events_payload ON events USING gin (payload jsonb_path_ops)",
    "CREATE INDEX expert_events_session ON events ((payload->>'session'))",
    "CREATE INDEX expert_events_tags ON events USING gin (tags)",
    "CREATE INDEX expert_events_occurred ON events (occurred_at)",
    "CREATE INDEX expert_events_account_occurred ON events (account_id, occurred_at DESC)",
]

WORKLOAD = Workload(
    name="events",
    description="jsonb event store: events 1.5M (jsonb payload, text[] tags), accounts 10k (scale 1)",
    schema=schema,
    shapes=shapes,
    expert=EXPERT,
)
