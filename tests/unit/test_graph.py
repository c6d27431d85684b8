"""Statement parsing of the graph, without a server."""

from __future__ import annotations

from asymm import graph


def test_statement_parsing() -> None:
    use = graph.statement_uses("WITH x AS (SELECT id FROM a) INSERT INTO b (id) SELECT id FROM x JOIN c USING (k)")
    assert use is not None
    assert use.reads == {(None, "a"), (None, "c")} and use.writes == {(None, "b")}
    assert graph.statement_uses("not sql at all") is None
