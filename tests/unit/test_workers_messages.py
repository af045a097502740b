"""The worker channel's frames (rwproxy.workers.messages), the connection-id partition
(rwproxy.workers.ids) and the metric merge (rwproxy.workers.metrics), without processes."""

from __future__ import annotations

import pickle
import struct

import pytest

from rwproxy.topology.gtid import parse_position
from rwproxy.topology.model import Node, NodeState, Role, Topology
from rwproxy.workers.ids import session_ids, worker_of
from rwproxy.workers.messages import (
    MAX_FRAME,
    Decoder,
    Drain,
    Drained,
    FrameError,
    Hello,
    Kill,
    Killed,
    MetricsReply,
    MetricsRequest,
    Reload,
    Reloaded,
    Signal,
    State,
    Stop,
    encode,
)
from rwproxy.workers.metrics import merge_families


def _topology() -> Topology:
    return Topology(
        nodes=(
            Node("db1", "127.0.0.1", 3306, Role.PRIMARY, gtid=parse_position("0-1-42")),
            Node("db2", "127.0.0.1", 3307, Role.REPLICA, lag_seconds=0.5, weight=2),
            Node("db3", "127.0.0.1", 3308, Role.REPLICA, state=NodeState.OFFLINE, reason="connect_failed"),
        ),
        version=7,
    )


def test_a_state_carries_the_topology_and_rebuilds_it() -> None:
    t = _topology()
    state = State.of(
        t,
        buffer_active=True,
        buffer_reason="failover",
        primary_ready=False,
        suspected=frozenset({"db1"}),
        flavors=(("db1", "mariadb"),),
    )
    [got] = Decoder().feed(encode(state))
    assert got == state
    assert isinstance(got, State)
    rebuilt = got.topology()
    assert rebuilt.version == 7 and rebuilt.nodes == t.nodes
    assert rebuilt.primary is not None and rebuilt.primary.name == "db1"
    assert [n.name for n in rebuilt.eligible_replicas()] == [n.name for n in t.eligible_replicas()]
    assert rebuilt.by_name["db3"].reason == "connect_failed"


def test_every_message_kind_round_trips_in_one_stream_split_anywhere() -> None:
    messages = [
        State.of(_topology()),
        Reload(3),
        MetricsRequest(4),
        Stop(2.5),
        Drain(5, "db1", 2.0),
        Drained(5, 1),
        Kill(6, 42, True, "app", False),
        Killed(6, "other_user"),
        Hello(1, 4242),
        Signal("unreachable", "db2"),
        Reloaded(3, False, "bad file"),
        MetricsReply(
            4,
            12,
            1.5,
            [("rwproxy_queries", "counter", "doc", [("rwproxy_queries_total", {"node": "db2"}, 3.0)])],
        ),
    ]
    stream = b"".join(encode(m) for m in messages)
    for step in (1, 3, 7, 64, len(stream)):
        decoder = Decoder()
        got = []
        for i in range(0, len(stream), step):
            got += decoder.feed(stream[i : i + step])
        assert got == messages, step
        assert decoder.pending == 0


def test_an_incomplete_frame_waits_for_the_rest() -> None:
    frame = encode(Hello(0, 1))
    decoder = Decoder()
    assert decoder.feed(frame[:-1]) == []
    assert decoder.pending == len(frame) - 1
    assert decoder.feed(frame[-1:]) == [Hello(0, 1)]


def test_an_oversized_length_is_refused_before_reading_it() -> None:
    with pytest.raises(FrameError, match="over the"):
        Decoder().feed(struct.pack(">I", MAX_FRAME + 1))


def test_a_frame_of_another_type_is_refused() -> None:
    body = pickle.dumps({"not": "a message"})
    with pytest.raises(FrameError, match="unexpected message type dict"):
        Decoder().feed(struct.pack(">I", len(body)) + body)


@pytest.mark.parametrize("count", [1, 2, 3, 8, 16])
def test_connection_ids_are_disjoint_across_workers_and_name_their_worker(count: int) -> None:
    seen: set[int] = set()
    for k in range(count):
        ids = session_ids(k, count)
        taken = [next(ids) for _ in range(50)]
        assert all(i > 0 for i in taken)
        assert all(worker_of(i, count) == k for i in taken)
        assert not seen & set(taken)
        seen |= set(taken)
    # Together they cover 1 .. 50 * count without gaps: no id space is wasted.
    assert seen == set(range(1, 50 * count + 1))


def test_one_worker_counts_like_a_single_process() -> None:
    ids = session_ids(0, 1)
    assert [next(ids) for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize(("index", "count"), [(-1, 2), (2, 2), (0, 0)])
def test_a_worker_index_out_of_range_is_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        session_ids(index, count)


def test_merge_sums_samples_with_the_same_labels_over_workers() -> None:
    a = [
        (
            "rwproxy_queries",
            "counter",
            "d",
            [("rwproxy_queries_total", {"node": "db2", "route_reason": "read"}, 3.0)],
        ),
        ("rwproxy_client_connections", "gauge", "g", [("rwproxy_client_connections", {}, 4.0)]),
    ]
    b = [
        (
            "rwproxy_queries",
            "counter",
            "d",
            [
                ("rwproxy_queries_total", {"node": "db2", "route_reason": "read"}, 5.0),
                ("rwproxy_queries_total", {"node": "db1", "route_reason": "statement"}, 2.0),
            ],
        ),
        ("rwproxy_client_connections", "gauge", "g", [("rwproxy_client_connections", {}, 6.0)]),
    ]
    merged = merge_families([a, b])
    assert merged["rwproxy_client_connections"][3] == [("rwproxy_client_connections", {}, 10.0)]
    assert merged["rwproxy_queries"][3] == [
        ("rwproxy_queries_total", {"node": "db2", "route_reason": "read"}, 8.0),
        ("rwproxy_queries_total", {"node": "db1", "route_reason": "statement"}, 2.0),
    ]
    assert merged["rwproxy_queries"][1] == "counter"


def test_workers_config_key() -> None:
    import os

    from pydantic import ValidationError

    from rwproxy.config import ProxyConfig

    assert ProxyConfig().worker_count == 1
    assert ProxyConfig(workers=3).worker_count == 3
    assert ProxyConfig(workers="auto").worker_count == (os.cpu_count() or 1)
    for bad in (0, "many"):
        with pytest.raises(ValidationError):
            ProxyConfig(workers=bad)


def test_rwproxy_status_prints_a_line_per_worker() -> None:
    from rwproxy.cli import render_status

    doc = {
        "nodes": [],
        "sessions": 5,
        "workers": [
            {"worker": 0, "pid": 123, "ready": True, "sessions": 5, "restarts": 1, "cpu_seconds": 2.345},
            {"worker": 1, "pid": None, "ready": False, "sessions": 0, "restarts": 0, "cpu_seconds": 0.0},
        ],
    }
    lines = render_status(doc).splitlines()
    assert lines[-2].split() == ["0", "123", "serving", "5", "1", "2.3"]
    assert lines[-1].split() == ["1", "-", "starting", "0", "0", "0.0"]
    assert "5 client sessions" in lines[0]
