"""One client connection: handshake, then the command loop: read → classify → route → relay.

The command loop is callback-driven for speed: a command arrives in ``data_received``, is classified
and routed synchronously, and written to a backend connection the session already holds; the
backend's bytes go straight to the client transport from the backend's ``data_received``. A
coroutine is used only when something must be awaited (a new backend connection, replaying session
state, preparing a statement on another server, authentication).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Final

from rwproxy.backend.connection import BackendConnection, BackendError, BadConnReason, Result
from rwproxy.frontend import (
    backend_link,
    backend_lost,
    buffering,
    causal,
    commands,
    infile,
    multiplex,
    preauth,
    send_path,
    session_sets,
)
from rwproxy.frontend.handshake import handshake_phase, reauth_phase
from rwproxy.frontend.prepared import backend_payload
from rwproxy.frontend.tls import TlsTransport
from rwproxy.observability.latency import BOUNDS as _LATENCY_BOUNDS
from rwproxy.protocol.constants import ErrorCode, ServerStatus
from rwproxy.protocol.errors import PacketTooLarge, RemoteProtocolError
from rwproxy.protocol.framing import PacketDecoder, frame
from rwproxy.protocol.packets import make_err, make_ok
from rwproxy.router import sticky
from rwproxy.router.digest import digest_text
from rwproxy.router.fallback import waits_for_primary
from rwproxy.router.policy import Route, RouteReason, Target, route
from rwproxy.router.session_state import Consistency, SessionState
from rwproxy.router.statement import Effect, StatementInfo
from rwproxy.topology.model import Node

if TYPE_CHECKING:
    from rwproxy.frontend.host import SessionHost

__all__ = ["ClientSession"]

log = logging.getLogger(__name__)

# Module constants are Final: compiled (rwproxy.native), mypyc keeps them in C statics instead of
# looking them up in the module's dict on every use.
_HANDSHAKE: Final = 0
_COMMAND: Final = 1
_AUTH: Final = 2
_CLOSED: Final = 3
_NO_EFFECTS: Final = Effect.NONE
_INPUT_HIGH_WATER: Final = 1 << 20
_STATE_CHANGED: Final = 0x4000  # ServerStatus.SESSION_STATE_CHANGED: the OK may carry a GTID
_RYW: Final = Consistency.READ_YOUR_WRITES
_CAUSAL_WAIT: Final = RouteReason.CAUSAL_WAIT
_UNIVERSAL_WAIT: Final = RouteReason.UNIVERSAL_WAIT
_perf_counter: Final = time.perf_counter
_PRIMARY: Final = Target.PRIMARY
_bisect: Final = bisect_left


class ClientSession:
    """The client side of one connection. Also the ``Sink`` for responses relayed to the client.

    An asyncio protocol by its methods (a plain class compiles to a C struct: see ``rwproxy.native``).
    """

    def __init__(self, app: SessionHost) -> None:
        self.app = app
        self.id = app.next_session_id()
        self.transport: asyncio.Transport | None = None
        self.peer = "unknown"
        self.decoder = PacketDecoder(app.config.proxy.max_packet_size)
        self.state = SessionState()
        self.user = ""
        self.client_flags = 0
        self.collation = 45
        self.tls = False
        self.salt = b""
        self.conns: dict[str, BackendConnection] = {}
        self.stmts = commands.PreparedStatements()
        self.phase = _HANDSHAKE
        self.busy = False
        self.buffered = False  # waiting for a primary (failover / switchover): see buffering
        self.inflight: commands.Inflight | None = None
        self.active: BackendConnection | None = None
        self.infile_conn: BackendConnection | None = None
        self.multi_statements_changed = False
        self._relayed = False
        self.waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._write_paused = False
        self._held: list[BackendConnection] = []  # backend connections paused for this client
        self._read_paused = False
        self._rand = random.random
        self.commands = 0  # commands received (the idle sweeper watches it)
        self.idle_mark: tuple[int, float] = (0, 0.0)  # (commands, since) as last seen by the sweeper
        self.tls_layer: TlsTransport | None = None
        self._max_payload = min(app.config.proxy.max_packet_size, 0xFFFFFE)
        self._raw_payload: bytes | None = None  # the payload dispatched from the fast path ...
        self._raw_packet = b""  # ... and the packet it came in
        self.digests = app.digests  # rwproxy.observability.digests.DigestTable; None: query_digest = false
        self.latency = (
            app.latency
        )  # rwproxy.observability.latency.LatencyHistogram; None: latency_histogram = false
        self.timed = self.digests is not None or self.latency is not None
        self.started = 0.0  # perf_counter() when the statement was sent (only when timed)
        self.mux: multiplex.Multiplexer | None = None  # None: multiplexing off (rwproxy.frontend.multiplex)
        self.unauthenticated = False  # counted in app.preauth (rwproxy.frontend.preauth)
        # The replica read the read-timeout sweep saw in flight, and since when (check_read_timeout).
        self.read_mark: commands.Request | None = None
        self.read_since = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0])
        self.app.sessions[self.id] = self
        if len(self.app.sessions) > self.app.config.proxy.max_connections:
            self.app.stats.refused_connections += 1
            self.write_packet(make_err(ErrorCode.ER_CON_COUNT_ERROR, "Too many connections"), 0)
            self.close()
            return
        if not preauth.admit(self):
            return
        self._task = asyncio.get_running_loop().create_task(handshake_phase(self))

    def data_received(self, data: bytes) -> None:
        if self.tls_layer is not None:
            try:
                data = self.tls_layer.receive(data)
            except ssl.SSLError as exc:
                log.info("session %d (%s): TLS error: %s", self.id, self.peer, exc)
                self.tls_layer.abort()
                return
            if not data:
                return
        # Fast path: exactly one whole command packet while idle (the usual OLTP case). Its bytes
        # are forwarded as they came when the command is relayed unchanged (see ``send``).
        n = len(data)
        if self.phase == _COMMAND and not self.busy and n > 4 and self.decoder.empty:
            length = data[0] | data[1] << 8 | data[2] << 16
            if length + 4 == n and data[3] == 0 and length <= self._max_payload:
                payload = data[4:]
                self._raw_payload = payload
                self._raw_packet = data
                self.commands += 1
                commands.dispatch(self, payload)
                self._raw_payload = None
                return
        self.decoder.feed(data)
        if self.phase == _COMMAND:
            if self.busy:
                if self.infile_conn is not None:
                    infile.relay_infile(self)
                elif self.decoder.buffered > _INPUT_HIGH_WATER and not self._read_paused:
                    self._read_paused = True
                    if self.transport is not None:
                        self.transport.pause_reading()
                return
            self._pump()
        elif (self.phase == _HANDSHAKE or self.phase == _AUTH) and not preauth.input_fits(self):
            return
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # the client closed its side: the transport closes, connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = _CLOSED
        self.app.sessions.pop(self.id, None)
        preauth.leave(self)
        self.decoder.clear()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("client disconnected"))
        if self._task is not None and not self._task.done():
            self._task.cancel()
        backend_link.release_all(self)

    def pause_writing(self) -> None:
        """The client reads slower than the backend sends: stop reading the backend."""
        self._write_paused = True
        if self.active is not None:
            self.hold(self.active)

    def resume_writing(self) -> None:
        self._write_paused = False
        held = self._held
        self._held = []
        for conn in held:  # also those whose response ended while paused
            conn.resume_reading()

    def hold(self, conn: BackendConnection) -> None:
        """Pause reading ``conn`` until the client drains its buffer (see resume_writing)."""
        conn.pause_reading()
        self._held.append(conn)

    # -- Sink (responses relayed to this client) ---------------------------------------------

    def relay(self, data: bytes) -> None:
        self._relayed = True
        if self.transport is not None:
            self.transport.write(data)

    def done(self, conn: BackendConnection, outcome: Result) -> None:
        inflight = self.inflight
        if outcome.local_infile:
            self.infile_conn = conn
            infile.relay_infile(self)
            return
        flags = outcome.status_flags
        if flags is not None:
            self.state.observe_status(flags)
            if self.state.consistency is _RYW and inflight is not None:
                causal.note_statement(self.state, inflight.info)
            if flags & _STATE_CHANGED and conn.tracks_gtid:
                causal.learn_gtid(self.state, outcome)
        if inflight is not None and inflight.info is not None:
            before = self.state.replay_seq
            if inflight.info.effects is not _NO_EFFECTS:
                self.state.apply(inflight.info, inflight.argument, outcome.ok)
            if self.state.replay_seq != before and conn.applied_seq == before:
                conn.applied_seq = self.state.replay_seq
            if inflight.info.effects is not _NO_EFFECTS or inflight.info.primary_reason is not None:
                backend_link.note_statement(self, conn, inflight.info, outcome, before)
        if inflight is not None and inflight.after is not None:
            inflight.after(conn, outcome)
        code = outcome.error_code
        if self.timed and inflight is not None:
            seconds = _perf_counter() - self.started
            primary = inflight.route.target is _PRIMARY
            latency = self.latency
            if latency is not None:
                h = latency.primary if primary else latency.replica
                h.counts[_bisect(_LATENCY_BOUNDS, seconds)] += 1
                h.sum += seconds
            digests = self.digests
            if digests is not None and inflight.argument and inflight.info is not None:
                digests.record(inflight.argument, seconds, primary, code is not None)
        if code is not None:
            self.app.stats.count_error(code)
            if code == 1290 or code == 1836:  # read-only: the server's role may have changed
                self.app.topology_signal(conn.node_name, code)
        if self.state.capture is not None:  # a SET's values to read back first (session_sets)
            session_sets.capture(self, conn)
            return
        self.finish_command()

    def failed(self, conn: BackendConnection, error: BackendError) -> None:
        """The backend connection of the statement in flight was lost (or stopped: a read timeout)."""
        backend_lost.backend_failed(self, conn, error)

    def resend(self, req: commands.Request) -> None:
        """Send the statement in flight again on its (new) route: a retried read."""
        self.active = None
        self.read_mark = None
        self.spawn(self._send_slow(req))

    @property
    def writing_paused(self) -> bool:
        """The client reads slower than its backend sends (flow control)."""
        return self._write_paused

    # -- the command loop --------------------------------------------------------------------

    def _pump(self) -> None:
        while not self.busy and self.phase == _COMMAND:
            try:
                packet = self.decoder.next_packet()
            except PacketTooLarge as exc:
                self.fatal(exc.errno, "Got a packet bigger than 'max_allowed_packet' bytes", exc.sqlstate)
                return
            except RemoteProtocolError as exc:
                self.fatal(exc.errno, f"Malformed packet: {exc}", exc.sqlstate)
                return
            if packet is None:
                if self._read_paused and self.transport is not None:
                    self._read_paused = False
                    self.transport.resume_reading()
                return
            seq, payload = packet
            if seq != 0 or not payload:
                self.fatal(ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER, "Got packets out of order", "08S01")
                return
            self.commands += 1
            commands.dispatch(self, payload)

    def finish_command(self) -> None:
        outstanding = self.app.routing.outstanding
        if outstanding is not None and self.inflight is not None and self.inflight.route.node is not None:
            outstanding[self.inflight.route.node.name] -= 1
        self.busy = False
        self.inflight = None
        self.active = None
        self.infile_conn = None
        if self.mux is not None:
            self.mux.after_command()
        if self.phase == _COMMAND and (self._read_paused or not self.decoder.empty):
            self._pump()

    def send(self, req: commands.Request) -> None:
        """The one send path: run ``req`` on its route (or where it must wait or fall back) and
        relay the response. Text and prepared statements, write buffering, causal waits and the
        replica fallback all go through here; the choices are pure (``rwproxy.router.fallback``)."""
        r = req.route
        node = r.node
        app = self.app
        respond = req.kind is not None
        if respond:
            app.stats.count_route(r)
        failover = app.failover
        if (
            failover is not None
            and r.target is _PRIMARY
            and (node is None or failover.buffer.active)
            and waits_for_primary(
                r,
                buffering=True,
                buffer_active=failover.buffer.active,
                in_transaction=self.state.in_transaction,
                split_brain=bool(app.topology.split_brain),
            )
        ):
            # node=None: not counted as outstanding anywhere until it is rerouted.
            req.route = r.replace(node=None)
            self._start(req, None)
            self.spawn(self._send_slow(req, True))
            return
        if node is None:
            if respond:
                self.reply_error(ErrorCode.ER_UNKNOWN_ERROR, buffering.no_primary_message(app, r), "HY000")
            return
        if req.run is None and r.reason is not _CAUSAL_WAIT and r.reason is not _UNIVERSAL_WAIT:
            conn = self.conns.get(node.name)
            if conn is not None and conn.bad is None and conn.applied_seq == self.state.replay_seq:
                stmt = req.stmt
                if stmt is None:
                    # The usual case, inline (pure Python: each call counts): _start + _write.
                    self.busy = True
                    self._relayed = False
                    self.inflight = req
                    outstanding = app.routing.outstanding
                    if outstanding is not None:
                        outstanding[node.name] += 1
                    if self.timed:
                        self.started = _perf_counter()
                    self.active = conn
                    if self._write_paused:
                        self.hold(conn)
                    payload = req.payload
                    packet = self._raw_packet if payload is self._raw_payload else frame(payload, 0)
                    conn.request(packet, req.kind, self)
                    return
                if conn in stmt.on:
                    if respond:
                        self._start(req, node)
                    # else COM_STMT_SEND_LONG_DATA: no response, nothing in flight
                    self._write(conn, req)
                    return
        self._start(req, node)
        self.spawn(self._send_slow(req))

    def _start(self, req: commands.Request, node: Node | None) -> None:
        self.busy = True
        self._relayed = False
        self.inflight = req
        if node is not None:
            outstanding = self.app.routing.outstanding
            if outstanding is not None:
                outstanding[node.name] += 1
        if self.timed:
            self.started = _perf_counter()

    def _write(self, conn: BackendConnection, req: commands.Request) -> None:
        stmt = req.stmt
        payload = req.payload
        if stmt is None:
            packet = self._raw_packet if payload is self._raw_payload else frame(payload, 0)
        else:
            packet = frame(backend_payload(stmt, conn, payload), 0)
            if req.kind is None:
                stmt.long_data_conn = conn
                conn.request(packet, None, None)
                return
        self.active = conn
        if self._write_paused:
            self.hold(conn)
        conn.request(packet, req.kind, self)
        if stmt is None:
            session_sets.pipeline(self)  # an evaluated SET: its read-back right behind it

    async def _send_slow(self, req: commands.Request, wait: bool = False) -> None:
        conn = await send_path.connect_routed(self, req, wait)
        if conn is None or self.phase == _CLOSED:
            return
        run = req.run
        if run is not None:
            await run(conn)
            return
        self._write(conn, req)
        if req.kind is None:
            self.finish_command()

    async def connection_for(self, node: Node) -> BackendConnection:
        """This session's connection to ``node``, opened or taken from the pool, state replayed."""
        return await backend_link.connection_for(self, node)

    # -- helpers used by commands ------------------------------------------------------------

    def route(self, info: StatementInfo, sql: str | None = None) -> Route:
        app = self.app
        routing = app.routing  # one reload-consistent view (rwproxy.router.routing_state)
        rule = routing.rules.match(sql, digest_text) if sql is not None and routing.has_rules else None
        r = route(info, self.state, app.topology, routing.policy_options, rule, self._rand())
        return sticky.stick(r, self.state, app.topology) if routing.sticky_replica else r

    def spawn(self, coro: object) -> None:
        self._task = asyncio.get_running_loop().create_task(self._guard(coro))

    async def _guard(self, coro: object) -> None:
        try:
            await coro  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except BackendError as exc:
            send_path.fail_statement(self, exc)
        except Exception:
            log.exception("session %d: internal error", self.id)
            self.fatal(ErrorCode.ER_UNKNOWN_ERROR, "rwproxy internal error", "HY000")

    def write_packet(self, payload: bytes, seq: int) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(payload, seq))

    def reply_ok(self, *, info: bytes = b"") -> None:
        self.write_packet(make_ok(self.client_flags, status_flags=self.status_flags(), info=info), 1)

    def reply_error(self, errno: int, message: str, sqlstate: str | None = None) -> None:
        self.app.stats.count_error(errno)
        self.write_packet(make_err(errno, message, sqlstate, self.client_flags), 1)

    def status_flags(self) -> int:
        flags = 0
        if self.state.in_transaction:
            flags |= ServerStatus.IN_TRANS
        if self.state.autocommit:
            flags |= ServerStatus.AUTOCOMMIT
        return int(flags)

    def drop_connection(self, conn: BackendConnection) -> None:
        if self.conns.get(conn.node_name) is conn:
            del self.conns[conn.node_name]
        self.stmts.forget_connection(conn)
        self.app.pool.discard(conn, conn.bad or BadConnReason.LOST)

    def release_connections(self) -> None:
        """Return every backend connection to the pool (reset there); used by reset/change user."""
        backend_link.release_all(self)
        self.stmts.clear()

    def fatal(self, errno: int, message: str, sqlstate: str) -> None:
        """Tell the client what went wrong, then close this session only."""
        self.app.stats.protocol_errors += 1
        log.info("session %d (%s): closing: %s", self.id, self.peer, message)
        self.write_packet(make_err(errno, message, sqlstate, self.client_flags), 1)
        self.close()

    @property
    def closed(self) -> bool:
        return self.phase == _CLOSED

    def close(self) -> None:
        self.phase = _CLOSED
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- handshake / authentication (coroutines) ---------------------------------------------

    def enter_commands(self) -> None:
        """Authenticated (again): the command loop starts or goes on."""
        self.phase = _COMMAND
        self.mux = multiplex.multiplexer_for(self)
        self.finish_command()

    def begin_reauth(self, payload: bytes) -> None:
        """COM_CHANGE_USER: authenticate again, then continue the command loop."""
        self.phase = _AUTH
        self.busy = True
        self.spawn(reauth_phase(self, payload))
