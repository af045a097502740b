"""The worker channel's frames (rwproxy.workers.messages), the connection-id partition
(rwproxy.workers.ids), the metric merge (rwproxy.workers.metrics) and the admin views' merges
(rwproxy.workers.views), without processes."""

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
    ProcessList,
    ProcessListReply,
    Reload,
    Reloaded,
    RowsReply,
    RowsRequest,
    Signal,
    State,
    Stop,
    encode,
)
from rwproxy.workers.metrics import merge_families
from rwproxy.workers.views import apply_server_counts, merge_digests, merge_servers, merge_sessions


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
        RowsRequest(8, "sessions"),
        ProcessList(10),
        ProcessListReply(10, [{"id": 5, "user": "app", "host": "127.0.0.1:5000", "db": None, "info": None}]),
        RowsReply(8, [{"id": 3, "user": "app", "db": None, "busy": 0}]),
        RowsReply(9, [{"digest": "SELECT ?", "count": 2, "first_seen": 1.5}], evicted=4),
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


def _digest(digest: str, count: int, total: int, mx: int, primary: int, first: float, example: str) -> dict:
    return {
        "digest": digest,
        "digest_id": f"id-{digest}",
        "example": example,
        "count": count,
        "total_time_us": total,
        "avg_time_us": round(total / count),
        "max_time_us": mx,
        "route": "primary" if primary == count else "replica" if primary == 0 else "mixed",
        "primary_count": primary,
        "replica_count": count - primary,
        "errors": 1 if primary else 0,
        "first_seen": first,
    }


def test_digests_of_the_workers_merge_per_digest() -> None:
    w0 = [
        _digest("SELECT c FROM t WHERE id=?", 3, 300, 200, 0, 10.0, "SELECT c FROM t WHERE id=1"),
        _digest("INSERT INTO t VALUES(?)", 1, 900, 900, 1, 12.0, "INSERT INTO t VALUES(1)"),
    ]
    w1 = [
        _digest("SELECT c FROM t WHERE id=?", 2, 500, 450, 2, 8.0, "SELECT c FROM t WHERE id=2"),
        _digest("UPDATE t SET c=?", 1, 50, 50, 1, 9.0, "UPDATE t SET c=0"),
    ]
    merged = merge_digests([w0, w1])
    assert [r["digest"] for r in merged] == [  # most used first, then by total time
        "SELECT c FROM t WHERE id=?",
        "INSERT INTO t VALUES(?)",
        "UPDATE t SET c=?",
    ]
    select = merged[0]
    assert select["count"] == 5 and select["total_time_us"] == 800 and select["avg_time_us"] == 160
    assert select["max_time_us"] == 450 and select["first_seen"] == 8.0
    assert select["primary_count"] == 2 and select["replica_count"] == 3 and select["route"] == "mixed"
    assert select["errors"] == 1
    assert select["example"] == "SELECT c FROM t WHERE id=1"  # one example text: the first worker's
    assert merged[1] == w0[1] and merged[2] == w1[1]  # a digest of one worker only: as it was
    assert w0[0]["count"] == 3  # the inputs are not changed
    assert merge_digests([]) == [] and merge_digests([[], w1]) == merge_digests([w1])


def test_sessions_of_the_workers_get_their_worker_column() -> None:
    rows = merge_sessions(
        {
            1: [{"id": 2, "user": "a", "worker": 0}, {"id": 4, "user": "b", "worker": 0}],
            0: [{"id": 3, "user": "c", "worker": 0}, {"id": 1, "user": "d", "worker": 0}],
        }
    )
    assert [(r["id"], r["worker"], r["user"]) for r in rows] == [
        (1, 0, "d"),
        (2, 1, "a"),
        (3, 0, "c"),
        (4, 1, "b"),
    ]
    assert merge_sessions({}) == []


def test_server_counts_of_the_workers_add_up_and_reach_the_status_document() -> None:
    w0 = [
        {"server": "db1", "idle": 1, "in_use": 2, "lendable": 0, "client_sessions": 2, "queries": 7},
        {"server": "db2", "idle": 3, "in_use": 0, "lendable": 1, "client_sessions": 3, "queries": 9},
    ]
    w1 = [{"server": "db1", "idle": 0, "in_use": 1, "lendable": 1, "client_sessions": 1, "queries": 4}]
    counts = merge_servers([w0, w1])
    assert counts["db1"] == {"idle": 1, "in_use": 3, "lendable": 1, "client_sessions": 3, "queries": 11}
    assert counts["db2"] == {"idle": 3, "in_use": 0, "lendable": 1, "client_sessions": 3, "queries": 9}
    doc = {"nodes": [{"name": "db1"}, {"name": "db2"}, {"name": "db3"}]}
    apply_server_counts(doc, counts)
    db1, db2, db3 = doc["nodes"]
    assert db1["pool"] == {"idle": 1, "in_use": 3, "lendable": 1} and db1["connections"] == 4
    assert db1["client_sessions"] == 3 and db2["connections"] == 3
    assert db3["connections"] == 0 and db3["client_sessions"] == 0  # no worker knows it: zeros
