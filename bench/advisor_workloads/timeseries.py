"""HOLD-OUT. Append-heavy time series: readings (1.5M at scale 1) from devices, many INSERTs per read.

Written last, after the other workloads and the runner, and nothing in the advisor or in this
bench is tuned against it: its results say how the advisor does on a workload nobody looked at.

Readings arrive in time order (``ts`` grows with ``id``, one a second over all devices: a
BRIN-friendly column), each device reports every ``devices`` seconds; a few are alarms
(status 2).  Reads: a device's range, the latest reading per device, a site's latest readings,
hourly rollups, recent alarms.
"""

from __future__ import annotations

import random
from typing import Any

from advisor_workloads import Shape, Workload, rows, ts


def counts(scale: float) -> dict[str, int]:
    return {"devices": rows(10_000, scale), "readings": rows(1_500_000, scale), "sites": 200}


def schema(scale: float) -> str:
    c = counts(scale)
    d, n, s = c["devices"], c["readings"], c["sites"]
    return f"""
CREATE TABLE devices (id int PRIMARY KEY, site_id int NOT NULL, model text NOT NULL, installed_at timestamptz NOT NULL);
INSERT INTO devices SELECT g, 1 + g % {s}, 'model ' || (g % 12), timestamptz '2025-06-01 00:00+00' + g * interval '1 h'
  FROM generate_series(1::bigint, {d}) g;
CREATE TABLE readings (id bigint PRIMARY KEY, device_id int NOT NULL, ts timestamptz NOT NULL, value float8 NOT NULL,
                       status smallint NOT NULL);
INSERT INTO readings SELECT g, 1 + g % {d}, timestamptz '2026-01-01 00:00+00' + g * interval '1 s',
       20 + 10 * sin(g / 5000.0) + (g * 7919 % 100) / 50.0, CASE WHEN g % 1009 = 0 THEN 2 ELSE g % 2 END
  FROM generate_series(1::bigint, {n}) g;
CREATE SEQUENCE readings_id_seq START {n + 1} OWNED BY readings.id;
ALTER TABLE readings ALTER id SET DEFAULT nextval('readings_id_seq');
"""  # noqa: S608 - numbers and this module's fixed lists only


def shapes(scale: float) -> list[Shape]:
    c = counts(scale)
    d, n, s = c["devices"], c["readings"], c["sites"]

    def window(r: random.Random, seconds: int) -> tuple[Any, Any]:
        start = r.randint(0, n - seconds)
        return ts(start), ts(start + seconds)

    def device_window(r: random.Random) -> tuple[Any, ...]:
        return (r.randint(1, d), *window(r, 86400))

    def batch(r: random.Random) -> tuple[Any, ...]:
        out: list[Any] = []
        for _ in range(5):
            out += [r.randint(1, d), round(r.uniform(10, 30), 2)]
        return tuple(out)

    return [
        Shape(
            "record a reading (INSERT)",
            "INSERT INTO readings (device_id, ts, value, status) VALUES ($1, now(), $2, $3)",
            lambda r: (r.randint(1, d), round(r.uniform(10, 30), 2), r.choice([0, 1])),
            200,
            write=True,
        ),
        Shape(
            "record 5 readings (multi-row INSERT)",
            "INSERT INTO readings (device_id, ts, value, status) VALUES ($1, now(), $2, 0), ($3, now(), $4, 0),"
            " ($5, now(), $6, 0), ($7, now(), $8, 0), ($9, now(), $10, 0)",
            batch,
            40,
            write=True,
        ),
        Shape(
            "a device's readings in a day",
            "SELECT ts, value FROM readings WHERE device_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts",
            device_window,
            20,
        ),
        Shape(
            "latest reading of a device",
            "SELECT ts, value, status FROM readings WHERE device_id = $1 ORDER BY ts DESC LIMIT 1",
            lambda r: (r.randint(1, d),),
            30,
        ),
        Shape(
            "latest readings of a site's devices (last 3 hours)",
            "SELECT DISTINCT ON (r.device_id) r.device_id, r.ts, r.value FROM readings r"
            " JOIN devices dv ON dv.id = r.device_id WHERE dv.site_id = $1 AND r.ts >= $2"
            " ORDER BY r.device_id, r.ts DESC",
            lambda r: (r.randint(1, s), ts(n - 3 * 3600)),
            5,
        ),
        Shape(
            "hourly rollup over 6 hours",
            "SELECT date_trunc('hour', ts), avg(value), max(value), count(*) FROM readings"
            " WHERE ts >= $1 AND ts < $2 GROUP BY 1 ORDER BY 1",
            lambda r: window(r, 6 * 3600),
            5,
        ),
        Shape(
            "recent alarms",
            "SELECT device_id, ts, value FROM readings WHERE status = $1 AND ts >= $2 ORDER BY ts DESC LIMIT 100",
            lambda r: (2, ts(n - r.randint(1, 24) * 3600)),
            10,
        ),
        Shape(
            "daily rollup of a device",
            "SELECT date_trunc('day', ts), count(*), avg(value) FROM readings WHERE device_id = $1"
            " GROUP BY 1 ORDER BY 1",
            lambda r: (r.randint(1, d),),
            5,
        ),
        Shape("devices of a site", "SELECT id, model FROM devices WHERE site_id = $1", lambda r: (r.randint(1, s),), 5),
    ]


# EXPERT: written first, before asymm's advisor was ever run on this workload (2026-12-02): the
# usual time-series design.  (device_id, ts DESC) serves a device's ranges, its latest reading and
# the per-site latest readings; a BRIN on the append-ordered ts serves the rollups and the recent
# alarms at almost no write cost; devices(site_id) for the small lookup.  Nothing else on a table
# that takes 400 rows per replay round.
EXPERT = [
    "CREATE INDEX expert_readings_device_ts ON readings (device_id, ts DESC)",
    "CREATE INDEX expert_readings_ts_brin ON readings USING brin (ts)",
    "CREATE INDEX expert_devices_site ON devices (site_id)",
]

WORKLOAD = Workload(
    name="timeseries",
    description="append-heavy time series (HOLD-OUT): readings 1.5M, devices 10k (scale 1)",
    schema=schema,
    shapes=shapes,
    expert=EXPERT,
    holdout=True,
)
