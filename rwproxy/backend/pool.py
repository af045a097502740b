"""Per-server pools of backend connections, keyed by everything that must match a client.

A connection is checked out by one client session and returned when the session ends (or resets).
On return it is reset with COM_RESET_CONNECTION; anything that fails there, and any connection
marked bad, is closed and never handed out again.

Multiplexing: a session that holds nothing binding it to its connections *parks* them (``park``):
they stay its own, used without any cost by its next statement, but the pool may *lend* a parked
connection to another session when no idle one is left and no new one may be opened (``Lender``:
the owner agrees only between statements, and gives the connection up with the state signature it
holds). More sessions than ``max_per_server`` wait up to ``wait_timeout`` for a connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from rwproxy.backend.connection import (
    ALIGNED_FLAGS,
    BackendConnection,
    BackendError,
    BadConnReason,
    open_backend,
)
from rwproxy.protocol.constants import Command
from rwproxy.protocol.results import ResponseKind

__all__ = ["BackendCredentials", "Lender", "Pool", "PoolStats", "reset_connection"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BackendCredentials:
    """How to log in to a server. ``password_for(node_name, host, port)``, when set, gives the
    password per connection (RDS IAM tokens); ``require_tls``: never log in without TLS;
    ``refresh_after_auth_error()``: called after ERROR 1045, True when retrying may succeed
    (a re-read secret). See ``rwproxy.backend.credentials``."""

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
    waits: int = 0  # acquires that had to wait for a connection (all max_per_server in use)
    wait_timeouts: int = 0  # ... and gave up after wait_timeout (ERROR 1040)
    lent: int = 0  # parked connections lent to another session (multiplexing)


class Lender(Protocol):
    """The owner of a parked connection (``rwproxy.frontend.multiplex``)."""

    def can_lend(self, conn: BackendConnection) -> bool:
        """True when the owner is between statements and ``conn`` may be taken now."""
        ...

    def signature_of(self, conn: BackendConnection) -> tuple[object, ...] | None:
        """The session state ``conn`` holds (see ``SessionState.signature``), None when unknown."""
        ...

    def lend(self, conn: BackendConnection) -> tuple[object, ...] | None:
        """Give ``conn`` up for good; returns ``signature_of(conn)`` as it was."""
        ...


class Pool:
    """All backend connections of the proxy. ``acquire`` / ``release`` are the API; ``park`` /
    ``unpark`` for multiplexing sessions."""

    def __init__(
        self,
        *,
        max_per_server: int,
        connect_timeout: float,
        idle_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
        track_gtids: bool = False,
        wait_timeout: float = 10.0,
    ) -> None:
        self.max_per_server = max_per_server
        self.track_gtids = track_gtids  # causal reads: connections report committed GTIDs
        self.connect_timeout = connect_timeout
        self.wait_timeout = wait_timeout
        self.idle_seconds = idle_seconds
        self.ssl_context = ssl_context
        self.stats = PoolStats()
        self._idle: dict[tuple[object, ...], list[BackendConnection]] = defaultdict(list)
        # Parked connections (still owned by an idle session, lendable), per pool key, oldest first.
        self._parked: dict[tuple[object, ...], dict[BackendConnection, None]] = defaultdict(dict)
        self._lenders: dict[BackendConnection, Lender] = {}
        self._open_count: dict[str, int] = defaultdict(int)  # per node: idle + checked out + opening
        self._waiters: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self.waiting = 0  # acquires waiting for a connection, all nodes
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
        signature: tuple[object, ...] | None = None,
    ) -> BackendConnection:
        """A connection to ``node_name`` for a client with these flags and collation: an idle one,
        else a new one, else one lent by an idle multiplexing session, else wait (``wait_timeout``).

        ``needs_no_database``: the client chose no database, and a connection that has one cannot
        lose it (COM_RESET_CONNECTION keeps it): only one with none will do. ``signature``: the
        session state wanted (a lent connection that already holds it needs no replay).
        A lent connection comes with ``applied_seq = -1`` and ``signature`` = what it holds."""
        key = (node_name, host, port, creds.user, client_flags & ALIGNED_FLAGS, collation_id)
        conn = self._take_idle(key, needs_no_database)
        if conn is not None:
            return conn
        deadline = 0.0
        while self._open_count[node_name] >= self.max_per_server:
            conn = self._borrow(key, needs_no_database, signature)
            if conn is not None:
                return conn
            # Make room: close an idle connection, or a lendable parked one, that does not fit.
            if self._evict_one(node_name) or self._evict_lendable(node_name):
                continue
            now = time.monotonic()
            if not deadline:
                deadline = now + self.wait_timeout
                self.stats.waits += 1
            remaining = deadline - now
            if remaining <= 0:
                self.stats.wait_timeouts += 1
                raise BackendError(
                    f"rwproxy: no backend connection to {node_name} became free within "
                    f"backend.pool_wait_timeout_seconds = {self.wait_timeout:g} (all "
                    f"backend.pool_max_per_server = {self.max_per_server} are in use)",
                    1040,
                    "08004",
                )
            await self._wait(node_name, min(remaining, 1.0))
            conn = self._take_idle(key, needs_no_database)
            if conn is not None:
                return conn
        self._open_count[node_name] += 1
        try:
            conn = await self._open(node_name, host, port, creds, client_flags, collation_id, key)
        except BaseException:
            self.stats.connect_errors += 1
            self._open_count[node_name] -= 1
            self._wake(node_name)
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
        self.unpark(conn)
        if not conn.usable or conn.busy or self._closed:
            self.discard(conn, conn.bad or BadConnReason.CLOSED)
            return
        conn.resume_reading()  # it may have been paused for a slow client
        task = asyncio.get_running_loop().create_task(self._reset_and_park(conn))
        self._resets.add(task)
        task.add_done_callback(self._resets.discard)

    def discard(self, conn: BackendConnection, reason: BadConnReason) -> None:
        self.unpark(conn)
        conn.close(reason)
        self._forget(conn)

    def park(self, conn: BackendConnection, lender: Lender) -> None:
        """``conn`` stays its session's, but may be lent while ``lender.can_lend(conn)``."""
        if conn in self._lenders:
            return
        self._lenders[conn] = lender
        self._parked[conn.pool_key][conn] = None
        if self.waiting:
            self._wake(conn.node_name)

    def unpark(self, conn: BackendConnection) -> None:
        if self._lenders.pop(conn, None) is not None:
            self._parked[conn.pool_key].pop(conn, None)

    def offer(self, conn: BackendConnection) -> None:
        """A parked connection may be lendable again (its owner finished a statement)."""
        if self.waiting and conn in self._lenders:
            self._wake(conn.node_name)

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
        for queue in self._waiters.values():
            for fut in queue:
                if not fut.done():
                    fut.set_result(None)

    def idle_count(self, node_name: str | None = None) -> int:
        return sum(len(v) for k, v in self._idle.items() if node_name is None or k[0] == node_name)

    def parked_count(self, node_name: str | None = None) -> int:
        return sum(len(v) for k, v in self._parked.items() if node_name is None or k[0] == node_name)

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

    def _borrow(
        self, key: tuple[object, ...], needs_no_database: bool, signature: tuple[object, ...] | None
    ) -> BackendConnection | None:
        """A parked connection of ``key`` its owner lends now: one holding ``signature`` if any
        (among the first few), else the one parked longest."""
        parked = self._parked.get(key)
        if not parked:
            return None
        best: BackendConnection | None = None
        dead: list[BackendConnection] = []
        seen = 0
        for conn in parked:
            lender = self._lenders[conn]
            if conn.busy or not lender.can_lend(conn):
                continue
            if not conn.usable:
                dead.append(conn)
                continue
            if needs_no_database and conn.database is not None:
                continue
            if best is None:
                best = conn
                if signature is None:
                    break
            if lender.signature_of(conn) == signature:
                best = conn
                break
            seen += 1
            if seen >= 32:
                break
        for conn in dead:  # closed by the server while parked: free its slot
            self._drop_dead_parked(conn)
        if best is None:
            return None
        lender = self._lenders.pop(best)
        del parked[best]
        best.signature = lender.lend(best)
        best.applied_seq = -1
        best.resume_reading()
        self.stats.lent += 1
        return best

    def _evict_lendable(self, node_name: str) -> bool:
        """Close one lendable parked connection on ``node_name`` (another shape, or a database where
        none is wanted) to make room for a new one."""
        for key, parked in self._parked.items():
            if key[0] != node_name:
                continue
            for conn in parked:
                lender = self._lenders[conn]
                if not conn.busy and lender.can_lend(conn):
                    lender.lend(conn)
                    self.discard(conn, BadConnReason.CLOSED)
                    return True
        return False

    async def _wait(self, node_name: str, timeout: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[node_name].append(fut)
        self.waiting += 1
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._wake(node_name)  # pass the wake-up on
            raise
        finally:
            self.waiting -= 1
            if not fut.done():
                fut.cancel()

    def _wake(self, node_name: str) -> None:
        queue = self._waiters.get(node_name)
        while queue:
            fut = queue.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    async def _reset_and_park(self, conn: BackendConnection) -> None:
        if not await reset_connection(conn):
            self.stats.reset_failures += 1
            self.discard(conn, conn.bad or BadConnReason.RESET_FAILED)
            return
        conn.applied_seq = 0
        conn.last_used = time.monotonic()
        if self._closed:
            self.discard(conn, BadConnReason.CLOSED)
            return
        self._idle[conn.pool_key].append(conn)
        self._wake(conn.node_name)

    def _forget(self, conn: BackendConnection) -> None:
        if conn.forgotten:
            return
        conn.forgotten = True
        self._open_count[conn.node_name] -= 1
        self.stats.closed += 1
        self._wake(conn.node_name)

    def _evict_one(self, node_name: str) -> bool:
        for key, conns in self._idle.items():
            if key[0] == node_name and conns:
                conn = conns.pop(0)
                self.discard(conn, BadConnReason.CLOSED)
                return True
        return False

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
            # Parked connections the server closed (wait_timeout): give their slots back.
            for parked in list(self._parked.values()):
                for conn in [c for c in parked if not c.usable]:
                    lender = self._lenders.get(conn)
                    if lender is not None and lender.can_lend(conn):
                        self._drop_dead_parked(conn)

    def _drop_dead_parked(self, conn: BackendConnection) -> None:
        """A parked connection the server closed (wait_timeout, restart): its session held only
        replayable state (else it would not have parked it) and gets another one when it needs it."""
        log.info(
            "backend connection to %s (thread %d) was lost while parked (%s); its session will be "
            "given another, session state replayed",
            conn.node_name,
            conn.thread_id,
            (conn.bad or BadConnReason.LOST).value,
        )
        self._lenders[conn].lend(conn)
        self.discard(conn, conn.bad or BadConnReason.LOST)


async def reset_connection(conn: BackendConnection) -> bool:
    """COM_RESET_CONNECTION, then what the reset undid of rwproxy's own set-up (collation, GTID
    tracking). The connection keeps its current database. False when it failed (close it)."""
    try:
        outcome = await conn.call(Command.RESET_CONNECTION, b"", ResponseKind.SIMPLE)
        if not outcome.ok or not conn.usable:
            return False
        if conn.init_sql is not None:
            await conn.call(Command.QUERY, conn.init_sql, ResponseKind.QUERY)
        if conn.tracks_gtid:  # the reset restored the server's session defaults
            await conn.start_tracking()
    except BackendError:
        return False
    conn.unreplayable = None
    conn.signature = ()
    return conn.usable
