"""``FailoverHost``: what the failover controller (and its switchover, AWS and report steps) reads of
the proxy that runs it. ``rwproxy.app.ProxyApp`` satisfies it; the failover package never imports
the app (``tests/unit/test_import_graph.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rwproxy.coordination.hooks import Coordinated

if TYPE_CHECKING:
    from rwproxy.config import Config
    from rwproxy.discovery.wiring import AwsParts
    from rwproxy.topology.model import Topology

__all__ = ["FailoverHost"]


class FailoverHost(Coordinated, Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def topology(self) -> Topology: ...

    @property
    def sessions(self) -> Mapping[int, Any]:
        """The client sessions (``rwproxy.frontend.session.ClientSession``): a switchover drains
        them (``rwproxy.failover.buffer.drain_sessions``)."""
        ...

    @property
    def aws(self) -> AwsParts:
        """RDS failover (``failover.mode = "rds"``) acts through its clients."""
        ...
