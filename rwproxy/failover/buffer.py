"""Statements that need the primary wait here while it moves (failover, switchover), instead of
failing. Sessions check ``WriteBuffer.active`` (a plain bool) before sending to the primary; only
then do they await ``wait``. Reads go on on the replicas meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BufferStats", "WriteBuffer", "drain_sessions"]


@dataclass(slots=True)
class BufferStats:
    buffered: int = 0  # statements that waited
    released: int = 0  # ... and then ran
    timed_out: int = 0  # ... and failed after buffer_timeout_seconds
    waiting: int = 0  # waiting now


class WriteBuffer:
    def __init__(self) -> None:
        self.active = False
        self.reason = ""
        self.since: float | None = None
        self.stats = BufferStats()
        self._changed = asyncio.Event()

    def hold(self, reason: str) -> None:
        """From now on statements that need the primary wait (``reason`` goes into their errors)."""
        self.active = True
        self.reason = reason
        self.since = time.monotonic()
        self._poke()

    def release(self) -> None:
        self.active = False
        self.since = None
        self._poke()

    def poke(self) -> None:
        """Something changed (a new topology): waiters look again."""
        self._poke()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until the buffer is released and ``ready()`` (a usable primary) is true, at most
        ``timeout`` seconds. True when the statement may go on."""
        stats = self.stats
        stats.buffered += 1
        stats.waiting += 1
        deadline = time.monotonic() + timeout
        try:
            while True:
                if not self.active and ready():
                    stats.released += 1
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    stats.timed_out += 1
                    return False
                changed = self._changed
                # Also re-check now and then: a primary may come back without a new snapshot.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(remaining, 0.05))
        finally:
            stats.waiting -= 1


async def drain_sessions(sessions: Mapping[Any, Any], primary: str, timeout: float) -> int:
    """Wait until no session is inside a transaction or running a statement on ``primary``
    (buffered ones excepted), at most ``timeout`` seconds; returns how many were left."""
    deadline = time.monotonic() + timeout
    while True:
        left = sum(1 for s in sessions.values() if _holds(s, primary))
        if left == 0 or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(0.005)


def _holds(session: Any, primary: str) -> bool:
    if getattr(session, "buffered", False):
        return False
    if session.state.in_transaction:
        return True
    inflight = session.inflight
    node = inflight.route.node if inflight is not None else None
    return bool(session.busy and node is not None and node.name == primary)
