"""What the admin interfaces read and call of the proxy they serve.

``AdminHost``: the HTTP interface (``rwproxy.admin.http``: /status, /metrics, drain, switchover,
reload, drills) on top of the metrics collector's ``MetricsSource``. ``AdminSqlHost``: the SQL
interface's tables (``rwproxy.admin.tables``) also read the sessions and the pool themselves.
``rwproxy.app.ProxyApp`` satisfies both; admin never imports the app, and test fakes implement
these protocols (mypy checks them: ``tests/unit/test_metrics.py`` is in mypy's files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rwproxy.observability.metrics import MetricsSource

if TYPE_CHECKING:
    from rwproxy.backend.pool import Pool
    from rwproxy.config import Config
    from rwproxy.coordination.coordinator import Coordinator
    from rwproxy.discovery.wiring import AwsParts
    from rwproxy.failover.controller import FailoverController
    from rwproxy.frontend.session import ClientSession
    from rwproxy.observability.digests import DigestTable
    from rwproxy.observability.stats import ProxyStats
    from rwproxy.reload import ReloadResult
    from rwproxy.router.routing_state import RoutingState
    from rwproxy.topology.model import Topology

__all__ = ["AdminHost", "AdminSqlHost"]


class AdminHost(MetricsSource, Protocol):
    # Written by a drain (rwproxy.admin.drain), read by everything else.
    topology: Topology
    drained: frozenset[str]

    @property
    def config(self) -> Config: ...

    @property
    def server_version(self) -> str: ...

    @property
    def digests(self) -> DigestTable | None: ...

    @property
    def routing(self) -> RoutingState: ...

    @property
    def failover(self) -> FailoverController | None: ...

    @property
    def coordination(self) -> Coordinator | None: ...

    @property
    def aws(self) -> AwsParts: ...

    @property
    def drill_results(self) -> dict[str, dict[str, Any]]:
        """The last ``rwproxy drill`` summary per scenario (POST /drills stores them)."""
        ...

    async def switchover(self, to: str | None = None) -> dict[str, Any]: ...

    async def reload_config(self) -> ReloadResult: ...


class AdminSqlHost(AdminHost, Protocol):
    @property
    def sessions(self) -> Mapping[int, ClientSession]: ...

    @property
    def pool(self) -> Pool: ...

    @property
    def stats(self) -> ProxyStats: ...
