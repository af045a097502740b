"""Micro-benchmark of the statement classifier: microseconds per classify() call on each path.

Run: ``python bench/classify_bench.py [--number N]``. No assertions: numbers depend on the machine.

"same text" rows repeat one query text: past the keyword scan they are answered by the exact-text
cache. "new literal" rows cycle through more texts than the exact-text cache holds, all with one
digest: each call is an exact-text miss and a digest-cache hit (the case of a real workload, where ids
change from call to call). Their time includes ~0.03 us for fetching the next text.
"""

from __future__ import annotations

import argparse
import itertools
import timeit
from collections.abc import Callable

from rwproxy.router.classify import Classifier
from rwproxy.router.digest import digest_text

POINT_SELECT = "SELECT c FROM sbtest1 WHERE id=4242"
RANGE_SELECT = "SELECT id, k, c, pad FROM sbtest1 WHERE id BETWEEN 4242 AND 4342 ORDER BY c LIMIT 10"
LOCKING_SELECT = "SELECT c FROM sbtest1 WHERE id=4242 FOR UPDATE"
HINTED_SELECT = "/* rwproxy:primary */ SELECT c FROM sbtest1 WHERE id=4242"
UPDATE = "UPDATE sbtest1 SET k=k+1 WHERE id=4242"
SET_AUTOCOMMIT = "SET autocommit=0"
WITH_SELECT = "WITH cte AS (SELECT id FROM sbtest1 WHERE k=5) SELECT c FROM sbtest1 JOIN cte USING (id)"
ORM_SELECT = (
    "SELECT `sbtest1`.`id`, `sbtest1`.`c` FROM `sbtest1` WHERE `sbtest1`.`id` = 4242"
    " AND `sbtest1`.`k` IN (1, 2, 3) FOR UPDATE"
)

# More distinct texts than the exact-text cache holds (TEXT_CACHE_SIZE = 1024): every lookup misses it.
_VARIANTS = 4096


def new_literal_each_call(sql: str, literal: str = "4242") -> Callable[[], str]:
    """A function returning ``sql`` with ``literal`` replaced by another number on each call (cycling)."""
    assert literal in sql
    texts = [sql.replace(literal, str(10_000 + i)) for i in range(_VARIANTS)]
    return itertools.cycle(texts).__next__


def per_call_us(fn: Callable[[], object], number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--number", type=int, default=20000)
    n = ap.parse_args().number

    warm = Classifier()
    cold = Classifier(cache_size=0)  # every lookup misses
    for sql in (LOCKING_SELECT, WITH_SELECT, HINTED_SELECT, ORM_SELECT):
        warm.classify(sql)
    locking = new_literal_each_call(LOCKING_SELECT)
    with_select = new_literal_each_call(WITH_SELECT, "5")
    orm = new_literal_each_call(ORM_SELECT)
    hinted = new_literal_each_call(HINTED_SELECT)

    rows: list[tuple[str, Callable[[], object], int]] = [
        ("fast path: point select", lambda: warm.classify(POINT_SELECT), n),
        ("fast path: range select", lambda: warm.classify(RANGE_SELECT), n),
        ("fast path: UPDATE", lambda: warm.classify(UPDATE), n),
        ("fast path: SET autocommit=0", lambda: warm.classify(SET_AUTOCOMMIT), n),
        ("hinted point select, same text", lambda: warm.classify(HINTED_SELECT), n),
        ("hinted point select, new literal (lexed, no cache)", lambda: warm.classify(hinted()), n),
        ("cache hit, same text: SELECT ... FOR UPDATE", lambda: warm.classify(LOCKING_SELECT), n),
        ("cache hit, same text: WITH ... SELECT", lambda: warm.classify(WITH_SELECT), n),
        ("digest-cache hit, new literal: SELECT ... FOR UPDATE", lambda: warm.classify(locking()), n),
        ("digest-cache hit, new literal: WITH ... SELECT", lambda: warm.classify(with_select()), n),
        ("digest-cache hit, new literal: ORM backquoted FOR UPDATE", lambda: warm.classify(orm()), n),
        ("first time, token analysis: SELECT ... FOR UPDATE", lambda: cold.classify(LOCKING_SELECT), n),
        ("first time, sqlglot parse: WITH ... SELECT", lambda: cold.classify(WITH_SELECT), max(n // 100, 50)),
        ("digest_text: point select", lambda: digest_text(POINT_SELECT), n),
        ("digest_text: ORM backquoted FOR UPDATE", lambda: digest_text(ORM_SELECT), n),
    ]
    width = max(len(name) for name, _, _ in rows)
    for name, fn, number in rows:
        print(f"{name:<{width}}  {per_call_us(fn, number):8.2f} us/call")
    print(f"(sqlglot C extension loaded: {_sqlglotc_loaded()})")


def _sqlglotc_loaded() -> bool:
    import sqlglot.parser

    return not str(getattr(sqlglot.parser, "__file__", "")).endswith(".py")


if __name__ == "__main__":
    main()
