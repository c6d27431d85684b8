"""Fingerprint properties that need no server (the comparison with the SQL side is in tests/integration)."""

from __future__ import annotations

from asymm.annotations.fingerprint import query_fingerprint


def test_fingerprint_ignores_constants_case_comments_and_spacing() -> None:
    base = query_fingerprint("SELECT * FROM orders WHERE id = $1")
    assert query_fingerprint("select *\n from ORDERS  where id=42 -- hot path") == base
    assert query_fingerprint('SELECT * FROM "orders" WHERE id = 7;') == base
    assert query_fingerprint("SELECT * FROM orders WHERE id IN (1, 2, 3)") == query_fingerprint(
        "SELECT * FROM orders WHERE id IN ($1)"
    )
    assert query_fingerprint("SELECT * FROM customers WHERE id = 1") != base
    assert query_fingerprint('SELECT * FROM "Orders" WHERE id = 1') != base
