"""The admin HTTP interface (aiohttp), on ``[admin] http_listen`` in the proxy's own event loop.

``GET /metrics``  Prometheus text exposition (OpenMetrics when the scraper asks for it) of a private
                  registry: :mod:`rwproxy.observability.metrics`, read at scrape time; no per-query work.
``GET /healthz``  200 "ok": the process and its event loop answer.
``GET /readyz``   200 when the topology has an ONLINE primary or an ONLINE replica; else 503, with
                  the reason in JSON.
``GET /status``   JSON: servers (role, state, lag, weight, pooled connections, drained), sessions,
                  versions, uptime.
``GET /digests``  JSON: the query digest table (``rwproxy.observability.digests``), most used first;
                  ``?limit=N``.
``GET /explain?sql=...``  JSON: where the statement would go now, and why, with its digest
                  (``rwproxy.admin.explain``; ``rwproxy explain --admin``).

Mutating endpoints need ``Authorization: Bearer <[admin] bearer_token>`` (401 without or with a
wrong one; 403 when no token is configured: they are off then):

``POST /servers/{name}/drain``    no new statements go to the replica ``name`` (``rwproxy.admin.drain``);
                                  running ones finish. 404 unknown server, 409 the primary.
``POST /servers/{name}/undrain``  back in the read choice.
``POST /switchover``              ``{"to": "db2"}`` (or ``?to=db2``): ``app.switchover(to)``, 200 with
                                  its report, 409 with the reason when refused or failed.
``POST /reload``                  re-read the config file (``rwproxy.reload``): 200 with what changed and
                                  what needs a restart; 400 with the reason when the file is invalid
                                  (the running config stays).

The read-only endpoints are unauthenticated. Handlers run on the proxy's loop thread, so they read its
counters without locks.

    handle = await start_admin_http(app)   # None when [admin] http_listen = ""
    handle.port                            # the bound port (useful with port 0)
    await handle.stop()
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from rwproxy import native
from rwproxy.admin.drain import DrainError, set_drained
from rwproxy.admin.ports import AdminHost
from rwproxy.admin.tables import queries_by_server, sessions_by_server
from rwproxy.failover.metrics import FailoverCollector, drill_summary, failover_status
from rwproxy.observability.metrics import (
    build_registry,
    node_lag,
    pool_counts,
    rwproxy_version,
)

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from rwproxy.topology.model import Node, Topology

__all__ = ["AdminHttp", "readiness", "start_admin_http", "status"]

log = logging.getLogger(__name__)


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
    replicas = [n.name for n in topology.replicas if n.online and not n.drained]
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


def _node_status(
    app: AdminHost, node: Node, queries: Mapping[str, int], sessions: Mapping[str, int]
) -> dict[str, Any]:
    idle, in_use = pool_counts(app, node)
    doc: dict[str, Any] = {
        "name": node.name,
        "host": node.host,
        "port": node.port,
        "role": node.role.value,
        "state": node.state.value,
        "reason": node.reason,
        "lag_seconds": node_lag(node),  # null while unknown, never 0
        "weight": node.weight,
        "pool": {"idle": idle, "in_use": in_use, "lendable": _lendable(app, node.name)},
        "drained": node.drained,
        "queries": queries.get(node.name, 0),  # statements routed to it since start
        "connections": idle + in_use,  # backend connections open to it now
        "client_sessions": sessions.get(node.name, 0),  # client sessions holding one of them
    }
    # RDS discovery: the API's intended role differs from the server's read_only (the server wins).
    disagreement = _role_disagreement(app, node.name)
    if disagreement is not None:
        doc["role_disagreement"] = disagreement
    return doc


def _lendable(app: AdminHost, name: str) -> int:
    """Connections parked by idle multiplexing sessions (rwproxy.frontend.multiplex), in ``in_use``."""
    return app.pool.parked_count(name)


def _role_disagreement(app: AdminHost, name: str) -> str | None:
    return app.aws.role_disagreement(name)


def status(app: AdminHost, *, started: float) -> dict[str, Any]:
    """The /status document. ``started``: ``time.monotonic()`` when the proxy started."""
    topology = app.topology
    ready, _ = readiness(topology)
    hot = native.status()
    queries, sessions = queries_by_server(app), sessions_by_server(app)
    doc: dict[str, Any] = {
        "version": rwproxy_version(),
        "hot_path": {"compiled": hot.active, "detail": hot.detail},
        "server_version": app.server_version,
        "uptime_seconds": round(time.monotonic() - started, 3),
        "ready": ready,
        "sessions": len(app.sessions),
        "topology_version": topology.version,
        "nodes": [_node_status(app, n, queries, sessions) for n in topology.nodes],
    }
    failover = failover_status(app.failover)
    if failover is not None:
        doc["failover"] = failover
    coordination = app.coordination
    if coordination is not None:
        doc["coordination"] = coordination.status()
    discovery = app.aws.status()
    if discovery is not None:
        doc["discovery"] = discovery
    workers = getattr(app, "workers", None)
    if workers is not None:  # worker processes (rwproxy.workers): their sessions, a line per worker
        workers.add_status(doc)
    return doc


async def _refresh_workers(app: object, *, status: bool = False) -> None:
    """With worker processes, fetch their counters first (rwproxy.workers.supervisor); for /status
    their per-server connections and sessions too."""
    workers = getattr(app, "workers", None)
    if workers is not None:
        await (workers.refresh_status() if status else workers.refresh())


class _Handlers:
    def __init__(self, app: AdminHost, registry: CollectorRegistry, started: float) -> None:
        self.app = app
        self.registry = registry
        self.started = started

    async def metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        await _refresh_workers(self.app)
        body = encoder(self.registry)  # synchronous, on the loop thread: a consistent read
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        ready, body = readiness(self.app.topology)
        return web.json_response(body, status=200 if ready else 503)

    async def status(self, request: web.Request) -> web.Response:
        await _refresh_workers(self.app, status=True)
        return web.json_response(status(self.app, started=self.started))

    async def explain(self, request: web.Request) -> web.Response:
        from rwproxy.admin.explain import live

        sql = request.query.get("sql")
        if not sql:
            return _error(400, "give the statement: /explain?sql=SELECT+...")
        return web.json_response(live(self.app, sql))

    async def digests(self, request: web.Request) -> web.Response:
        table = self.app.digests
        limit_text = request.query.get("limit")
        limit: int | None = None
        if limit_text is not None:
            if not limit_text.isdigit():
                return _error(400, f"limit must be a non-negative integer, got {limit_text!r}")
            limit = int(limit_text)
        if table is None:
            return web.json_response({"enabled": False, "digests": []})
        if getattr(self.app, "workers", None) is not None:  # every worker's table (rwproxy.workers.views)
            from rwproxy.workers.views import instance_digests

            rows, evicted = await instance_digests(self.app)
            rows = rows if limit is None else rows[:limit]
            body = {"enabled": True, "size": table.size, "evicted": evicted, "digests": rows}
            return web.json_response(body)
        body = {"enabled": True, "size": table.size, "evicted": table.evicted, "digests": table.rows(limit)}
        return web.json_response(body)

    # -- mutating (bearer token) -----------------------------------------------------------------

    def _refused(self, request: web.Request) -> web.Response | None:
        token = self.app.config.admin.bearer_token
        if token is None:
            return _error(403, "mutating admin endpoints are off: set [admin] bearer_token to enable them")
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            response = _error(401, "a valid 'Authorization: Bearer <token>' header is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="rwproxy"'
            return response
        return None

    async def drill_result(self, request: web.Request) -> web.Response:
        """``POST /drills``: a finished ``rwproxy drill`` reports its outcome (kept per scenario,
        exported as rwproxy_drill_* metrics)."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
            summary = drill_summary(body)
        except (ValueError, TypeError, KeyError) as exc:
            return _error(400, f"expected a drill summary as JSON: {exc}")
        self.app.drill_results[summary["scenario"]] = summary
        return web.json_response({"stored": summary["scenario"]})

    async def drain(self, request: web.Request) -> web.Response:
        return self._set_drained(request, True)

    async def undrain(self, request: web.Request) -> web.Response:
        return self._set_drained(request, False)

    def _set_drained(self, request: web.Request, drained: bool) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        name = request.match_info["name"]
        if name not in self.app.topology.by_name:
            return _error(404, f"unknown server {name!r}")
        try:
            changed = set_drained(self.app, name, drained)
        except DrainError as exc:
            return _error(409, str(exc))
        return web.json_response({"server": name, "drained": drained, "changed": changed})

    async def switchover(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        target = request.query.get("to")
        if target is None and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _error(400, 'the body must be JSON such as {"to": "db2"}')
            target = body.get("to") if isinstance(body, dict) else None
        if target is not None and (not isinstance(target, str) or not target):
            return _error(400, 'name the server that becomes the primary: {"to": "db2"} or ?to=db2 (or none)')
        try:
            result = await self.app.switchover(target)
        except Exception as exc:
            return _error(409, f"switchover to {target} failed: {exc}")
        return web.json_response({"switchover": result.get("to", target), "result": "ok", "report": result})

    async def reload(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        from rwproxy.reload import ReloadError

        try:
            result = await self.app.reload_config()
        except ReloadError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response(result.as_dict())


def _error(status_code: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status_code)


class AdminCollector(Collector):
    """Bounded admin metrics: digest table size and evictions, drained servers (label: server name)."""

    def __init__(self, app: AdminHost) -> None:
        self.app = app

    def collect(self) -> list[Metric]:
        table = self.app.digests
        size = GaugeMetricFamily("rwproxy_query_digests", "Distinct query digests in the digest table")
        size.add_metric([], len(table) if table is not None else 0)
        evicted = CounterMetricFamily(
            "rwproxy_query_digest_evictions", "Digests dropped from the bounded digest table"
        )
        evicted.add_metric([], table.evicted if table is not None else 0)
        drained = GaugeMetricFamily(
            "rwproxy_server_drained",
            "1 when an operator drained the server (admin_status OFFLINE)",
            labels=["server"],
        )
        for node in self.app.topology.nodes:
            drained.add_metric([node.name], 1 if node.name in self.app.drained else 0)
        return [size, evicted, drained]


async def start_admin_http(
    app: AdminHost, *, listen: str | None = None, registry: CollectorRegistry | None = None
) -> AdminHttp | None:
    """Serve the admin interface on ``listen`` (default ``app.config.admin.http_listen``; "" = off).

    Returns None when disabled. Raises OSError when the address cannot be bound.
    """
    from rwproxy.config import AdminConfig

    address = (app.config.admin if listen is None else AdminConfig(http_listen=listen)).http_address
    if address is None:
        return None
    if registry is None:
        registry = build_registry(app)
        registry.register(AdminCollector(app))
        registry.register(FailoverCollector(app))
        from rwproxy.coordination.metrics import CoordinationCollector

        registry.register(CoordinationCollector(app))
    handlers = _Handlers(app, registry, time.monotonic())
    web_app = web.Application()
    web_app.router.add_get("/metrics", handlers.metrics)
    web_app.router.add_get("/healthz", handlers.healthz)
    web_app.router.add_get("/readyz", handlers.readyz)
    web_app.router.add_get("/status", handlers.status)
    web_app.router.add_get("/digests", handlers.digests)
    web_app.router.add_get("/explain", handlers.explain)
    web_app.router.add_post("/servers/{name}/drain", handlers.drain)
    web_app.router.add_post("/servers/{name}/undrain", handlers.undrain)
    web_app.router.add_post("/switchover", handlers.switchover)
    web_app.router.add_post("/drills", handlers.drill_result)
    web_app.router.add_post("/reload", handlers.reload)
    runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, address[0], address[1], reuse_address=True).start()
    except BaseException:
        await runner.cleanup()
        raise
    addresses = [(str(a[0]), int(a[1])) for a in runner.addresses]
    handle = AdminHttp(runner, addresses)
    log.info("admin HTTP on %s (/metrics /healthz /readyz /status /digests /explain)", handle.url)
    return handle
