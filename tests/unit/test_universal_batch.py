"""``universal`` consistency: the primary-position batch (one query in flight; reads that arrive
while it runs share the next one, never an answer that may predate them) and the pure route."""

from __future__ import annotations

import asyncio

import pytest

from rwproxy.frontend.universal import PositionBatch
from rwproxy.router.classify import classify
from rwproxy.router.policy import PolicyOptions, RouteReason, Target, causal_route, route
from rwproxy.router.session_state import Consistency, SessionState
from rwproxy.topology.model import NodeState, Topology
from tests.support.builders import primary
from tests.support.builders import replica as _replica


class _Primary:
    """A position that grows on every commit; each query reads it when it is *sent*."""

    def __init__(self) -> None:
        self.seq = 10
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()

    async def fetch(self, user: str) -> str | None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        answer = f"0-1-{self.seq}"
        await self.release.wait()
        self.release.clear()
        self.in_flight -= 1
        return answer


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_batch_shares_queries_and_never_answers_from_before_a_read() -> None:
    async def scenario() -> None:
        primary = _Primary()
        batch = PositionBatch(primary.fetch)
        first = [asyncio.ensure_future(batch.position("app")) for _ in range(3)]
        await _settle()
        assert batch.queries == 1
        primary.seq = 20  # commits after the first query was sent ...
        later = [asyncio.ensure_future(batch.position("app")) for _ in range(5)]
        await _settle()
        assert batch.queries == 1  # ... the later reads wait: one query in flight at a time
        primary.release.set()
        assert await asyncio.gather(*first) == ["0-1-10"] * 3
        await _settle()
        assert batch.queries == 2  # one more query for the five that came later
        primary.release.set()
        assert await asyncio.gather(*later) == ["0-1-20"] * 5
        assert primary.most_in_flight == 1
        assert batch.queries == 2
        st = batch.stats  # what the metrics export: 8 reads shared 2 queries, none failed
        assert (st.universal_reads, st.universal_position_queries, st.universal_position_failures) == (
            8,
            2,
            0,
        )

    asyncio.run(scenario())


def test_failed_query_gives_none_and_the_next_read_asks_again() -> None:
    calls: list[str] = []

    async def fetch(user: str) -> str | None:
        calls.append(user)
        if len(calls) == 1:
            raise OSError("connection refused")
        return "0-1-5"

    async def scenario() -> None:
        batch = PositionBatch(fetch)
        assert await batch.position("a") is None
        assert await batch.position("b") == "0-1-5"
        assert calls == ["a", "b"]
        assert (batch.stats.universal_reads, batch.queries, batch.stats.universal_position_failures) == (
            2,
            2,
            1,
        )

    asyncio.run(scenario())


PRIMARY = primary(lag=0.0, gtid="0-1-100")
TOPO = Topology((PRIMARY, _replica("r1", 0.3, "0-1-90"), _replica("r2", 2.0, "0-1-80")))
NO_REPLICA = Topology((PRIMARY, _replica("r1", None, None, state=NodeState.SHUNNED)))


@pytest.mark.parametrize(
    ("sql", "topo", "expected"),
    [
        ("SELECT 1", TOPO, (Target.REPLICA, "r1", RouteReason.UNIVERSAL_WAIT)),
        ("/* rwproxy:max_lag=1 */ SELECT 1", TOPO, (Target.REPLICA, "r1", RouteReason.UNIVERSAL_WAIT)),
        ("/* rwproxy:max_lag=0.1 */ SELECT 1", TOPO, (Target.PRIMARY, "db1", RouteReason.NO_REPLICA)),
        ("UPDATE t SET a = 1", TOPO, (Target.PRIMARY, "db1", RouteReason.STATEMENT)),
        ("SELECT 1", NO_REPLICA, (Target.PRIMARY, "db1", RouteReason.NO_REPLICA)),
    ],
)
def test_universal_route(sql: str, topo: Topology, expected: tuple[Target, str, RouteReason]) -> None:
    r = route(classify(sql), SessionState(consistency=Consistency.UNIVERSAL), topo)
    assert (r.target, r.node.name if r.node else None, r.reason) == expected


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        ("0-1-85", (Target.REPLICA, "r1", RouteReason.CAUSAL_APPLIED)),
        ("0-1-95", (Target.REPLICA, "r1", RouteReason.CAUSAL_WAIT)),
        ("", (Target.REPLICA, "r1", RouteReason.CAUSAL_APPLIED)),
    ],
)
def test_route_once_the_position_is_known(position: str, expected: tuple[Target, str, RouteReason]) -> None:
    r = causal_route(TOPO, PolicyOptions(), position, None, 0.0)
    assert (r.target, r.node.name if r.node else None, r.reason) == expected
