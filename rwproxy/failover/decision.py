"""Failover decisions, pure: is the primary really dead, which replica takes over, may an old
primary come back as a replica. Inputs are plain views of what the monitor and the servers said."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rwproxy.topology.gtid import parse_position

__all__ = ["Candidate", "ReplicaView", "choose_candidate", "may_rejoin", "primary_is_dead"]


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """One replica as the monitor last saw it."""

    name: str
    reachable: bool  # its last check succeeded
    io_running: bool | None  # receiving from the primary
    sql_running: bool | None  # applying


def primary_is_dead(
    primary_reachable: bool,
    primary_failures: int,
    failures_needed: int,
    replicas: Sequence[ReplicaView],
    verify: bool,
) -> tuple[bool, str]:
    """(dead, why). Dead: ``failures_needed`` failed checks in a row and, with ``verify``, at least one
    replica reachable and none of the reachable ones still receiving from the primary (it is not just
    the proxy's path to it that broke)."""
    if primary_reachable or primary_failures < failures_needed:
        return False, f"primary failed {primary_failures} of {failures_needed} checks in a row"
    if verify:
        reachable = [r for r in replicas if r.reachable]
        if not reachable:
            return False, "no replica is reachable to confirm the primary is down (is the proxy cut off?)"
        receiving = [r.name for r in reachable if r.io_running]
        if receiving:
            return False, f"replica(s) {', '.join(receiving)} still receive from the primary"
        return True, (
            f"{primary_failures} failed checks in a row, confirmed by {', '.join(r.name for r in reachable)} "
            "(their IO threads lost the primary too)"
        )
    return True, f"{primary_failures} failed checks in a row"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A replica that could be promoted, with what it has received and applied."""

    name: str
    fetched: str | None  # GTID position of its relay log's end (what it will have once applied)
    applied: str | None
    priority: int = 0
    sql_error: bool = False  # SQL thread stopped with an error: never promoted
    order: int = 0  # configuration order, the last tie-breaker


def _progress(c: Candidate) -> int:
    best = 0
    for text in (c.fetched, c.applied):
        try:
            pos = parse_position(text) if text else None
        except ValueError:
            pos = None
        if pos is not None:
            best = max(best, pos.size())
    return best


def choose_candidate(candidates: Sequence[Candidate]) -> tuple[Candidate | None, str]:
    """The most advanced replica (by GTID: what it fetched, else applied), ties by higher
    ``priority``, then configuration order. Never one with a replication (SQL) error or priority < 0."""
    eligible = [c for c in candidates if not c.sql_error and c.priority >= 0]
    if not eligible:
        excluded = ", ".join(
            f"{c.name} ({'replication error' if c.sql_error else 'priority < 0'})" for c in candidates
        )
        return None, f"no replica may be promoted: {excluded or 'none reachable'}"
    best = max(eligible, key=lambda c: (_progress(c), c.priority, -c.order))
    return (
        best,
        f"{best.name} is the most advanced eligible replica (GTID {best.fetched or best.applied or '-'})",
    )


def may_rejoin(old_position: str | None, promoted_at: str | None) -> tuple[bool, str]:
    """May a former primary replicate from the new one? Only when everything it had written was on
    the new primary when it was promoted (``promoted_at``): otherwise it has transactions nobody
    else has (they would be lost or diverge), so it stays out and the operator decides."""
    # None is "could not be read", not "empty": an unknown position never lets a server rejoin
    # (an old primary that never wrote has the empty position "", which is contained in anything).
    try:
        old = parse_position(old_position)
        new = parse_position(promoted_at)
    except ValueError as exc:
        return False, f"cannot compare GTID positions: {exc}"
    if old is None or new is None:
        return False, "GTID positions unknown"
    if old.contained_in(new):
        return True, f"its GTID position {old_position or '(empty)'} is contained in {promoted_at}"
    return False, (
        f"it has transactions the new primary lacks: {old_position} is not contained in {promoted_at} "
        "(kept read-only and out of routing; reconcile by hand, then rejoin)"
    )
