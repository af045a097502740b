"""routing.sticky_replica: plain reads of a session stay on one replica while it is usable."""

from __future__ import annotations

from rwproxy.router.classify import classify
from rwproxy.router.policy import RouteReason, route
from rwproxy.router.session_state import SessionState
from rwproxy.router.sticky import stick
from rwproxy.topology.model import Node, NodeState, Topology
from tests.support.builders import node, primary

PRIMARY = primary()


def replica(name: str, state: NodeState = NodeState.ONLINE) -> Node:
    return node(name, state=state)


def read(state: SessionState, topology: Topology, rand: float, sql: str = "SELECT 1") -> str | None:
    r = stick(route(classify(sql), state, topology, rand=rand), state, topology)
    return r.node.name if r.node is not None else None


def test_reads_stay_on_the_first_replica_chosen() -> None:
    topology = Topology((PRIMARY, replica("db2"), replica("db3")))
    state = SessionState()
    first = read(state, topology, 0.1)
    assert first is not None
    assert {read(state, topology, rand) for rand in (0.0, 0.3, 0.6, 0.9)} == {first}


def test_an_unusable_replica_is_given_up_and_the_next_one_sticks() -> None:
    state = SessionState()
    assert read(state, Topology((PRIMARY, replica("db2"), replica("db3"))), 0.1) == "db2"
    shunned = Topology((PRIMARY, replica("db2", NodeState.SHUNNED), replica("db3")))
    assert read(state, shunned, 0.1) == "db3"
    back = Topology((PRIMARY, replica("db2"), replica("db3")))
    assert read(state, back, 0.1) == "db3"  # stays on the new one


def test_only_plain_reads_stick() -> None:
    topology = Topology((PRIMARY, replica("db2"), replica("db3")))
    state = SessionState()
    assert read(state, topology, 0.9) == "db3"
    r = stick(route(classify("UPDATE t SET a = 1"), state, topology, rand=0.1), state, topology)
    assert r.node is PRIMARY and r.reason is RouteReason.STATEMENT
    hinted = "SELECT /* rwproxy:replica */ 1"
    r = stick(route(classify(hinted), state, topology, rand=0.1), state, topology)
    assert r.reason is RouteReason.HINT_REPLICA and r.node is not None and r.node.name == "db2"
