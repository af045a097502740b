"""A worker's stand-ins for the monitor and failover controller (rwproxy.workers.remote) follow the
supervisor's published State; the sessions' evidence goes out as Signals."""

from __future__ import annotations

from rwproxy.topology.model import Node, Role, Topology
from rwproxy.topology.probe import Flavor
from rwproxy.workers.messages import Signal, State
from rwproxy.workers.remote import RemoteFailover, RemoteMonitor, WorkerView


def _state(**kwargs: object) -> State:
    t = Topology(nodes=(Node("db1", "h", 1, Role.PRIMARY), Node("db2", "h", 2, Role.REPLICA)), version=2)
    return State.of(t, **kwargs)  # type: ignore[arg-type]


def test_a_connect_failure_is_suspected_until_the_supervisor_has_answered_for_it() -> None:
    sent: list[Signal] = []
    view = WorkerView(sent.append)
    monitor = RemoteMonitor(view)
    view.update(_state())
    monitor.report_unreachable("db1")
    assert sent == [Signal("unreachable", "db1")]
    assert monitor.suspected("db1")  # before any answer: the worker's own evidence counts
    view.update(_state())  # a State published before the report arrived: still suspected
    assert monitor.suspected("db1")
    view.update(_state(suspected=frozenset({"db1"})))  # acknowledged: the supervisor's word from now on
    assert monitor.suspected("db1")
    view.update(_state())  # its monitor checked db1 since: no longer suspected
    assert not monitor.suspected("db1")
    monitor.request_probe("db2")
    assert sent[-1] == Signal("probe", "db2")


def test_flavors_come_from_the_state() -> None:
    view = WorkerView(lambda s: None)
    monitor = RemoteMonitor(view)
    assert monitor.flavor_of("db1") is None
    view.update(_state(flavors=(("db1", "mariadb"),)))
    assert monitor.flavor_of("db1") is Flavor.MARIADB
    assert monitor.flavor_of("db2") is None


def test_the_write_buffer_follows_the_supervisors() -> None:
    view = WorkerView(lambda s: None)
    failover = RemoteFailover(view, "promote")
    assert not failover.primary_ready()
    for state in (
        _state(primary_ready=True),
        _state(buffer_active=True, buffer_reason="failover from db1"),
        _state(buffer_active=False, primary_ready=True),
    ):
        view.update(state)
        failover.apply(state)
        assert failover.buffer.active is state.buffer_active
        assert failover.primary_ready() is state.primary_ready
        if state.buffer_active:
            assert failover.buffer.reason == "failover from db1" and failover.in_progress
