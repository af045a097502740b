"""One backend connection: opened and authenticated by aiomysql, then driven by rwproxy's relay.

aiomysql does the connect, TLS and authentication dialogue (native, caching_sha2 incl. RSA/TLS).
Then rwproxy takes its transport over (``transport.set_protocol``) and speaks raw packets: requests
are written as framed bytes, responses are scanned by ``ResultScanner`` and handed to a ``Sink``
chunk by chunk, unchanged. aiomysql's private parts used here (``Connection.client_flag`` before
``_connect()``, ``_connect()``, ``_writer``/``_reader``) are why aiomysql is pinned exactly.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from pymysql.charset import charset_by_id, charset_by_name

from rwproxy.backend.clear_password import GuardedConnection
from rwproxy.protocol.constants import DEFAULT_CLIENT_CAPABILITIES, Capability, Command
from rwproxy.protocol.framing import frame
from rwproxy.protocol.results import ResponseKind, ResultScanner, ScanError
from rwproxy.protocol.session_track import strip_session_state, tracking_statement

__all__ = [
    "BackendConnection",
    "BackendError",
    "BadConnReason",
    "Outcome",
    "Result",
    "Sink",
    "open_backend",
]

log = logging.getLogger(__name__)


class BadConnReason(enum.Enum):
    """Why a backend connection may never be reused."""

    LOST = "connection lost"
    PROTOCOL = "backend sent bytes that do not parse"
    UNEXPECTED_DATA = "backend sent data nobody asked for"
    ABANDONED = "client left during a response"
    RESET_FAILED = "COM_RESET_CONNECTION failed"
    STATE_CHANGED = "connection options differ from its pool"
    CLOSED = "closed by the proxy"
    READ_TIMEOUT = "a replica read exceeded routing.replica_read_timeout_seconds"


class BackendError(Exception):
    """Opening or using a backend connection failed. ``errno``/``sqlstate`` are for the client."""

    def __init__(self, message: str, errno: int = 2013, sqlstate: str = "HY000") -> None:
        super().__init__(message)
        self.errno = errno
        self.sqlstate = sqlstate


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a response ended."""

    status_flags: int | None
    error_code: int | None
    terminal: bytes | None
    prepare_ok: bytes | None
    local_infile: bool

    @property
    def ok(self) -> bool:
        return self.error_code is None


class Result(Protocol):
    """How a response ended: an ``Outcome`` snapshot, or the live ``ResultScanner`` during ``done``."""

    @property
    def status_flags(self) -> int | None: ...
    @property
    def error_code(self) -> int | None: ...
    @property
    def terminal(self) -> bytes | None: ...
    @property
    def prepare_ok(self) -> bytes | None: ...
    @property
    def local_infile(self) -> bool: ...
    @property
    def ok(self) -> bool: ...


class Sink(Protocol):
    """Receives one response: ``relay`` for each chunk, then ``done`` (or ``failed``).

    ``done`` gets the live scanner: read what you need before returning or sending another request.
    """

    def relay(self, data: bytes) -> None: ...
    def done(self, conn: BackendConnection, result: Result) -> None: ...
    def failed(self, conn: BackendConnection, error: BackendError) -> None: ...


class _Collector:
    """A sink that keeps a small response (replay commands, prepares) for a coroutine to await."""

    __slots__ = ("data", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, keep: bool) -> None:
        self.future: asyncio.Future[Outcome] = loop.create_future()
        self.data: bytearray | None = bytearray() if keep else None

    def relay(self, data: bytes) -> None:
        if self.data is not None:
            self.data += data

    def done(self, conn: BackendConnection, result: Result) -> None:
        if not self.future.done():
            self.future.set_result(
                Outcome(result.status_flags, result.error_code, None, result.prepare_ok, result.local_infile)
            )

    def failed(self, conn: BackendConnection, error: BackendError) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class BackendConnection:
    """A connection to one server, owned by at most one client session at a time.

    An asyncio protocol by its methods, not by subclassing ``asyncio.Protocol``: as a plain class
    the compiled build (``rwproxy.native``) keeps its attributes in a C struct, not a ``__dict__``.
    """

    def __init__(
        self,
        *,
        node_name: str,
        pool_key: tuple[object, ...],
        client_flags: int,
        server_capabilities: int,
        server_version: str,
        thread_id: int,
        status_flags: int,
    ) -> None:
        self.node_name = node_name
        self.pool_key = pool_key
        self.client_flags = client_flags
        self.server_capabilities = server_capabilities
        self.server_version = server_version
        self.thread_id = thread_id
        self.status_flags = status_flags
        self.transport: asyncio.Transport | None = None
        self.bad: BadConnReason | None = None
        self.applied_seq = 0  # session replay entries applied (see SessionState.replay_after)
        # What this connection's server session holds, as far as rwproxy knows (frontend.backend_link):
        # ``database``: its current database (COM_RESET_CONNECTION keeps it; only a new connection has
        # none); ``unreplayable``: why its session state cannot be rebuilt elsewhere (user variables
        # assigned in a query, a SET from an expression, a LAST_INSERT_ID value), None when it can.
        self.database: str | None = None
        self.unreplayable: str | None = None
        # Multiplexing: the session state a connection lent by another session holds
        # (``SessionState.signature``; None: unknown), valid while ``applied_seq`` is -1.
        self.signature: tuple[object, ...] | None = ()
        self.init_sql: bytes | None = None  # rwproxy's own set-up to redo after COM_RESET_CONNECTION
        self.last_used = 0.0
        self.forgotten = False  # the pool no longer counts it (rwproxy.backend.pool)
        self._scanner = ResultScanner(client_flags)
        self._pending: deque[tuple[ResponseKind, Sink]] = deque()
        self._closed_waiter: asyncio.Future[None] | None = None
        self.stream_writer: object = None
        self.reading_paused = False  # flow control: the client of the owning session is slow
        self._held = b""  # the start of a row not yet whole, not relayed yet (ResultScanner.tail)
        # GTID tracking (causal reads): the backend reports each commit's GTID in its OK packet.
        # ``strip_state``: the client did not ask for CLIENT_SESSION_TRACK, so a terminal OK that
        # carries session state is rewritten to what the server would have sent that client.
        self.tracks_gtid = False
        self.strip_state = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # pragma: no cover
        self.transport = transport  # type: ignore[assignment]

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def pause_writing(self) -> None:  # requests are small; the transport buffers what is left
        pass

    def resume_writing(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        pending = self._pending
        scanner = self._scanner
        while data:
            if not pending:
                self._fail(BadConnReason.UNEXPECTED_DATA, "backend sent data nobody asked for")
                return
            _kind, sink = pending[0]
            try:
                used = scanner.feed(data)
            except ScanError as exc:
                self._fail(BadConnReason.PROTOCOL, f"backend protocol error: {exc}")
                return
            if used == len(data):
                chunk = data
                data = b""
            else:
                chunk = data[:used]
                data = data[used:]
            held = self._held
            if held:
                chunk = held + chunk
                self._held = b""
            if not scanner.done:
                # A row not yet whole: the client gets it whole, or never (err_sequence).
                tail = scanner.tail
                if tail > 0:
                    self._held = chunk[-tail:]
                    chunk = chunk[:-tail]
                elif tail < 0 and held and len(chunk) < _HOLD_LIMIT:
                    self._held = chunk  # still the held row
                    chunk = b""
            if self.strip_state and scanner.done:
                chunk = self._strip_terminal(chunk)
            if chunk:
                sink.relay(chunk)
            if scanner.done:
                if scanner.status_flags is not None:
                    self.status_flags = scanner.status_flags
                if scanner.local_infile:
                    # The response goes on after the client's upload: keep the request pending.
                    sink.done(self, scanner)
                    if data:
                        self._fail(BadConnReason.UNEXPECTED_DATA, "data after a LOCAL INFILE request")
                    return
                pending.popleft()
                # The sink reads the scanner's results now; it may send the next request (which
                # restarts the scanner when nothing else is pending).
                sink.done(self, scanner)
                if pending and scanner.done:
                    scanner.start(pending[0][0])

    def connection_lost(self, exc: Exception | None) -> None:
        if self.bad is None:
            self.bad = BadConnReason.LOST
        error = BackendError(
            f"lost connection to backend {self.node_name}" + (f": {exc}" if exc else ""), 2013, "HY000"
        )
        pending = list(self._pending)
        self._pending.clear()
        for _, sink in pending:
            sink.failed(self, error)
        if self._closed_waiter is not None and not self._closed_waiter.done():
            self._closed_waiter.set_result(None)

    def _strip_terminal(self, chunk: bytes) -> bytes:
        """Drop session state from the response's final OK when it is whole in ``chunk`` (an OK
        split across reads, or an intermediate OK of a multi-result, keeps it: see docs)."""
        flags = self._scanner.status_flags
        terminal = self._scanner.terminal
        if flags is None or not flags & _STATE_CHANGED or terminal is None:
            return chunk
        start = len(chunk) - len(terminal) - 4
        if start < 0 or chunk[start + 4 :] != terminal:
            return chunk
        stripped = strip_session_state(terminal)
        return chunk[:start] + frame(stripped, chunk[start + 3])

    async def start_tracking(self) -> bool:
        """Ask the server to report committed GTIDs in OK packets; False when it cannot."""
        client_tracks = not self.strip_state
        outcome = await self.call(
            Command.QUERY, tracking_statement(self.server_version, client_tracks), ResponseKind.QUERY
        )
        self.tracks_gtid = outcome.ok
        return outcome.ok

    # -- requests ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    @property
    def usable(self) -> bool:
        return self.bad is None and self.transport is not None and not self.transport.is_closing()

    def request(self, packet: bytes, kind: ResponseKind | None, sink: Sink | None) -> None:
        """Write framed bytes; when ``kind`` is given, the response goes to ``sink``."""
        transport = self.transport
        if transport is None or self.bad is not None:
            error = BackendError(f"backend connection to {self.node_name} is not usable", 2013)
            if sink is not None:
                sink.failed(self, error)
            return
        if kind is not None and sink is not None:
            self._pending.append((kind, sink))
            if len(self._pending) == 1:
                self._scanner.start(kind)
        transport.write(packet)

    def err_sequence(self) -> int | None:
        """The sequence id of an ERR packet that would end the response in flight validly now
        (between rows of a result set), else None: see ``ResultScanner.err_sequence``. A row held
        back unfinished (see ``ResultScanner.tail``) never reached the client: the ERR takes its
        place and its sequence id."""
        held = self._held
        scanner = self._scanner
        if held and len(held) >= 4:
            return held[3] if scanner.in_rows else None
        return scanner.err_sequence()

    def expect_infile_result(self) -> None:
        self._scanner.expect_infile_result()

    async def call(self, command: int, argument: bytes, kind: ResponseKind, *, keep: bool = False) -> Outcome:
        """Send one command and await its (swallowed) response. For replays and housekeeping."""
        loop = asyncio.get_running_loop()
        collector = _Collector(loop, keep)
        self.request(frame(bytes((command,)) + argument, 0), kind, collector)
        return await collector.future

    async def call_keep(self, command: int, argument: bytes, kind: ResponseKind) -> tuple[Outcome, bytes]:
        loop = asyncio.get_running_loop()
        collector = _Collector(loop, True)
        self.request(frame(bytes((command,)) + argument, 0), kind, collector)
        outcome = await collector.future
        return outcome, bytes(collector.data or b"")

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing() and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing() and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    def mark_bad(self, reason: BadConnReason) -> None:
        if self.bad is None:
            self.bad = reason

    def abort(self, reason: BadConnReason) -> None:
        """Drop the connection now, unflushed (a hung server): pending responses fail."""
        self.mark_bad(reason)
        if self.transport is not None:
            self.transport.abort()

    def close(self, reason: BadConnReason = BadConnReason.CLOSED) -> None:
        """Close now; pending responses fail."""
        self.mark_bad(reason)
        if self.transport is not None and not self.transport.is_closing():
            if not self._pending:
                self.transport.write(frame(bytes((Command.QUIT,)), 0))
            self.transport.close()

    def _fail(self, reason: BadConnReason, message: str) -> None:
        log.warning("backend %s thread %d: %s", self.node_name, self.thread_id, message)
        self.bad = reason
        if self.transport is not None:
            self.transport.abort()


# Client capability flags that change framing or meaning: a backend connection must be opened with
# exactly the client's choice of these.
ALIGNED_FLAGS = (
    Capability.FOUND_ROWS
    | Capability.IGNORE_SPACE
    | Capability.INTERACTIVE
    | Capability.MULTI_STATEMENTS
    | Capability.PS_MULTI_RESULTS
    | Capability.SESSION_TRACK
    | Capability.DEPRECATE_EOF
    | Capability.LOCAL_FILES
)
_STATE_CHANGED = 0x4000  # ServerStatus.SESSION_STATE_CHANGED
_HOLD_LIMIT = 1 << 20  # a row split across reads is held back only up to this size (see _held)
# What rwproxy always asks of a backend (aiomysql's dialogue needs these; they change no framing
# beyond what the client already agreed to). Never CLIENT_QUERY_ATTRIBUTES: a client's attributes are
# stripped before its commands are forwarded (rwproxy.frontend.query_attributes).
_BASE_FLAGS = DEFAULT_CLIENT_CAPABILITIES | Capability.CONNECT_ATTRS


async def open_backend(
    *,
    node_name: str,
    host: str,
    port: int,
    user: str,
    password: str,
    client_flags: int,
    collation_id: int,
    ssl_context: ssl.SSLContext | None,
    connect_timeout: float,
    pool_key: tuple[object, ...],
    track_gtids: bool = False,
    require_tls: bool = False,
) -> BackendConnection:
    """Connect and authenticate with aiomysql, then take the transport over.

    ``track_gtids``: CLIENT_SESSION_TRACK is negotiated whatever the client chose, and the
    connection reports committed GTIDs (see ``start_tracking``). A clear-text password goes out only
    over TLS; ``require_tls``: no login at all without TLS (``clear_password``)."""
    aligned = client_flags & ALIGNED_FLAGS
    try:
        charset = charset_by_id(collation_id)
        charset_name = charset.name
    except KeyError:
        charset = None
        charset_name = "utf8mb4"
    conn = GuardedConnection(
        host=host,
        port=port,
        user=user,
        password=password,
        require_tls=require_tls,
        db=None,
        autocommit=None,
        charset=charset_name,
        connect_timeout=connect_timeout,
        ssl=ssl_context,
        local_infile=bool(aligned & Capability.LOCAL_FILES),
        program_name="rwproxy",
    )
    flags = int(_BASE_FLAGS | aligned)
    if track_gtids:
        flags |= Capability.SESSION_TRACK
    if ssl_context is not None:
        flags |= Capability.SSL
    conn.client_flag = flags  # private: see module docstring
    try:
        # The whole dialogue, not only the TCP connect (aiomysql's connect_timeout): a hung server
        # accepts the connection and never sends its greeting.
        await asyncio.wait_for(conn._connect(), connect_timeout)
    except TimeoutError as exc:
        if conn._writer is not None:
            conn._writer.transport.close()
        raise BackendError(
            f"cannot connect to {node_name} ({host}:{port}): no answer within {connect_timeout:g} s", 2003
        ) from exc
    except Exception as exc:  # aiomysql raises OperationalError and others
        errno, message = _error_args(exc)
        raise BackendError(f"cannot connect to {node_name} ({host}:{port}): {message}", errno) from exc
    except BaseException:
        # Cancelled mid-connect (the client left): aiomysql only cleans up after Exception.
        if conn._writer is not None:
            conn._writer.transport.close()
        raise
    writer = conn._writer
    reader = conn._reader
    if writer is None or reader is None:
        raise BackendError(f"cannot connect to {node_name} ({host}:{port}): no stream", 2003)
    transport = writer.transport
    if reader._buffer:  # anything unread would desynchronise the relay
        transport.close()
        raise BackendError(f"backend {node_name} sent unexpected bytes after authentication", 2013)
    backend = BackendConnection(
        node_name=node_name,
        pool_key=pool_key,
        client_flags=flags,
        server_capabilities=int(conn.server_capabilities),
        server_version=str(conn.server_version),
        thread_id=int(conn.server_thread_id[0]),
        status_flags=int(conn.server_status),
    )
    transport.set_protocol(backend)
    backend.transport = transport
    # Detach aiomysql: its __del__ would close the transport we now own. asyncio's StreamWriter
    # closes its transport when collected too, so the connection keeps it until it closes.
    backend.stream_writer = writer
    conn._writer = None
    conn._reader = None
    # The collation the client asked for, when it is not its character set's default.
    if charset is not None and charset_by_name(charset_name).id != collation_id:
        init_sql = f"SET NAMES {charset_name} COLLATE {charset.collation}".encode()
        outcome = await backend.call(Command.QUERY, init_sql, ResponseKind.QUERY)
        if outcome.ok:
            backend.init_sql = init_sql
        else:
            log.debug("backend %s does not know collation %s", node_name, charset.collation)
    if track_gtids and backend.server_capabilities & Capability.SESSION_TRACK:
        backend.strip_state = not aligned & Capability.SESSION_TRACK
        if not await backend.start_tracking():
            log.debug("backend %s cannot track GTIDs: causal reads fall back to the primary", node_name)
    return backend


def _error_args(exc: BaseException) -> tuple[int, str]:
    args: tuple[object, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        return args[0], str(args[1])
    return 2003, str(exc) or type(exc).__name__
