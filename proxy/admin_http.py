"""The admin HTTP interface (aiohttp), on ``[admin] http_listen`` in the proxy's own event loop.

``GET /metrics``  Prometheus text exposition (OpenMetrics when the scraper asks for it) of a private
                  registry: :mod:`proxy.metrics`, read at scrape time; nothing is counted per query.
``GET /healthz``  200 "ok": the process and its event loop answer.
``GET /readyz``   200 when the topology has an ONLINE primary or an ONLINE replica; else 503, with
                  the reason in JSON.
``GET /status``   JSON: servers (role, state, lag, weight, pooled connections), sessions, versions,
                  uptime.

All endpoints are read-only and unauthenticated (``[admin] bearer_token`` is for mutating endpoints,
none yet). Handlers run on the proxy's loop thread, so they read its counters without locks.

    handle = await start_admin_http(app)   # None when [admin] http_listen = ""
    handle.port                            # the bound port (useful with port 0)
    await handle.stop()
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from proxy.metrics import MetricsSource, build_registry, node_lag, pool_counts, rwproxy_version

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from proxy.config import Config
    from proxy.topology.model import Node, Topology

__all__ = ["AdminHttp", "readiness", "start_admin_http", "status"]

log = logging.getLogger(__name__)


class AdminSource(MetricsSource, Protocol):
    """What the admin interface reads from ``proxy.app.ProxyApp``, beyond the metrics."""

    @property
    def config(self) -> Config: ...

    @property
    def server_version(self) -> str: ...


@dataclass(slots=True)
class AdminHttp:
    """A running admin HTTP server. ``addresses``: every bound (host, port); ``host``/``port``: the first."""

    runner: web.AppRunner
    addresses: list[tuple[str, int]]

    @property
    def host(self) -> str:
        return self.addresses[0][0]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


def readiness(topology: Topology) -> tuple[bool, dict[str, Any]]:
    """(ready, JSON body) for /readyz: ready when some ONLINE server can take statements."""
    primary = topology.primary
    primary_online = primary is not None and primary.online
    replicas = [n.name for n in topology.replicas if n.online]
    body: dict[str, Any] = {
        "ready": primary_online or bool(replicas),
        "primary": primary.name if primary_online and primary is not None else None,
        "online_replicas": replicas,
    }
    if not body["ready"]:
        if primary is None:
            body["reason"] = "no primary is known and no replica is ONLINE"
        else:
            body["reason"] = f"primary {primary.name} is {primary.state.value} and no replica is ONLINE"
    return bool(body["ready"]), body


def _node_status(app: MetricsSource, node: Node) -> dict[str, Any]:
    idle, in_use = pool_counts(app, node)
    doc: dict[str, Any] = {
        "name": node.name,
        "host": node.host,
        "port": node.port,
        "role": node.role.value,
        "state": node.state.value,
        "reason": getattr(node, "reason", None),
        "lag_seconds": node_lag(node),  # null while unknown, never 0
        "weight": node.weight,
        "pool": {"idle": idle, "in_use": in_use},
    }
    # RDS discovery: the API's intended role differs from the server's read_only (the server wins).
    disagreement = _role_disagreement(app, node.name)
    if disagreement is not None:
        doc["role_disagreement"] = disagreement
    return doc


def _role_disagreement(app: object, name: str) -> str | None:
    aws = getattr(app, "aws", None)
    return aws.role_disagreement(name) if aws is not None else None


def status(app: AdminSource, *, started: float) -> dict[str, Any]:
    """The /status document. ``started``: ``time.monotonic()`` when the proxy started."""
    topology = app.topology
    ready, _ = readiness(topology)
    doc: dict[str, Any] = {
        "version": rwproxy_version(),
        "server_version": app.server_version,
        "uptime_seconds": round(time.monotonic() - started, 3),
        "ready": ready,
        "sessions": len(app.sessions),
        "topology_version": topology.version,
        "nodes": [_node_status(app, n) for n in topology.nodes],
    }
    aws = getattr(app, "aws", None)
    discovery = aws.status() if aws is not None else None
    if discovery is not None:
        doc["discovery"] = discovery
    return doc


class _Handlers:
    def __init__(self, app: AdminSource, registry: CollectorRegistry, started: float) -> None:
        self.app = app
        self.registry = registry
        self.started = started

    async def metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self.registry)  # synchronous, on the loop thread: a consistent read
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        ready, body = readiness(self.app.topology)
        return web.json_response(body, status=200 if ready else 503)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(status(self.app, started=self.started))


async def start_admin_http(
    app: AdminSource, *, listen: str | None = None, registry: CollectorRegistry | None = None
) -> AdminHttp | None:
    """Serve the admin interface on ``listen`` (default ``app.config.admin.http_listen``; "" = off).

    Returns None when disabled. Raises OSError when the address cannot be bound.
    """
    from proxy.config import AdminConfig

    address = (app.config.admin if listen is None else AdminConfig(http_listen=listen)).http_address
    if address is None:
        return None
    handlers = _Handlers(app, registry if registry is not None else build_registry(app), time.monotonic())
    web_app = web.Application()
    web_app.router.add_get("/metrics", handlers.metrics)
    web_app.router.add_get("/healthz", handlers.healthz)
    web_app.router.add_get("/readyz", handlers.readyz)
    web_app.router.add_get("/status", handlers.status)
    runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, address[0], address[1], reuse_address=True).start()
    except BaseException:
        await runner.cleanup()
        raise
    addresses = [(str(a[0]), int(a[1])) for a in runner.addresses]
    handle = AdminHttp(runner, addresses)
    log.info("admin HTTP on %s (/metrics /healthz /readyz /status)", handle.url)
    return handle
