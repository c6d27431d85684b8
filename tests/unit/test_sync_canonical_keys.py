"""The integer fast path of the canonical key text, checked against the C source's rule without a server."""

from __future__ import annotations

import decimal

from hypothesis import given
from hypothesis import strategies as st

from asymm.sync.keys import fast_key_text


@given(st.integers(-(2**31), 2**31 - 1), st.integers(0, 3))
def test_int_fast_path_is_postgres_text(value: int, zeros: int) -> None:
    assert fast_key_text(["integer"], ["0" * zeros + str(value)]) in (str(value), None)
    assert fast_key_text(["integer"], [value]) == str(value)
    assert fast_key_text(["uuid"], ["{00000000-0000-0000-0000-0000000000AB}"]) == "00000000-0000-0000-0000-0000000000ab"
    assert fast_key_text(["integer"], [decimal.Decimal(1)]) is None  # (PostgreSQL decides)
