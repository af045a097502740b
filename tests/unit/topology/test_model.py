"""``rwproxy.topology.model``: the lag and read-weight rules every caller shares."""

from __future__ import annotations

import pytest

from rwproxy.failover.switchover import switchover_target
from rwproxy.topology.election import lag_scaled_weight
from rwproxy.topology.model import NodeState, Topology, lag_order, lag_within, read_share
from tests.support.builders import primary
from tests.support.builders import replica as _replica


def test_lag_order_puts_unknown_lag_last() -> None:
    nodes = [_replica("a", None), _replica("b", 2.0), _replica("c", 0.0), _replica("d", 0.5)]
    assert [n.name for n in sorted(nodes, key=lag_order)] == ["c", "d", "b", "a"]
    assert lag_order(_replica("z", None)) == float("inf")


@pytest.mark.parametrize(
    ("lag", "max_lag", "within"),
    [(None, 10.0, False), (0.0, 0.0, True), (1.0, 1.0, True), (1.01, 1.0, False), (5.0, 10.0, True)],
)
def test_lag_within(lag: float | None, max_lag: float, within: bool) -> None:
    assert lag_within(_replica("a", lag), max_lag) is within


def test_read_share_is_the_lag_scaled_weight_when_set() -> None:
    assert read_share(_replica("a", 0.0, weight=3)) == 3
    assert read_share(_replica("a", 5.0, weight=3, read_weight=1.5)) == 1.5
    assert read_share(_replica("a", 5.0, weight=3, read_weight=0.0)) == 0.0  # soft-lag guard: no reads


@pytest.mark.parametrize(
    ("weight", "lag", "max_lag", "expected"),
    [
        (2, 0.0, 10.0, 2.0),
        (2, 5.0, 10.0, 1.0),
        (2, 20.0, 10.0, 0.2),
        (2, None, 10.0, None),
        (2, 1.0, None, None),
    ],
)
def test_lag_scaled_weight(
    weight: int, lag: float | None, max_lag: float | None, expected: float | None
) -> None:
    assert lag_scaled_weight(weight, lag, max_lag) == pytest.approx(expected)


def test_switchover_picks_the_least_lagged_online_replica_unknown_lag_last() -> None:
    p = primary("p", lag=0.0)
    topology = Topology(
        nodes=(
            p,
            _replica("unknown", None),
            _replica("far", 3.0),
            _replica("near", 0.2),
            _replica("down", 0.0, state=NodeState.OFFLINE),
        )
    )
    assert switchover_target(topology, None).name == "near"
    only_unknown = Topology(nodes=(p, _replica("unknown", None), _replica("far", 3.0)))
    assert switchover_target(only_unknown, None).name == "far"
