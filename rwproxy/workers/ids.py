"""Connection ids unique across an instance's worker processes.

Worker ``k`` of ``n`` hands out ``k + 1, k + 1 + n, k + 1 + 2n, ...``: every id is positive, no two
workers share one, and ``worker_of(id, n)`` says which worker holds a session (for the process list
and KILL). With one worker the ids are ``1, 2, 3, ...`` as in a single process.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

__all__ = ["session_ids", "worker_of"]


def session_ids(index: int, count: int) -> Iterator[int]:
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"worker index {index} out of range for {count} workers")
    return itertools.count(index + 1, count)


def worker_of(session_id: int, count: int) -> int:
    """The index of the worker that handed out ``session_id``."""
    return (session_id - 1) % count
