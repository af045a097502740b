"""``universal`` consistency: a read waits until a replica has applied everything the primary had
committed when the read arrived.

The primary's position (MariaDB ``@@gtid_binlog_pos``, MySQL ``@@gtid_executed``) is read with one
cheap query per batch of reads (``PositionBatch``): one query in flight at a time; reads that arrive
while it runs cannot use its answer (it may predate them) and share the next query, sent as soon as
the running one returns. The route for the position is the pure ``policy.causal_route`` (a replica
the monitor saw reach it, else the least-lagged one waits for it, else the primary).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rwproxy.frontend.privileges import side_connection
from rwproxy.observability.stats import ProxyStats
from rwproxy.protocol.constants import Command
from rwproxy.protocol.packets import first_value
from rwproxy.protocol.results import ResponseKind
from rwproxy.router.policy import Route, RouteReason, Target, causal_route
from rwproxy.topology.probe import Flavor

if TYPE_CHECKING:
    from rwproxy.frontend.commands import Request
    from rwproxy.frontend.host import SessionHost
    from rwproxy.frontend.session import ClientSession

__all__ = ["PositionBatch", "batch_for", "resolve"]

log = logging.getLogger(__name__)

_MARIADB_SQL = b"SELECT @@global.gtid_binlog_pos"
_MYSQL_SQL = b"SELECT @@global.gtid_executed"


class PositionBatch:
    """Shares one ``fetch`` among the reads waiting for it. Counted in ``stats`` (the app's:
    ``universal_reads``, ``universal_position_queries``, ``universal_position_failures``)."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[str | None]],
        timeout: float = 2.0,
        stats: ProxyStats | None = None,
    ) -> None:
        self.stats = stats if stats is not None else ProxyStats()
        self._fetch = fetch
        self._timeout = timeout  # a primary that does not answer: the reads go to it (and wait there)
        self._running = False
        self._next: asyncio.Future[str | None] | None = None  # for reads that came after the send
        self._next_user = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self.routed: Counter[RouteReason] = Counter()  # where UNIVERSAL_WAIT reads went (resolve)

    async def position(self, user: str) -> str | None:
        """The primary's position read by a query sent after this call (None: it failed)."""
        self.stats.universal_reads += 1
        fut = self._next
        if fut is None:
            fut = self._next = asyncio.get_running_loop().create_future()
            self._next_user = user
        if not self._running:
            self._send()
        return await asyncio.shield(fut)

    @property
    def queries(self) -> int:
        """Position queries sent."""
        return self.stats.universal_position_queries

    def _send(self) -> None:
        self._running = True
        task = asyncio.get_running_loop().create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        # Reads that arrived before this point (the same loop turn) share this query; later ones
        # get a new future, answered by the next query.
        fut, user = self._next, self._next_user
        assert fut is not None
        self._next = None
        self.stats.universal_position_queries += 1
        value: str | None = None
        try:
            value = await asyncio.wait_for(self._fetch(user), self._timeout)
        except Exception as exc:  # BackendError, timeouts, a malformed answer: the primary serves
            log.debug("universal: cannot read the primary's position: %r", exc)
        finally:
            if value is None:
                self.stats.universal_position_failures += 1
            if not fut.done():
                fut.set_result(value)
            self._running = False
            if self._next is not None:
                self._send()


def batch_for(app: SessionHost) -> PositionBatch:
    """The app's one batch (kept on the app: compiled classes take no weak references)."""
    batch = app.position_batch
    if batch is None:
        batch = app.position_batch = PositionBatch(lambda user: _primary_position(app, user), stats=app.stats)
    return batch


async def _primary_position(app: SessionHost, user: str) -> str | None:
    primary = app.topology.primary
    if primary is None or not primary.online:
        return None
    flavor = app.monitor.flavor_of(primary.name) if app.monitor is not None else None
    if flavor is None:
        mysql = primary.gtid is not None and bool(primary.gtid.mysql)
    else:
        mysql = flavor is not Flavor.MARIADB
    conn = await side_connection(app, primary, user)
    try:
        outcome, data = await conn.call_keep(
            Command.QUERY, _MYSQL_SQL if mysql else _MARIADB_SQL, ResponseKind.QUERY
        )
    finally:
        app.pool.release(conn)
    if not outcome.ok:
        return None
    value = first_value(data, conn.client_flags)
    return value.decode() if value is not None else None


async def resolve(session: ClientSession, req: Request) -> tuple[Route, str | None]:
    """The route of a UNIVERSAL_WAIT read once the primary's position is known, and that position
    (a CAUSAL_WAIT route waits for it); the primary when it cannot be read."""
    app = session.app
    batch = batch_for(app)
    position = await batch.position(session.user)
    if position is None:
        batch.routed[RouteReason.CAUSAL_FALLBACK] += 1
        return Route(Target.PRIMARY, app.topology.primary, RouteReason.CAUSAL_FALLBACK), None
    info = req.info
    r = causal_route(
        app.topology,
        app.routing.policy_options,
        position,
        info.max_lag if info is not None else None,
        random.random(),
    )
    batch.routed[r.reason] += 1
    return r, position
