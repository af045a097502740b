"""rwproxy.frontend.unreachable: connect failures logged once per server per episode, the rest counted."""

from __future__ import annotations

from rwproxy.frontend.unreachable import ConnectFailures
from rwproxy.topology.model import NodeState, Topology
from tests.support.builders import node, primary, topology


def _topology(r1: NodeState) -> Topology:
    return topology(primary(), node("r1", state=r1), node("r2"))


def test_once_per_server_per_episode() -> None:
    f = ConnectFailures()
    assert [f.note("r1") for _ in range(5)] == [True, False, False, False, False]
    assert f.note("r2") is True  # another server: its own episode
    f.on_topology(_topology(NodeState.ONLINE))  # still ONLINE: the same episode
    assert f.note("r1") is False
    f.on_topology(_topology(NodeState.OFFLINE))  # the monitor took over
    assert f.note("r1") is False  # a statement routed there just before: counted only
    f.on_topology(_topology(NodeState.ONLINE))  # back: the episode ended
    assert f.note("r1") is True
    assert f.counts == {"r1": 8, "r2": 1}
