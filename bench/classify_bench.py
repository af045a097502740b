"""Micro-benchmark of the statement classifier: microseconds per classify() call on each path.

Run: ``python bench/classify_bench.py [--number N]``. No assertions: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from proxy.router.classify import Classifier
from proxy.router.digest import digest_text

POINT_SELECT = "SELECT c FROM sbtest1 WHERE id=4242"
RANGE_SELECT = "SELECT id, k, c, pad FROM sbtest1 WHERE id BETWEEN 4242 AND 4342 ORDER BY c LIMIT 10"
LOCKING_SELECT = "SELECT c FROM sbtest1 WHERE id=4242 FOR UPDATE"
HINTED_SELECT = "/* rwproxy:primary */ SELECT c FROM sbtest1 WHERE id=4242"
UPDATE = "UPDATE sbtest1 SET k=k+1 WHERE id=4242"
SET_AUTOCOMMIT = "SET autocommit=0"
WITH_SELECT = "WITH cte AS (SELECT id FROM sbtest1 WHERE k=5) SELECT c FROM sbtest1 JOIN cte USING (id)"


def per_call_us(fn: Callable[[], object], number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--number", type=int, default=20000)
    n = ap.parse_args().number

    warm = Classifier()
    cold = Classifier(cache_size=0)  # every lookup misses
    for sql in (LOCKING_SELECT, WITH_SELECT, HINTED_SELECT):
        warm.classify(sql)

    rows: list[tuple[str, Callable[[], object], int]] = [
        ("fast path: point select", lambda: warm.classify(POINT_SELECT), n),
        ("fast path: range select", lambda: warm.classify(RANGE_SELECT), n),
        ("fast path: UPDATE", lambda: warm.classify(UPDATE), n),
        ("fast path: SET autocommit=0", lambda: warm.classify(SET_AUTOCOMMIT), n),
        ("lexed: hinted point select (no cache)", lambda: warm.classify(HINTED_SELECT), n),
        ("digest-cache hit: SELECT ... FOR UPDATE", lambda: warm.classify(LOCKING_SELECT), n),
        ("digest-cache hit: WITH ... SELECT", lambda: warm.classify(WITH_SELECT), n),
        ("first time, token analysis: SELECT ... FOR UPDATE", lambda: cold.classify(LOCKING_SELECT), n),
        ("first time, sqlglot parse: WITH ... SELECT", lambda: cold.classify(WITH_SELECT), max(n // 100, 50)),
        ("digest_text: point select", lambda: digest_text(POINT_SELECT), n),
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
