"""The running proxy: config, topology snapshot, classifier, pools, sessions, listeners.

``ProxyApp`` builds every part and hands each the narrow view of itself that part uses (sessions:
``rwproxy.frontend.host.SessionHost``, its base class; failover, coordination, admin, reload: the
Protocols in their packages), so nothing imports this module but the entry points. The topology
(``app.topology``) and the routing settings (``app.routing``) are immutable objects replaced whole;
sessions read them once per statement, without locks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rwproxy.backend.connection import BackendConnection, BackendError
from rwproxy.backend.own_account import own_account, own_credentials
from rwproxy.backend.pool import BackendCredentials, Pool
from rwproxy.config import Config, UserConfig
from rwproxy.coordination import Coordinator
from rwproxy.discovery.wiring import AwsParts
from rwproxy.failover.controller import FailoverController, SwitchoverError
from rwproxy.frontend import read_timeouts
from rwproxy.frontend.host import SessionHost
from rwproxy.frontend.preauth import PreauthGate
from rwproxy.frontend.unreachable import ConnectFailures
from rwproxy.observability.digests import DigestTable
from rwproxy.observability.latency import LatencyHistogram
from rwproxy.observability.stats import ProxyStats
from rwproxy.protocol.auth import RsaKeyPair, UserCredential, parse_native_hash
from rwproxy.protocol.constants import UTF8MB4_GENERAL_CI, Capability
from rwproxy.router.classify import Classifier
from rwproxy.router.routing_state import RoutingState
from rwproxy.router.session_state import Consistency
from rwproxy.topology.model import Node, Topology
from rwproxy.topology.monitor import Monitor

if TYPE_CHECKING:
    from rwproxy.admin.http import AdminHttp
    from rwproxy.admin.sql import AdminSql
    from rwproxy.frontend.session import ClientSession
    from rwproxy.frontend.universal import PositionBatch
    from rwproxy.reload import ReloadResult
    from rwproxy.workers.hooks import WorkerHooks

__all__ = ["ProxyApp", "ProxyStats", "advertised_capabilities"]

log = logging.getLogger(__name__)

# What rwproxy can offer a client (further limited to what the backend supports).
_OFFERED = (
    Capability.LONG_PASSWORD
    | Capability.FOUND_ROWS
    | Capability.LONG_FLAG
    | Capability.CONNECT_WITH_DB
    | Capability.IGNORE_SPACE
    | Capability.PROTOCOL_41
    | Capability.INTERACTIVE
    | Capability.IGNORE_SIGPIPE
    | Capability.TRANSACTIONS
    | Capability.SECURE_CONNECTION
    | Capability.MULTI_STATEMENTS
    | Capability.MULTI_RESULTS
    | Capability.PS_MULTI_RESULTS
    | Capability.PLUGIN_AUTH
    | Capability.CONNECT_ATTRS
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.SESSION_TRACK
    | Capability.DEPRECATE_EOF
)


def advertised_capabilities(
    backend_capabilities: int, *, tls: bool, local_infile: bool, query_attributes: bool = True
) -> int:
    caps = int(_OFFERED) & backend_capabilities
    caps |= Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH
    if query_attributes:  # whatever the backend: rwproxy strips them (rwproxy.frontend.query_attributes)
        caps |= Capability.QUERY_ATTRIBUTES
    if tls:
        caps |= Capability.SSL
    if local_infile:
        caps |= Capability.LOCAL_FILES & backend_capabilities
    return int(caps)  # a plain int: the sessions test bits of it per command (IntFlag & costs ~1 us)


class ProxyApp(SessionHost):
    """The composition root: builds every part and hands each consumer its narrow view of itself
    (sessions: ``SessionHost``; failover: ``rwproxy.failover.ports``; admin: ``rwproxy.admin.ports``)."""

    def __init__(self, config: Config, *, config_path: str | Path | None = None) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path is not None else None  # for reload_config
        self.reload_lock = asyncio.Lock()
        self.topology: Topology = config.topology()
        self.classifier = Classifier(config.routing.classifier_cache_size)
        # Rules, policy options, sticky reads, in-flight counts: replaced whole by a reload.
        self.routing = RoutingState.from_config(config.routing)
        backend = config.backend
        self.pool = Pool(
            max_per_server=backend.pool_max_per_server,
            connect_timeout=backend.connect_timeout_seconds,
            idle_seconds=backend.pool_idle_seconds,
            ssl_context=_backend_ssl(config),
            track_gtids=config.routing.gtid_tracking,
            wait_timeout=backend.pool_wait_timeout_seconds,
        )
        self.stats = ProxyStats()
        self.connect_failures = ConnectFailures()  # seen by sessions (rwproxy.frontend.unreachable)
        self.sessions: dict[int, ClientSession] = {}
        self.preauth = PreauthGate()  # clients not yet authenticated (rwproxy.frontend.preauth)
        self.position_batch: PositionBatch | None = None  # universal reads (rwproxy.frontend.universal)
        self._ids = itertools.count(1)
        self.tls_context = _frontend_ssl(config)
        self.rsa = RsaKeyPair.generate()
        self.sha2_cache: set[str] = set()
        self.server_version = config.proxy.server_version or "10.11.0-rwproxy"
        self.server_capabilities = advertised_capabilities(
            0xFFFFFFFF,
            tls=self.tls_context is not None,
            local_infile=config.proxy.local_infile,
            query_attributes=config.proxy.query_attributes,
        )
        self._users = {u.name: u for u in config.users}
        # Users removed by a reload: their open sessions keep their backend credentials (rwproxy.reload).
        self._retired_users: dict[str, UserConfig] = {}
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._read_sweeper: asyncio.Task[None] | None = None  # routing.replica_read_timeout_seconds
        self.admin_http: AdminHttp | None = None
        self.admin_sql: AdminSql | None = None
        # Servers drained by an operator (rwproxy.admin.drain); applied to every published snapshot.
        self.drained: frozenset[str] = frozenset()
        # Whether the last published topology had a usable replica (None: none published yet).
        self.replicas_usable: bool | None = None
        admin = config.admin
        self.digests: DigestTable | None = None  # query digests, recorded by the sessions
        if admin.query_digest:
            self.digests = DigestTable(admin.query_digest_size, admin.query_digest_example_chars)
        # Query latency by route (observability.latency), recorded by the sessions; None: histogram off.
        self.latency: LatencyHistogram | None = LatencyHistogram() if admin.latency_histogram else None
        self.monitor: Monitor | None = (
            Monitor.from_config(config, on_topology=self.set_topology, ssl=self.pool.ssl_context)
            if config.monitor.enabled
            else None
        )
        # RDS discovery ([topology] source = "rds") and [backend] credentials: rwproxy.discovery.wiring.
        self.aws = AwsParts(config, self.monitor)
        # Outcome of the last `rwproxy drill` per scenario (POST /drills; rwproxy_drill_* metrics).
        self.drill_results: dict[str, dict[str, Any]] = {}
        # Failover, switchover, write buffering ([failover]); none without the monitor or with mode "off".
        self.failover: FailoverController | None = (
            FailoverController(self, self.monitor)
            if self.monitor is not None and config.failover.mode != "off"
            else None
        )
        # Several instances agree through etcd ([coordination]): only the leader promotes/fences.
        self.coordination: Coordinator | None = Coordinator.from_app(self) if self.failover else None
        # Worker processes ([proxy] workers > 1, rwproxy.workers): client listeners handed in (a
        # worker's; the supervisor's: none), admin off in a worker, the supervisor's worker pool.
        self.listen_sockets: list[socket.socket] | None = None
        self.admin_enabled = True
        self.workers: WorkerHooks | None = None

    async def switchover(self, to: str | None = None) -> dict[str, Any]:
        """Planned switchover to ``to`` (else the least-lagged ONLINE replica); the report."""
        if self.failover is None:
            raise SwitchoverError('switchover needs the monitor and failover.mode other than "off"')
        return await self.failover.switchover(to)

    def set_topology(self, topology: Topology) -> None:
        """The monitor publishes a new immutable snapshot; sessions pick it up at their next statement."""
        self.topology = topology.with_drained(self.drained) if self.drained else topology
        self.aws.topology_published()
        if self.failover is not None:
            self.failover.on_topology(topology)
        self._note_replica_availability(self.topology)
        self.connect_failures.on_topology(self.topology)

    def _note_replica_availability(self, topology: Topology) -> None:
        """One WARNING when no replica is usable any more (reads go to the primary, or fail with
        on_no_replica = "error"), one INFO when one is usable again: per transition, never per query."""
        if not topology.replicas:  # no replica configured: nothing to fall back from
            return
        usable = bool(topology.eligible_replicas())
        if usable == self.replicas_usable:
            return
        was, self.replicas_usable = self.replicas_usable, usable
        if not usable:
            self.stats.no_replica_periods += 1
            what = (
                "reads go to the primary (routing.on_no_replica = primary)"
                if self.routing.policy_options.on_no_replica_primary
                else "reads fail (routing.on_no_replica = error)"
            )
            states = ", ".join(
                f"{n.name} {n.state.value}" + (f" ({n.reason})" if n.reason else "")
                for n in topology.replicas
            )
            log.warning("no replica is usable: %s; %s", what, states)
        elif was is not None:
            names = ", ".join(n.name for n in topology.eligible_replicas())
            log.info("replicas usable again (%s): reads go to replicas", names)

    def topology_signal(self, node_name: str, error_code: int) -> None:
        """A server answered as if its role changed (ERROR 1290/1836 read-only): check it now."""
        self.stats.read_only_errors += 1
        if self.monitor is not None:
            self.monitor.request_probe(node_name)

    # -- users -------------------------------------------------------------------------------

    def lookup_user(self, name: str) -> UserCredential | None:
        user = self._users.get(name)
        if user is None:
            return None
        if user.password is not None:
            pw = user.password.encode()
            return UserCredential(name=name, password=pw, native_stage2=None)
        assert user.password_hash is not None
        return UserCredential(name=name, password=None, native_stage2=parse_native_hash(user.password_hash))

    def backend_credentials(self, name: str) -> BackendCredentials:
        user = self._users.get(name) or self._retired_users[name]
        return self.aws.credentials(user.backend_user or name, user.backend_password or "")

    def default_database(self, name: str) -> str | None:
        user = self._users.get(name)
        return user.default_database if user is not None else None

    def user_consistency(self, name: str) -> Consistency:
        """The consistency a session of ``name`` starts with (the user's, else routing's)."""
        user = self._users.get(name)
        chosen = user.consistency if user is not None and user.consistency else None
        return Consistency(chosen or self.config.routing.consistency)

    def user_multiplex(self, name: str) -> bool:
        user = self._users.get(name)
        return user is None or user.multiplex is not False

    def user_connection_limit(self, name: str) -> int | None:
        user = self._users.get(name)
        return user.max_connections if user is not None else None

    def replace_users(
        self,
        users: Iterable[UserConfig],
        *,
        removed: Sequence[str] = (),
        added: Sequence[str] = (),
        changed: Sequence[str] = (),
    ) -> None:
        """A reload's users: new ones log in at once; a removed user's open sessions keep its backend
        credentials until they end; a removed or changed user's caching_sha2 fast auth is forgotten."""
        before = self._users
        self._users = {u.name: u for u in users}
        for name in removed:
            self._retired_users[name] = before[name]  # for the sessions it still has
        for name in added:
            self._retired_users.pop(name, None)
        for name in (*removed, *changed):
            self.sha2_cache.discard(name)  # caching_sha2 fast auth must see the new password

    def next_session_id(self) -> int:
        self.stats.client_connections += 1
        return next(self._ids)

    async def reload_config(self) -> ReloadResult:
        """Re-read the config file (``config_path``) and apply what can change live (``rwproxy.reload``).

        Raises ``rwproxy.reload.ReloadError`` (the old config stays) when the file is invalid."""
        from rwproxy.reload import reload_app

        result = await reload_app(self)
        if self.workers is not None:  # the supervisor: each worker re-reads the file too
            await self.workers.config_reloaded()
        return result

    # -- lifecycle ---------------------------------------------------------------------------

    async def probe_backend(self) -> None:
        """Learn the primary's version and capabilities, to announce them to clients."""
        primary = self.topology.primary
        if primary is None:
            return
        try:
            conn = await self._side_connection(primary)
        except BackendError as exc:
            log.warning("cannot reach the primary at start-up (%s); announcing defaults", exc)
            return
        if not self.config.proxy.server_version:
            self.server_version = conn.server_version
        self.server_capabilities = advertised_capabilities(
            conn.server_capabilities,
            tls=self.tls_context is not None,
            local_infile=self.config.proxy.local_infile,
            query_attributes=self.config.proxy.query_attributes,
        )
        self.pool.release(conn)

    async def start(self) -> list[tuple[str, int]]:
        from rwproxy.frontend.session import ClientSession

        self.pool.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_idle_clients())
        self._read_sweeper = asyncio.get_running_loop().create_task(read_timeouts.sweep(self))
        await self.aws.start()  # credentials read, first RDS discovery done (servers handed to the monitor)
        if self.monitor is not None:
            await self.monitor.start()  # the first snapshot is in place before clients come
        if self.coordination is not None:
            await self.coordination.start()
        if self.failover is not None:
            await self.failover.start()
        await self.probe_backend()
        loop = asyncio.get_running_loop()
        bound: list[tuple[str, int]] = []

        def new_session() -> asyncio.BaseProtocol:  # a protocol by its methods (see ClientSession)
            return cast("asyncio.BaseProtocol", ClientSession(self))

        servers: list[asyncio.Server] = []
        if self.listen_sockets is not None:  # rwproxy.workers: bound by the supervisor
            for listen_socket in self.listen_sockets:
                servers.append(await loop.create_server(new_session, sock=listen_socket, backlog=1024))
        else:
            for host, port in self.config.proxy.listen_addresses:
                # backlog: a login storm (thousands of clients at once) must not overflow the accept
                # queue (asyncio's default is 100): the kernel would drop handshakes.
                servers.append(
                    await loop.create_server(new_session, host, port, reuse_address=True, backlog=1024)
                )
        for server in servers:
            self._servers.append(server)
            # typeshed says tuple, uvloop returns a list: read it untyped (compiled code checks types)
            for sock in cast(Any, server).sockets:
                addr = sock.getsockname()
                bound.append((str(addr[0]), int(addr[1])))
        if bound:
            log.info("rwproxy listening on %s", ", ".join(f"{h}:{p}" for h, p in bound))
        if not self.admin_enabled:
            return bound
        from rwproxy.admin.http import start_admin_http
        from rwproxy.admin.sql import start_admin_sql

        registry = self.workers.registry() if self.workers is not None else None  # instance-wide
        self.admin_http = await start_admin_http(self, registry=registry)  # None: http_listen = ""
        self.admin_sql = await start_admin_sql(self)  # None when off or without [[admin.users]]
        return bound

    def restart_idle_sweeper(self) -> None:
        """A reload changed rwproxy.client_idle_timeout_seconds: the sweeper starts over with it."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_idle_clients())

    async def _sweep_idle_clients(self) -> None:
        """Close clients idle longer than rwproxy.client_idle_timeout_seconds (like wait_timeout).

        No per-query cost: sessions count commands; the sweeper notices when a count stops moving.
        """
        timeout = self.config.proxy.client_idle_timeout_seconds
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(max(timeout / 4, 0.05), 30.0))
            now = loop.time()
            for session in list(self.sessions.values()):
                count, since = session.idle_mark
                if session.commands != count or session.busy or since == 0.0:
                    session.idle_mark = (session.commands, now)
                elif now - since >= timeout:
                    log.info("session %d: idle for %.0f s; closing", session.id, now - since)
                    self.stats.idle_closed += 1
                    session.close()

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let running statements finish up to ``grace`` seconds, close."""
        if self.admin_http is not None:
            await self.admin_http.stop()
        if self.admin_sql is not None:
            await self.admin_sql.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._read_sweeper is not None:
            self._read_sweeper.cancel()
        for server in self._servers:
            server.close()
        grace = self.config.proxy.shutdown_grace_seconds if grace is None else grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and any(s.busy for s in self.sessions.values()):
            await asyncio.sleep(0.05)
        for session in list(self.sessions.values()):
            session.close()
        await asyncio.sleep(0)
        if self.failover is not None:
            await self.failover.stop()
        if self.coordination is not None:
            await self.coordination.stop()
        await self.aws.stop()
        if self.monitor is not None:
            await self.monitor.stop()
        await self.pool.close()

    async def _side_connection(self, node: Node) -> BackendConnection:
        """A pooled connection of rwproxy's own (``own_account(config, "side")``), not a client's."""
        return await self.pool.acquire(
            node_name=node.name,
            host=node.host,
            port=node.port,
            creds=own_credentials(own_account(self.config, "side"), self.aws.credentials),
            client_flags=0,
            collation_id=UTF8MB4_GENERAL_CI,
        )


def _frontend_ssl(config: Config) -> ssl.SSLContext | None:
    p = config.proxy
    if p.tls_cert is None or p.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(p.tls_cert), str(p.tls_key))
    return ctx


def _backend_ssl(config: Config) -> ssl.SSLContext | None:
    b = config.backend
    if not b.tls:
        return None
    ctx = ssl.create_default_context(cafile=str(b.tls_ca) if b.tls_ca else None)
    if not b.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
