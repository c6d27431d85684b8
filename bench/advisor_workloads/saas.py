"""Multi-tenant SaaS OLTP: tenant_id everywhere; users, projects, tasks (1.5M at scale 1), comments.

Every row belongs to a tenant (``tenant_id = 1 + (id - 1) % tenants`` for users and projects), and
a task's assignee and project, a comment's task and author, belong to the same tenant: the ids
of tenant ``t``'s users are ``t + tenants * k``.  Reads go through a tenant; a few writes
(status changes, new comments, new tasks).
"""

from __future__ import annotations

import random
from typing import Any

from advisor_workloads import Shape, Workload, rows, ts

TENANTS = 2000
STATUSES = ["todo", "doing", "review", "done", "done", "done"]


def counts(scale: float) -> dict[str, int]:
    c = {
        "tenants": rows(TENANTS, scale, floor=20),
        "users": rows(200_000, scale),
        "projects": rows(50_000, scale),
        "tasks": rows(1_500_000, scale),
        "comments": rows(1_000_000, scale),
    }
    # whole numbers of users / projects per tenant
    for key in ("users", "projects"):
        c[key] = max(c["tenants"], c[key] // c["tenants"] * c["tenants"])
    return c


SPAN_S = 300 * 86400  # tasks and comments are created over 300 days from the epoch


def schema(scale: float) -> str:
    c = counts(scale)
    t, u, p, n, m = c["tenants"], c["users"], c["projects"], c["tasks"], c["comments"]
    upt, ppt = u // t, p // t
    return f"""
CREATE TABLE tenants (id int PRIMARY KEY, name text NOT NULL, plan text NOT NULL);
INSERT INTO tenants SELECT g, 'tenant ' || g, (ARRAY['free','pro','enterprise'])[1 + g % 3]
  FROM generate_series(1::bigint, {t}) g;
CREATE TABLE users (id int PRIMARY KEY, tenant_id int NOT NULL, email text NOT NULL, name text NOT NULL,
                    status text NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO users SELECT g, 1 + (g - 1) % {t}, 'User' || g || '@Tenant' || (1 + (g - 1) % {t}) || '.example.com',
       'user ' || g, (ARRAY['active','active','active','invited','disabled'])[1 + g % 5],
       timestamptz '2025-01-01 00:00+00' + (g * 7919 % 31536000) * interval '1 s'
  FROM generate_series(1::bigint, {u}) g;
CREATE TABLE projects (id int PRIMARY KEY, tenant_id int NOT NULL, owner_id int NOT NULL, name text NOT NULL,
                       archived boolean NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO projects SELECT g, 1 + (g - 1) % {t}, 1 + (g - 1) % {t} + {t} * (g * 31 % {upt}),
       'project ' || (g * 7 % 1000), g % 5 = 0, timestamptz '2025-06-01 00:00+00' + g * interval '10 min'
  FROM generate_series(1::bigint, {p}) g;
CREATE TABLE tasks (id bigint PRIMARY KEY, tenant_id int NOT NULL, project_id int NOT NULL, assignee_id int NOT NULL,
                    status text NOT NULL, priority int NOT NULL, title text NOT NULL, created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL, due_date date NOT NULL);
INSERT INTO tasks SELECT g, tn, tn + {t} * (g * 31 % {ppt}), tn + {t} * (g * 7919 % {upt}),
       (ARRAY{STATUSES!r})[1 + (g * 13) % {len(STATUSES)}], g % 5, 'task ' || g,
       timestamptz '2026-01-01 00:00+00' + (g::float8 * {SPAN_S} / {n}) * interval '1 s',
       timestamptz '2026-01-01 00:00+00' + (g::float8 * {SPAN_S} / {n} + g % 86400 * 3) * interval '1 s',
       date '2026-01-01' + ((g::float8 * 300 / {n})::int + g % 60)::int
  FROM (SELECT g, 1 + (g - 1) % {t} AS tn FROM generate_series(1::bigint, {n}) g) s;
CREATE TABLE comments (id bigint PRIMARY KEY, tenant_id int NOT NULL, task_id bigint NOT NULL, author_id int NOT NULL,
                       body text NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO comments SELECT g, 1 + (tk - 1) % {t}, tk, 1 + (tk - 1) % {t} + {t} * (g % {upt}),
       'comment ' || g || ' on task ' || tk,
       timestamptz '2026-01-01 00:00+00' + (g::float8 * {SPAN_S} / {m}) * interval '1 s'
  FROM (SELECT g, 1 + (g::bigint * 7 % {n}) AS tk FROM generate_series(1::bigint, {m}) g) s;
CREATE SEQUENCE tasks_id_seq START {n + 1} OWNED BY tasks.id;
ALTER TABLE tasks ALTER id SET DEFAULT nextval('tasks_id_seq');
CREATE SEQUENCE comments_id_seq START {m + 1} OWNED BY comments.id;
ALTER TABLE comments ALTER id SET DEFAULT nextval('comments_id_seq');
"""  # noqa: S608 - numbers and this module's fixed lists only


def shapes(scale: float) -> list[Shape]:
    c = counts(scale)
    t, u, p, n = c["tenants"], c["users"], c["projects"], c["tasks"]
    upt, ppt = u // t, p // t

    def tenant(r: random.Random) -> int:
        return r.randint(1, t)

    def user_of(r: random.Random, tn: int) -> int:
        return tn + t * r.randrange(upt)

    def tenant_user(r: random.Random) -> tuple[Any, ...]:
        tn = tenant(r)
        return (tn, user_of(r, tn))

    def tenant_project_status(r: random.Random) -> tuple[Any, ...]:
        tn = tenant(r)
        return (tn, tn + t * r.randrange(ppt), r.choice(["todo", "doing", "review"]))

    def email(r: random.Random) -> tuple[Any, ...]:
        g = r.randint(1, u)
        return (f"user{g}@tenant{1 + (g - 1) % t}.example.com",)

    def exact_email(r: random.Random) -> tuple[Any, ...]:
        g = r.randint(1, u)
        return (f"User{g}@Tenant{1 + (g - 1) % t}.example.com",)

    def task_of_tenant(r: random.Random) -> tuple[Any, ...]:
        tk = r.randint(1, n)
        return (1 + (tk - 1) % t, tk)

    def since(r: random.Random) -> tuple[Any, ...]:
        return (tenant(r), ts(SPAN_S - r.randint(3, 30) * 86400))

    def new_comment(r: random.Random) -> tuple[Any, ...]:
        tk = r.randint(1, n)
        tn = 1 + (tk - 1) % t
        return (tn, tk, user_of(r, tn), f"a new comment {r.randrange(10**6)}")

    def new_task(r: random.Random) -> tuple[Any, ...]:
        tn = tenant(r)
        return (tn, tn + t * r.randrange(ppt), user_of(r, tn), "todo", r.randrange(5), f"new task {r.randrange(10**6)}")

    return [
        Shape(
            "my tasks (tenant, assignee, newest)",
            "SELECT id, title, status, created_at FROM tasks WHERE tenant_id = $1 AND assignee_id = $2"
            " ORDER BY created_at DESC LIMIT 20",
            tenant_user,
            40,
        ),
        Shape(
            "login (lower(email))",
            "SELECT id, tenant_id, name FROM users WHERE lower(email) = lower($1)",
            email,
            30,
        ),
        Shape("user by exact email", "SELECT id, name, status FROM users WHERE email = $1", exact_email, 20),
        Shape(
            "open tasks of a project by status",
            "SELECT id, title, priority FROM tasks WHERE tenant_id = $1 AND project_id = $2 AND status = $3"
            " ORDER BY priority DESC, created_at LIMIT 50",
            tenant_project_status,
            30,
        ),
        Shape(
            "task counts per status (tenant)",
            "SELECT status, count(*) FROM tasks WHERE tenant_id = $1 GROUP BY status",
            lambda r: (tenant(r),),
            10,
        ),
        Shape(
            "overdue tasks (tenant)",
            "SELECT id, title, due_date FROM tasks WHERE tenant_id = $1 AND status <> 'done' AND due_date < $2"
            " ORDER BY due_date LIMIT 50",
            lambda r: (tenant(r), (ts(r.randint(30, 300) * 86400)).date()),
            10,
        ),
        Shape(
            "comments of a task with authors",
            "SELECT c.id, c.body, c.created_at, u.name FROM comments c JOIN users u ON u.id = c.author_id"
            " WHERE c.tenant_id = $1 AND c.task_id = $2 ORDER BY c.created_at",
            task_of_tenant,
            30,
        ),
        Shape(
            "active projects of a tenant",
            "SELECT id, name FROM projects WHERE tenant_id = $1 AND NOT archived ORDER BY name",
            lambda r: (tenant(r),),
            10,
        ),
        Shape(
            "recent comments of a tenant",
            "SELECT id, task_id, created_at FROM comments WHERE tenant_id = $1 AND created_at >= $2"
            " ORDER BY created_at DESC LIMIT 50",
            since,
            10,
        ),
        Shape(
            "count users of a tenant by status",
            "SELECT count(*) FROM users WHERE tenant_id = $1 AND status = $2",
            lambda r: (tenant(r), r.choice(["active", "invited"])),
            5,
        ),
        Shape(
            "tasks updated since (tenant)",
            "SELECT count(*) FROM tasks WHERE tenant_id = $1 AND updated_at >= $2",
            since,
            5,
        ),
        Shape("task by id", "SELECT * FROM tasks WHERE id = $1", lambda r: (r.randint(1, n),), 30),
        Shape(
            "move a task (UPDATE status)",
            "UPDATE tasks SET status = $1, updated_at = now() WHERE id = $2",
            lambda r: (r.choice(["doing", "review", "done"]), r.randint(1, n)),
            20,
            write=True,
        ),
        Shape(
            "add a comment (INSERT)",
            "INSERT INTO comments (tenant_id, task_id, author_id, body, created_at) VALUES ($1, $2, $3, $4, now())",
            new_comment,
            30,
            write=True,
        ),
        Shape(
            "create a task (INSERT)",
            "INSERT INTO tasks (tenant_id, project_id, assignee_id, status, priority, title, created_at, updated_at,"
            " due_date) VALUES ($1, $2, $3, $4, $5, $6, now(), now(), current_date + 14)",
            new_task,
            10,
            write=True,
        ),
    ]


# EXPERT: written first, before asymm's advisor was ever run on this workload (2026-12-02), by
# reading the shapes above as a careful DBA would: one composite per access path that matters,
# equality columns first, then the sort; an expression index for the case-insensitive login;
# no index for the primary-key read or the low-weight count that a tenant-leading index serves.
EXPERT = [
    "CREATE INDEX expert_tasks_tenant_assignee_created ON tasks (tenant_id, assignee_id, created_at DESC)",
    "CREATE INDEX expert_tasks_tenant_project_status ON tasks (tenant_id, project_id, status)",
    "CREATE INDEX expert_tasks_tenant_status_due ON tasks (tenant_id, status, due_date)",
    "CREATE INDEX expert_users_lower_email ON users (lower(email))",
    "CREATE INDEX expert_users_email ON users (email)",
    "CREATE INDEX expert_users_tenant_status ON users (tenant_id, status)",
    "CREATE INDEX expert_comments_task ON comments (task_id)",
    "CREATE INDEX expert_comments_tenant_created ON comments (tenant_id, created_at DESC)",
    "CREATE INDEX expert_projects_tenant ON projects (tenant_id)",
]

WORKLOAD = Workload(
    name="saas",
    description="multi-tenant OLTP: tasks 1.5M, comments 1M, users 200k, projects 50k, tenants 2k (scale 1)",
    schema=schema,
    shapes=shapes,
    expert=EXPERT,
)
