"""Table-driven tests of rwproxy.router.fallback: what a statement does when its server cannot serve it."""

from __future__ import annotations

from functools import partial

import pytest

from rwproxy.router.fallback import (
    read_fallback,
    route_to_server,
    waits_after_connect_failure,
    waits_for_primary,
)
from rwproxy.router.policy import PolicyOptions, Route, RouteReason, Strategy, Target
from rwproxy.topology.model import NodeState, Role, Topology
from tests.support.builders import node

T = Target
RR = RouteReason
ONLINE, OFFLINE = NodeState.ONLINE, NodeState.OFFLINE


_node = partial(node, lag=0.0)  # these tables' replicas are up to date unless a case says otherwise


P = _node("db1", Role.PRIMARY)
R1, R2 = _node("r1"), _node("r2", lag=5.0)
STD = Topology((P, R1, R2))
ONE_REPLICA = Topology((P, R1))
PRIMARY_DOWN = Topology((_node("db1", Role.PRIMARY, state=OFFLINE), R1, R2))
NO_PRIMARY = Topology((R1, R2))

READ_R1 = Route(T.REPLICA, R1, RR.READ)
FALLBACK_OPTIONS = PolicyOptions(strategy=Strategy.LEAST_LAG)  # deterministic choice
ERROR_OPTIONS = PolicyOptions(on_no_replica_primary=False, strategy=Strategy.LEAST_LAG)


@pytest.mark.parametrize(
    ("case", "r", "topology", "tried", "options", "max_lag", "expected"),
    [
        (
            "plain read: another replica",
            READ_R1,
            STD,
            ["r1"],
            FALLBACK_OPTIONS,
            None,
            ("r2", T.REPLICA, RR.REPLICA_RETRY),
        ),
        (
            "hint replica: another replica",
            Route(T.REPLICA, R1, RR.HINT_REPLICA),
            STD,
            ["r1"],
            FALLBACK_OPTIONS,
            None,
            ("r2", T.REPLICA, RR.REPLICA_RETRY),
        ),
        (
            "retry failed too: the primary",
            Route(T.REPLICA, R2, RR.REPLICA_RETRY),
            STD,
            ["r1", "r2"],
            FALLBACK_OPTIONS,
            None,
            ("db1", T.PRIMARY, RR.REPLICA_UNREACHABLE),
        ),
        (
            "only replica: the primary",
            READ_R1,
            ONE_REPLICA,
            ["r1"],
            FALLBACK_OPTIONS,
            None,
            ("db1", T.PRIMARY, RR.REPLICA_UNREACHABLE),
        ),
        (
            "max_lag excludes the lagging replica",
            READ_R1,
            STD,
            ["r1"],
            FALLBACK_OPTIONS,
            1.0,
            ("db1", T.PRIMARY, RR.REPLICA_UNREACHABLE),
        ),
        (
            "causal read never moves to another replica",
            Route(T.REPLICA, R1, RR.CAUSAL_APPLIED),
            STD,
            ["r1"],
            FALLBACK_OPTIONS,
            None,
            ("db1", T.PRIMARY, RR.REPLICA_UNREACHABLE),
        ),
        (
            "primary not ONLINE: nowhere",
            READ_R1,
            Topology((_node("db1", Role.PRIMARY, state=OFFLINE), R1)),
            ["r1"],
            FALLBACK_OPTIONS,
            None,
            None,
        ),
        (
            "no primary: nowhere",
            Route(T.REPLICA, R1, RR.CAUSAL_WAIT),
            NO_PRIMARY,
            ["r1"],
            FALLBACK_OPTIONS,
            None,
            None,
        ),
        ("on_no_replica = error: never the primary", READ_R1, ONE_REPLICA, ["r1"], ERROR_OPTIONS, None, None),
        (
            "on_no_replica = error: another replica still",
            READ_R1,
            STD,
            ["r1"],
            ERROR_OPTIONS,
            None,
            ("r2", T.REPLICA, RR.REPLICA_RETRY),
        ),
        (
            "primary tried already: nowhere",
            Route(T.REPLICA, R1, RR.REPLICA_RETRY),
            ONE_REPLICA,
            ["r1", "db1"],
            FALLBACK_OPTIONS,
            None,
            None,
        ),
        (
            "a statement for the primary never falls back",
            Route(T.PRIMARY, P, RR.STATEMENT),
            STD,
            ["db1"],
            FALLBACK_OPTIONS,
            None,
            None,
        ),
    ],
)
def test_read_fallback(
    case: str,
    r: Route,
    topology: Topology,
    tried: list[str],
    options: PolicyOptions,
    max_lag: float | None,
    expected: tuple[str, Target, RouteReason] | None,
) -> None:
    got = read_fallback(r, topology, tried, options, 0.5, max_lag)
    if expected is None:
        assert got is None, case
    else:
        assert got is not None, case
        assert got.node is not None
        assert (got.node.name, got.target, got.reason) == expected, case


WRITE = Route(T.PRIMARY, P, RR.STATEMENT)
NOWHERE = Route(T.PRIMARY, None, RR.NO_PRIMARY)


@pytest.mark.parametrize(
    ("case", "r", "buffering", "active", "in_txn", "split", "expected"),
    [
        ("primary known, buffer idle: send", WRITE, True, False, False, False, False),
        ("primary moving: wait", WRITE, True, True, False, False, True),
        ("no primary: wait", NOWHERE, True, False, False, False, True),
        ("no failover configured: never", NOWHERE, False, True, False, False, False),
        ("inside a transaction: never", NOWHERE, True, True, True, False, False),
        ("split brain: never", NOWHERE, True, True, False, True, False),
        ("a read on a replica: never", READ_R1, True, True, False, False, False),
    ],
)
def test_waits_for_primary(
    case: str, r: Route, buffering: bool, active: bool, in_txn: bool, split: bool, expected: bool
) -> None:
    got = waits_for_primary(
        r, buffering=buffering, buffer_active=active, in_transaction=in_txn, split_brain=split
    )
    assert got is expected, case


@pytest.mark.parametrize(
    ("case", "r", "errno", "buffering", "in_txn", "split", "expected"),
    [
        ("cannot connect (2003): wait", WRITE, 2003, True, False, False, True),
        ("too many connections (1040): wait", WRITE, 1040, True, False, False, True),
        ("server shutting down (1053): wait", WRITE, 1053, True, False, False, True),
        ("access denied (1045): fail", WRITE, 1045, True, False, False, False),
        ("lost transaction (2013): fail", WRITE, 2013, True, False, False, False),
        ("no failover configured: fail", WRITE, 2003, False, False, False, False),
        ("inside a transaction: fail", WRITE, 2003, True, True, False, False),
        ("split brain: fail", WRITE, 2003, True, False, True, False),
        ("a replica read: not this (read_fallback)", READ_R1, 2003, True, False, False, False),
    ],
)
def test_waits_after_connect_failure(
    case: str, r: Route, errno: int, buffering: bool, in_txn: bool, split: bool, expected: bool
) -> None:
    got = waits_after_connect_failure(r, errno, buffering=buffering, in_transaction=in_txn, split_brain=split)
    assert got is expected, case


@pytest.mark.parametrize(
    ("name", "expected"),
    [("db1", (T.PRIMARY, "db1")), ("r1", (T.REPLICA, "r1")), ("gone", (T.REPLICA, None))],
)
def test_route_to_server(name: str, expected: tuple[Target, str | None]) -> None:
    r = route_to_server(STD, name)
    assert (r.target, r.node.name if r.node is not None else None) == expected
    assert r.reason is RR.STATEMENT


def test_primary_down_topology_gives_no_fallback_to_it() -> None:
    assert read_fallback(READ_R1, PRIMARY_DOWN, ["r1"], FALLBACK_OPTIONS, 0.5) == Route(
        T.REPLICA, R2, RR.REPLICA_RETRY
    )
    assert read_fallback(READ_R1, PRIMARY_DOWN, ["r1", "r2"], FALLBACK_OPTIONS, 0.5) is None
