"""HMAC digests of sensitive values, without a server."""

from __future__ import annotations

import json

from asymm.sync.tables import Protector, canonical

HMAC_KEY = "test-key"  # the key full_compare() protects with


def test_hmac_digests_tell_apart_numbers_a_float_confuses() -> None:
    protector = Protector("hmac", HMAC_KEY)
    assert protector.digest("12345678901234568856.1") != protector.digest("12345678901234568856.2")
    # values without a fraction or an exponent keep the digest earlier builds gave them
    assert canonical('{"b": [1, "é"], "a": null}') == json.dumps(
        {"b": [1, "é"], "a": None}, sort_keys=True, separators=(",", ":")
    )
    assert protector.digest('"4111"') == protector.digest(' "4111" ')
