"""``SessionHost``: what a client session needs from the proxy that runs it, and nothing more.

Sessions (``rwproxy.frontend.*``) are typed against this class, never against ``rwproxy.app``:
``ProxyApp`` is a ``SessionHost`` (it subclasses it and fills the fields in), so the frontend does
not import the app and the app imports the frontend, not the other way round.

A concrete class rather than a ``typing.Protocol`` on purpose: compiled (``rwproxy.native``), a
session reads ``app.topology``, ``app.routing``, ``app.stats`` ... per statement as C struct fields
of a native class; through a Protocol each read would be a generic attribute lookup.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rwproxy.backend.pool import BackendCredentials, Pool
    from rwproxy.config import Config
    from rwproxy.failover.controller import FailoverController
    from rwproxy.frontend.preauth import PreauthGate
    from rwproxy.frontend.session import ClientSession
    from rwproxy.frontend.universal import PositionBatch
    from rwproxy.frontend.unreachable import ConnectFailures
    from rwproxy.observability.digests import DigestTable
    from rwproxy.observability.latency import LatencyHistogram
    from rwproxy.observability.stats import ProxyStats
    from rwproxy.protocol.auth import RsaKeyPair, UserCredential
    from rwproxy.router.classify import Classifier
    from rwproxy.router.routing_state import RoutingState
    from rwproxy.router.session_state import Consistency
    from rwproxy.topology.model import Topology
    from rwproxy.topology.monitor import Monitor

__all__ = ["SessionHost"]


class SessionHost:
    """Read per statement: ``topology`` (an immutable snapshot, replaced whole), ``routing``
    (``RoutingState``, replaced whole on reload), ``classifier``, ``stats``, ``digests``,
    ``latency``, ``failover`` (write buffering). Per connection: the rest."""

    config: Config
    topology: Topology
    routing: RoutingState
    classifier: Classifier
    pool: Pool
    stats: ProxyStats
    digests: DigestTable | None  # None: [admin] query_digest = false
    latency: LatencyHistogram | None  # None: [admin] latency_histogram = false
    sessions: dict[int, ClientSession]
    connect_failures: ConnectFailures  # rwproxy.frontend.unreachable
    preauth: PreauthGate  # clients not yet authenticated (rwproxy.frontend.preauth)
    position_batch: PositionBatch | None  # universal reads (rwproxy.frontend.universal)
    monitor: Monitor | None
    failover: FailoverController | None
    tls_context: ssl.SSLContext | None
    rsa: RsaKeyPair
    sha2_cache: set[str]
    server_version: str
    server_capabilities: int

    def next_session_id(self) -> int:
        raise NotImplementedError

    def lookup_user(self, name: str) -> UserCredential | None:
        raise NotImplementedError

    def backend_credentials(self, name: str) -> BackendCredentials:
        raise NotImplementedError

    def default_database(self, name: str) -> str | None:
        raise NotImplementedError

    def user_consistency(self, name: str) -> Consistency:
        """The consistency a session of ``name`` starts with (the user's, else routing's)."""
        raise NotImplementedError

    def user_multiplex(self, name: str) -> bool:
        raise NotImplementedError

    def user_connection_limit(self, name: str) -> int | None:
        raise NotImplementedError

    def topology_signal(self, node_name: str, error_code: int) -> None:
        """A server answered as if its role changed (ERROR 1290/1836 read-only): check it now."""
        raise NotImplementedError
