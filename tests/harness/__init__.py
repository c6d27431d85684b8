"""The test harness: helpers (waiting, daemon processes, sync helpers, roles, catalog, browser, TCP
proxy) and the fixtures that start and use the sandbox's servers.

The fixture modules are registered once through ``pytest_plugins`` in ``tests/conftest.py``.  Every
server fixture is lazy: it starts nothing until an integration test asks for it, so the unit layer
(``tests/unit``) runs with no server at all.
"""
