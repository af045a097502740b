"""Per-server pools of backend connections, keyed by everything that must match a client.

A connection is checked out by one client session and returned when the session ends (or resets).
On return it is reset with COM_RESET_CONNECTION; anything that fails there, and any connection
marked bad, is closed and never handed out again.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proxy.backend.connection import (
    ALIGNED_FLAGS,
    BackendConnection,
    BackendError,
    BadConnReason,
    open_backend,
)
from proxy.protocol.constants import Command
from proxy.protocol.results import ResponseKind

__all__ = ["BackendCredentials", "Pool", "PoolStats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BackendCredentials:
    """How to log in to a server. ``password_for(node_name, host, port)``, when set, gives the
    password per connection (RDS IAM tokens); ``require_tls``: never log in without TLS;
    ``refresh_after_auth_error()``: called after ERROR 1045, True when retrying may succeed
    (a re-read secret). See ``proxy.backend.credentials``."""

    user: str
    password: str = field(repr=False)
    require_tls: bool = False
    password_for: Callable[[str, str, int], Awaitable[str]] | None = field(
        default=None, compare=False, repr=False
    )
    refresh_after_auth_error: Callable[[], Awaitable[bool]] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass(slots=True)
class PoolStats:
    opened: int = 0
    closed: int = 0
    reused: int = 0
    connect_errors: int = 0
    reset_failures: int = 0


class Pool:
    """All backend connections of the proxy. ``acquire`` / ``release`` are the whole API."""

    def __init__(
        self,
        *,
        max_per_server: int,
        connect_timeout: float,
        idle_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
        track_gtids: bool = False,
    ) -> None:
        self.max_per_server = max_per_server
        self.track_gtids = track_gtids  # causal reads: connections report committed GTIDs
        self.connect_timeout = connect_timeout
        self.idle_seconds = idle_seconds
        self.ssl_context = ssl_context
        self.stats = PoolStats()
        self._idle: dict[tuple[object, ...], list[BackendConnection]] = defaultdict(list)
        self._open_count: dict[str, int] = defaultdict(int)  # per node: idle + checked out + opening
        self._freed: dict[str, asyncio.Condition] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._resets: set[asyncio.Task[None]] = set()  # connections being reset on their way back
        self._closed = False

    # -- public ------------------------------------------------------------------------------

    async def acquire(
        self,
        *,
        node_name: str,
        host: str,
        port: int,
        creds: BackendCredentials,
        client_flags: int,
        collation_id: int,
        needs_no_database: bool = False,
    ) -> BackendConnection:
        """A connection to ``node_name`` for a client with these flags and collation: an idle one,
        else a new one. ``needs_no_database``: the client chose no database, and a connection that
        has one cannot lose it (COM_RESET_CONNECTION keeps it): only one with none will do."""
        key = (node_name, host, port, creds.user, client_flags & ALIGNED_FLAGS, collation_id)
        conn = self._take_idle(key, needs_no_database)
        if conn is not None:
            return conn
        cond = self._freed.setdefault(node_name, asyncio.Condition())
        deadline = time.monotonic() + self.connect_timeout
        async with cond:
            while self._open_count[node_name] >= self.max_per_server:
                # Make room by closing an idle connection of another shape on this node.
                if self._evict_one(node_name):
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BackendError(
                        f"no free backend connection to {node_name} "
                        f"(backend.pool_max_per_server = {self.max_per_server})",
                        1040,
                        "08004",
                    )
                try:
                    await asyncio.wait_for(cond.wait(), remaining)
                except TimeoutError:
                    continue
                conn = self._take_idle(key, needs_no_database)
                if conn is not None:
                    return conn
            self._open_count[node_name] += 1
        try:
            conn = await self._open(node_name, host, port, creds, client_flags, collation_id, key)
        except BaseException:
            self.stats.connect_errors += 1
            self._open_count[node_name] -= 1
            await self._notify(node_name)
            raise
        self.stats.opened += 1
        return conn

    async def _open(
        self,
        node_name: str,
        host: str,
        port: int,
        creds: BackendCredentials,
        client_flags: int,
        collation_id: int,
        key: tuple[object, ...],
    ) -> BackendConnection:
        """open_backend with the credentials' password; after ERROR 1045 one retry when the
        credentials could be refreshed (a rotated secret)."""
        for attempt in (1, 2):
            password = creds.password
            if creds.password_for is not None:
                password = await creds.password_for(node_name, host, port)
            try:
                return await open_backend(
                    node_name=node_name,
                    host=host,
                    port=port,
                    user=creds.user,
                    password=password,
                    client_flags=client_flags,
                    collation_id=collation_id,
                    ssl_context=self.ssl_context,
                    connect_timeout=self.connect_timeout,
                    pool_key=key,
                    require_tls=creds.require_tls,
                    track_gtids=self.track_gtids,
                )
            except BackendError as exc:
                refresh = creds.refresh_after_auth_error
                if attempt == 2 or exc.errno != 1045 or refresh is None or not await refresh():
                    raise
        raise AssertionError("unreachable")

    def release(self, conn: BackendConnection) -> None:
        """Give a connection back: reset it in the background, then make it idle (or close it)."""
        if not conn.usable or conn.busy or self._closed:
            self.discard(conn, conn.bad or BadConnReason.CLOSED)
            return
        conn.resume_reading()  # it may have been paused for a slow client
        task = asyncio.get_running_loop().create_task(self._reset_and_park(conn))
        self._resets.add(task)
        task.add_done_callback(self._resets.discard)

    def discard(self, conn: BackendConnection, reason: BadConnReason) -> None:
        conn.close(reason)
        self._forget(conn)

    def start(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_idle())

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        if self._resets:  # let resets in flight finish (they close their connection: pool closed)
            await asyncio.wait(list(self._resets), timeout=2)
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def idle_count(self, node_name: str | None = None) -> int:
        return sum(len(v) for k, v in self._idle.items() if node_name is None or k[0] == node_name)

    def open_count(self, node_name: str) -> int:
        return self._open_count[node_name]

    # -- internals ---------------------------------------------------------------------------

    def _take_idle(self, key: tuple[object, ...], needs_no_database: bool) -> BackendConnection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        for i in range(len(idle) - 1, -1, -1):  # the most recently used first
            conn = idle[i]
            if not conn.usable:
                del idle[i]
                self._forget(conn)
                continue
            if needs_no_database and conn.database is not None:
                continue
            del idle[i]
            self.stats.reused += 1
            return conn
        return None

    async def _reset_and_park(self, conn: BackendConnection) -> None:
        try:
            outcome = await conn.call(Command.RESET_CONNECTION, b"", ResponseKind.SIMPLE)
        except BackendError:
            self.stats.reset_failures += 1
            self._forget(conn)
            return
        if not outcome.ok or not conn.usable:
            self.stats.reset_failures += 1
            self.discard(conn, BadConnReason.RESET_FAILED)
            return
        if conn.tracks_gtid:  # the reset restored the server's session defaults
            try:
                await conn.start_tracking()
            except BackendError:
                self.stats.reset_failures += 1
                self._forget(conn)
                return
        conn.applied_seq = 0
        conn.last_used = time.monotonic()
        if self._closed:
            self.discard(conn, BadConnReason.CLOSED)
            return
        self._idle[conn.pool_key].append(conn)
        await self._notify(conn.node_name)

    def _forget(self, conn: BackendConnection) -> None:
        if conn.forgotten:
            return
        conn.forgotten = True
        self._open_count[conn.node_name] -= 1
        self.stats.closed += 1
        cond = self._freed.get(conn.node_name)
        if cond is not None:
            asyncio.get_running_loop().create_task(self._notify(conn.node_name))

    def _evict_one(self, node_name: str) -> bool:
        for key, conns in self._idle.items():
            if key[0] == node_name and conns:
                conn = conns.pop(0)
                self.discard(conn, BadConnReason.CLOSED)
                return True
        return False

    async def _notify(self, node_name: str) -> None:
        cond = self._freed.get(node_name)
        if cond is None:
            return
        async with cond:
            cond.notify()

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, min(30.0, self.idle_seconds / 4)))
            cutoff = time.monotonic() - self.idle_seconds
            for conns in self._idle.values():
                keep = []
                for conn in conns:
                    if conn.last_used < cutoff or not conn.usable:
                        conn.close()
                        self._forget(conn)
                    else:
                        keep.append(conn)
                conns[:] = keep
