"""The advisor's repair of normalized statements, without a server."""

from __future__ import annotations

from asymm.advisor.rewrite import repair_tokens


def test_repairs_what_normalization_breaks() -> None:
    text, forced, _ = repair_tokens("select * from t where d > date $1 and ts < now() - interval $2")
    assert text == "select * from t where d > ($1::date) and ts < now() - ($2::interval)"
    assert forced == {1: "date", 2: "interval"}
    text, forced, _ = repair_tokens("select extract($1 from d) from t where s = 'date $9'")
    assert text == "select extract(epoch from d) from t where s = 'date $9'"
    assert forced == {1: "text"}
    text, _, _ = repair_tokens("select * from t where ts > timestamp with time zone $1")
    assert text == "select * from t where ts > ($1::timestamptz)"
