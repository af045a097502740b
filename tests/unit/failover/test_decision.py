"""Table-driven tests of rwproxy.failover.decision: is the primary dead, whom to promote, who may
rejoin. Pure functions, so every case is a row: inputs -> (decision, words the reason must contain).

These are the split-brain guards: a case that flips from "no" to "yes" is a failover (or a rejoin)
that should not have happened."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rwproxy.failover.decision import Candidate, ReplicaView, choose_candidate, may_rejoin, primary_is_dead


def up(name: str, io: bool | None = False, sql: bool | None = True) -> ReplicaView:
    """A reachable replica; ``io``: its IO thread still receives from the primary."""
    return ReplicaView(name, True, io, sql)


def down(name: str) -> ReplicaView:
    return ReplicaView(name, False, None, None)


# -- primary_is_dead ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadCase:
    id: str
    reachable: bool
    failures: int
    replicas: tuple[ReplicaView, ...]
    dead: bool
    why: str
    needed: int = 3
    verify: bool = True


DEAD_CASES = [
    DeadCase("reachable-primary-is-alive", True, 0, (up("r1"),), False, "failed 0 of 3"),
    # a reachable primary is alive whatever the failure counter says (it is reset on the next check)
    DeadCase("reachable-wins-over-counter", True, 5, (up("r1"),), False, "failed 5 of 3"),
    DeadCase("too-few-failures", False, 2, (up("r1"), up("r2")), False, "failed 2 of 3"),
    DeadCase("one-failure-is-never-enough", False, 1, (), False, "failed 1 of 3", verify=False),
    DeadCase("enough-failures-confirmed", False, 3, (up("r1"), up("r2")), True, "confirmed by r1, r2"),
    DeadCase("more-failures-confirmed", False, 9, (up("r1"),), True, "9 failed checks"),
    # the proxy may be the one cut off: without a reachable replica nothing confirms it
    DeadCase("no-replica-reachable", False, 3, (down("r1"), down("r2")), False, "proxy cut off"),
    DeadCase("no-replicas-at-all", False, 3, (), False, "no replica is reachable"),
    # split brain guard: a replica still streams from the primary, so only our path to it broke
    DeadCase("replica-still-receives", False, 3, (up("r1", io=True), up("r2")), False, "r1 still receive"),
    DeadCase(
        "every-receiving-replica-named", False, 3, (up("r1", io=True), up("r2", io=True)), False, "r1, r2"
    ),
    # an unreachable replica's stale io_running=True must not veto (it is not consulted at all)
    DeadCase(
        "unreachable-replica-not-consulted",
        False,
        3,
        (ReplicaView("r1", False, True, True), up("r2")),
        True,
        "confirmed by r2",
    ),
    # only the reachable replicas confirm, and the reason names them
    DeadCase("confirmation-names-reachable-only", False, 3, (down("r1"), up("r2")), True, "confirmed by r2"),
    # a replica whose IO state is unknown (None) does not veto: it does not receive, as far as we know
    DeadCase("io-unknown-does-not-veto", False, 3, (up("r1", io=None),), True, "confirmed by r1"),
    DeadCase("sql-thread-irrelevant", False, 3, (up("r1", sql=False),), True, "confirmed by r1"),
    # without verification the counter alone decides, even with the replicas unreachable or receiving
    DeadCase("no-verify-counter-decides", False, 3, (), True, "3 failed checks", verify=False),
    DeadCase("no-verify-ignores-replicas", False, 3, (up("r1", io=True),), True, "3 failed", verify=False),
    DeadCase("needed-1", False, 1, (up("r1"),), True, "confirmed by r1", needed=1),
    DeadCase("needed-5-at-4", False, 4, (up("r1"),), False, "failed 4 of 5", needed=5),
]


@pytest.mark.parametrize("case", DEAD_CASES, ids=[c.id for c in DEAD_CASES])
def test_primary_is_dead(case: DeadCase) -> None:
    dead, why = primary_is_dead(case.reachable, case.failures, case.needed, case.replicas, case.verify)
    assert (dead, case.why in why) == (case.dead, True), why


# -- choose_candidate --------------------------------------------------------------------------


def cand(
    name: str,
    fetched: str | None = None,
    applied: str | None = None,
    priority: int = 0,
    sql_error: bool = False,
    order: int = 0,
) -> Candidate:
    return Candidate(name, fetched, applied, priority, sql_error, order)


@dataclass(frozen=True)
class ChooseCase:
    id: str
    candidates: tuple[Candidate, ...]
    chosen: str | None
    why: str


CHOOSE_CASES = [
    ChooseCase("nobody", (), None, "none reachable"),
    ChooseCase("single", (cand("r1", "0-1-5"),), "r1", "r1 is the most advanced"),
    # what it fetched counts (it applies its relay log before taking writes), not only what it applied
    ChooseCase(
        "fetched-beats-applied",
        (cand("r1", "0-1-10", "0-1-4", order=0), cand("r2", "0-1-8", "0-1-8", order=1)),
        "r1",
        "GTID 0-1-10",
    ),
    ChooseCase(
        "applied-when-fetched-unknown", (cand("r1", None, "0-1-7"), cand("r2", None, "0-1-6")), "r1", "0-1-7"
    ),
    ChooseCase(
        "more-advanced-beats-priority",
        (cand("r1", "0-1-5", priority=10, order=0), cand("r2", "0-1-6", order=1)),
        "r2",
        "r2",
    ),
    ChooseCase(
        "tie-broken-by-priority",
        (cand("r1", "0-1-5", order=0), cand("r2", "0-1-5", priority=2, order=1)),
        "r2",
        "r2",
    ),
    ChooseCase(
        "tie-broken-by-config-order",
        (cand("r2", "0-1-5", order=1), cand("r1", "0-1-5", order=0)),
        "r1",
        "r1",
    ),
    # never promoted: a stopped SQL thread (it may be missing transactions it will never apply) ...
    ChooseCase(
        "replication-error-never",
        (cand("r1", "0-1-99", sql_error=True), cand("r2", "0-1-3", order=1)),
        "r2",
        "r2",
    ),
    # ... or a server the operator excluded with priority < 0
    ChooseCase(
        "negative-priority-never", (cand("r1", "0-1-99", priority=-1), cand("r2", "0-1-1")), "r2", "r2"
    ),
    ChooseCase(
        "all-excluded-named",
        (cand("r1", "0-1-9", sql_error=True), cand("r2", "0-1-9", priority=-1)),
        None,
        "r1 (replication error), r2 (priority < 0)",
    ),
    ChooseCase("unknown-positions-still-promotable", (cand("r1"),), "r1", "GTID -"),
    # a garbled position counts as no progress, it does not crash the decision
    ChooseCase("garbled-position", (cand("r1", "garbage"), cand("r2", "0-1-1", order=1)), "r2", "r2"),
    ChooseCase("known-beats-unknown", (cand("r1", order=0), cand("r2", "0-1-1", order=1)), "r2", "r2"),
    # MySQL GTID sets: more transactions received wins
    ChooseCase(
        "mysql-gtid-sets",
        (
            cand("r1", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20", order=0),
            cand("r2", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23", order=1),
        ),
        "r2",
        "1-23",
    ),
]


@pytest.mark.parametrize("case", CHOOSE_CASES, ids=[c.id for c in CHOOSE_CASES])
def test_choose_candidate(case: ChooseCase) -> None:
    chosen, why = choose_candidate(case.candidates)
    assert (chosen.name if chosen else None) == case.chosen, why
    assert case.why in why


# -- may_rejoin --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RejoinCase:
    id: str
    old: str | None  # what the old primary had written
    promoted_at: str | None  # the new primary's position when it was promoted
    ok: bool
    why: str


REJOIN_CASES = [
    RejoinCase("nothing-lost", "0-1-5", "0-1-5", True, "is contained in 0-1-5"),
    RejoinCase("new-primary-ahead", "0-1-5", "0-1-7", True, "contained"),
    RejoinCase("never-wrote", "", "0-1-7", True, "(empty)"),
    # the split-brain case: the old primary took writes nobody else has
    RejoinCase("old-primary-ahead", "0-1-8", "0-1-7", False, "transactions the new primary lacks"),
    RejoinCase("other-domain-only-on-old", "0-1-5,1-1-2", "0-1-9", False, "not contained"),
    RejoinCase("multi-domain-contained", "0-1-5,1-1-2", "0-1-9,1-2-3", True, "contained"),
    RejoinCase("server-id-does-not-matter", "0-1-5", "0-2-5", True, "contained"),
    RejoinCase(
        "mysql-contained",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9",
        True,
        "contained",
    ),
    RejoinCase(
        "mysql-gap-on-new",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-4:6-9",
        False,
        "lacks",
    ),
    RejoinCase("garbled", "nonsense", "0-1-7", False, "cannot compare"),
    # unknown is not empty: a position we could not read never lets a server rejoin
    RejoinCase("old-unknown", None, "0-1-7", False, "unknown"),
    RejoinCase("promoted-at-unknown", "0-1-5", None, False, "unknown"),
    RejoinCase("promoted-at-unknown-old-empty", "", None, False, "unknown"),
]


@pytest.mark.parametrize("case", REJOIN_CASES, ids=[c.id for c in REJOIN_CASES])
def test_may_rejoin(case: RejoinCase) -> None:
    ok, why = may_rejoin(case.old, case.promoted_at)
    assert (ok, case.why in why) == (case.ok, True), why
