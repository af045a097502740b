"""The election and its guards against a real 3-member etcd cluster (no MariaDB needed)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from rwproxy.coordination.election import Elector, NotLeader
from rwproxy.coordination.etcd import EtcdClient
from rwproxy.dev.cluster.net import free_port
from tests.support.etcd import EtcdCluster, etcd_available

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed")

TTL = 2


@pytest.fixture
async def electors(etcd_cluster: EtcdCluster) -> AsyncIterator[Callable[[str], Elector]]:
    prefix = f"/rwproxy-test/{uuid.uuid4().hex[:8]}"
    made: list[Elector] = []

    def make(name: str, endpoints: list[str] | None = None) -> Elector:
        client = EtcdClient(endpoints or etcd_cluster.endpoints, timeout=0.6)
        e = Elector(client, prefix, name, TTL)
        made.append(e)
        return e

    yield make
    for e in made:
        await e.resign()
        await e.client.close()


async def test_exactly_one_of_two_leads(electors: Callable[[str], Elector]) -> None:
    a, b = electors("a"), electors("b")
    await a.round()
    await b.round()
    await a.round()
    assert a.etcd_up and b.etcd_up
    assert a.is_leader and not b.is_leader
    assert b.leader_name == "a"
    assert "a leads, not b" in b.why_not_leader()
    await a.guard("promote x")  # holds
    with pytest.raises(NotLeader, match="a leads, not b"):
        await b.guard("promote x")


async def test_guard_fails_at_once_when_the_lease_is_gone(electors: Callable[[str], Elector]) -> None:
    a = electors("a")
    await a.round()
    assert a.is_leader
    await a.client.revoke(a.lease)  # what etcd does when the lease expires: the key goes with it
    assert a.is_leader  # our own clock does not know yet...
    with pytest.raises(NotLeader, match="not ours"):
        await a.guard("promote x")  # ...but the Txn on the leader key refuses the step
    assert not a.is_leader and a.leadership_lost == 1


async def test_another_takes_over_after_the_ttl(electors: Callable[[str], Elector]) -> None:
    a, b = electors("a"), electors("b")
    await a.round()
    await b.round()
    assert a.is_leader and not b.is_leader
    started = time.monotonic()  # a stops renewing (killed, partitioned)
    while not b.is_leader:
        assert time.monotonic() - started < TTL + 10, "b never took over"
        await b.round()
    took = time.monotonic() - started
    assert took >= TTL - 0.5  # not before a's lease could have expired
    await a.round()  # a comes back: its lease is gone, b holds the key
    assert not a.is_leader and a.leader_name == "b"
    with pytest.raises(NotLeader):
        await a.guard("promote x")


async def test_publish_bumps_the_epoch_only_on_the_leader(electors: Callable[[str], Elector]) -> None:
    a, b = electors("a"), electors("b")
    await a.round()
    await b.round()
    first = await a.publish("db1", None, "")
    second = await a.publish("db2", "db1", "0-1-5")
    assert (first.epoch, second.epoch) == (1, 2)
    assert (second.primary, second.from_, second.position, second.leader) == ("db2", "db1", "0-1-5", "a")
    await b.round()
    assert b.published is not None and (b.published.primary, b.published.epoch) == ("db2", 2)
    with pytest.raises(NotLeader):
        await b.publish("db3", "db2", "")
    await a.round()
    assert a.published is not None and a.published.epoch == 2


async def test_unreachable_etcd_means_observe_only(electors: Callable[[str], Elector]) -> None:
    dead = electors("x", [f"127.0.0.1:{free_port()}"])
    await dead.round()
    assert not dead.etcd_up and not dead.is_leader
    assert "etcd is unreachable" in dead.why_not_leader()
    with pytest.raises(NotLeader, match="etcd is unreachable"):
        await dead.guard("promote x")


async def test_one_member_down_is_not_an_outage(
    electors: Callable[[str], Elector], etcd_cluster: EtcdCluster
) -> None:
    a = electors("a")
    await a.round()
    assert a.is_leader
    a.client._current = 0
    etcd_cluster.pause(0)  # the member a talks to first stops answering
    try:
        # The others answer (after a raft election if the paused member led etcd: new leaders
        # renew every lease, so ours survives).
        deadline = time.monotonic() + 10
        await a.round()
        while not a.etcd_up and time.monotonic() < deadline:
            await a.round()
        assert a.etcd_up and a.is_leader, a.last_error
        assert a.client.endpoint != f"http://{etcd_cluster.endpoints[0]}"
        await a.guard("promote x")
    finally:
        etcd_cluster.resume(0)


async def test_resign_hands_over_at_once(electors: Callable[[str], Elector]) -> None:
    a, b = electors("a"), electors("b")
    await a.round()
    await b.round()
    assert a.is_leader and not b.is_leader
    await a.resign()  # clean shutdown: the lease is revoked, the leader key goes with it
    assert not a.is_leader
    await b.round()  # no TTL to wait for
    assert b.is_leader and b.leader_name == "b"
