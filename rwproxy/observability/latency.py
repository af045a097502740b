"""Query latency by route, kept as plain per-bucket ints: the hot path costs one bisect and two adds.

    hist = LatencyHistogram()
    hist.primary.counts[bisect_left(BOUNDS, seconds)] += 1; hist.primary.sum += seconds  # per statement
    hist.observe(seconds, primary=True)                                                  # the same
    hist.snapshot()   # {"primary": (cumulative buckets [(le, count)...], sum), "replica": ...}

The session (``rwproxy.frontend.session``) records every statement answered by a backend: the seconds
from sending it to the end of its response (a causal wait included), under the route's target
(``primary`` / ``replica``). ``observability.metrics`` turns the snapshot into the Prometheus histogram
``rwproxy_query_duration_seconds{route}`` at scrape time; no prometheus-client object is touched per
statement. Only the event-loop thread writes; a scrape copies each counts list in one step.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["BOUNDS", "LatencyHistogram", "RouteLatency"]

#: Bucket upper bounds in seconds (``le``), from 100 µs (a point select on loopback) to 10 s.
BOUNDS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class RouteLatency:
    """One route's histogram: ``counts[i]`` statements took at most ``BOUNDS[i]`` seconds and more
    than ``BOUNDS[i-1]``; ``counts[-1]`` took longer than the last bound. ``sum`` in seconds."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BOUNDS, seconds)] += 1
        self.sum += seconds

    def snapshot(self) -> tuple[list[tuple[float, int]], float]:
        """(cumulative [(le, count), ..., (inf, total)], sum)."""
        counts = list(self.counts)  # one step: a consistent copy
        total = self.sum
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*BOUNDS, float("inf")), counts, strict=True):
            running += n
            out.append((bound, running))
        return out, total


class LatencyHistogram:
    """Per route target: ``primary`` and ``replica``."""

    __slots__ = ("primary", "replica")

    def __init__(self) -> None:
        self.primary = RouteLatency()
        self.replica = RouteLatency()

    def observe(self, seconds: float, primary: bool) -> None:
        (self.primary if primary else self.replica).observe(seconds)

    def snapshot(self) -> dict[str, tuple[list[tuple[float, int]], float]]:
        return {"primary": self.primary.snapshot(), "replica": self.replica.snapshot()}
