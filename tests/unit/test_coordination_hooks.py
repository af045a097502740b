"""rwproxy.coordination.hooks: what the failover controller is told, without etcd."""

from __future__ import annotations

import time
from types import SimpleNamespace

from rwproxy.coordination.election import Published
from rwproxy.coordination.hooks import coordination_refuses


def _app(leads: bool, published: Published | None) -> SimpleNamespace:
    coordination = SimpleNamespace(
        may_act=lambda: leads,
        why_not=lambda: "b leads, not a",
        elector=SimpleNamespace(published=published),
    )
    return SimpleNamespace(coordination=coordination)


def test_without_coordination_nothing_is_refused() -> None:
    assert coordination_refuses(SimpleNamespace(), min_interval=120) is None
    assert coordination_refuses(SimpleNamespace(coordination=None)) is None


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
