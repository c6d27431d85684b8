"""The test layers: ``unit`` (no servers), ``integration`` (a real PostgreSQL + Redis sandbox) and
``regress`` (pg_regress files, run by ``make installcheck``).

The harness's fixtures are pytest plugins, registered here once for every layer; they are all lazy, so
a unit test (which asks for none of them) starts no server.
"""

pytest_plugins = [
    "tests.harness.databases",
    "tests.harness.daemon_process",
    "tests.harness.sync_helpers",
]
