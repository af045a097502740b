"""rwproxy.coordination.hooks: what the failover controller is told, without etcd."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rwproxy.coordination.election import Published
from rwproxy.coordination.hooks import Coordinated, CoordinationView, coordination_refuses


@dataclass
class FakeElector:
    published: Published | None


@dataclass
class FakeCoordination:
    """A ``CoordinationView`` (mypy checks it: this file is in mypy's files)."""

    leads: bool
    elector: FakeElector

    def may_act(self) -> bool:
        return self.leads

    def why_not(self) -> str:
        return "b leads, not a"

    async def guard(self, step: str) -> None:
        pass

    async def publish(self, primary: str, from_: str | None, position: str) -> Published:
        return Published(primary, 1, from_, position)


@dataclass
class FakeApp:
    coordination: CoordinationView | None = None


_CHECKED: type[Coordinated] = FakeApp


def _app(leads: bool, published: Published | None) -> FakeApp:
    return FakeApp(FakeCoordination(leads, FakeElector(published)))


def test_without_coordination_nothing_is_refused() -> None:
    assert coordination_refuses(FakeApp(), min_interval=120) is None
    assert coordination_refuses(FakeApp(coordination=None)) is None


def test_a_follower_is_refused() -> None:
    assert coordination_refuses(_app(False, None)) == "b leads, not a"


def test_anti_flapping_counts_any_leaders_failover() -> None:
    recent = Published("db2", 2, "db1", "", "b", at=time.time() - 30)
    refused = coordination_refuses(_app(True, recent), min_interval=120)
    assert refused is not None and "b moved the primary to db2 (epoch 2) 30 s ago" in refused
    assert coordination_refuses(_app(True, recent), min_interval=20) is None
    assert coordination_refuses(_app(True, recent)) is None  # fencing, switchover: no interval
    # The first publication (no "from") and an old one do not count.
    assert coordination_refuses(_app(True, Published("db1", 1, at=time.time())), min_interval=120) is None
    old = Published("db2", 2, "db1", at=time.time() - 500)
    assert coordination_refuses(_app(True, old), min_interval=120) is None
