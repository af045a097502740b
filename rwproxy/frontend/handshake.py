"""Connection phase on the client side: greeting, optional TLS, authentication, default database.

The dialogue itself is data (``rwproxy.protocol.auth.ServerAuthenticator``); this module only moves
its packets. A failed authentication sends ERR 1045 and closes the connection: nothing the client
sends afterwards is read.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendError
from rwproxy.frontend import backend_link, preauth
from rwproxy.frontend.buffering import primary_after_wait
from rwproxy.frontend.tls import TlsTransport
from rwproxy.frontend.unreachable import connect_failed
from rwproxy.protocol.auth import AuthFailed, AuthOk, SendMore, ServerAuthenticator
from rwproxy.protocol.connection import (
    HandshakeResponse41,
    SslRequest,
    make_handshake_v10,
    parse_com_change_user,
    parse_handshake_response,
)
from rwproxy.protocol.constants import Capability, Command, ErrorCode
from rwproxy.protocol.errors import RemoteProtocolError
from rwproxy.protocol.packets import make_err, make_ok, parse_err
from rwproxy.protocol.results import ResponseKind
from rwproxy.router.fallback import CONNECT_ERRORS

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["authenticate", "make_salt", "reauthenticate", "run_handshake", "run_reauth"]

log = logging.getLogger(__name__)

_HANDSHAKE_TIMEOUT = 10.0
_SALT_ALPHABET = bytes(b for b in range(0x21, 0x7F) if b not in b"$")


def make_salt() -> bytes:
    """20 printable bytes, as MySQL servers send (no NUL: clients read it as a C string)."""
    return bytes(secrets.choice(_SALT_ALPHABET) for _ in range(20))


async def authenticate(session: ClientSession) -> bool:
    app = session.app
    session.salt = make_salt()
    caps = app.server_capabilities
    session.write_packet(
        make_handshake_v10(
            server_version=app.server_version,
            connection_id=session.id,
            auth_plugin_data=session.salt,
            capabilities=caps,
            auth_plugin_name=app.config.proxy.auth_plugin,
        ),
        0,
    )
    seq, payload = await read_packet(session, _HANDSHAKE_TIMEOUT)
    response = parse_handshake_response(payload)
    if isinstance(response, SslRequest):
        if app.tls_context is None:
            _deny(
                session,
                seq + 1,
                ErrorCode.ER_HANDSHAKE_ERROR,
                "Bad handshake: TLS is not configured",
                "08S01",
            )
            return False
        start_tls(session)
        seq, payload = await read_packet(session, _HANDSHAKE_TIMEOUT)
        response = parse_handshake_response(payload)
        if not isinstance(response, HandshakeResponse41):
            _deny(session, seq + 1, ErrorCode.ER_HANDSHAKE_ERROR, "Bad handshake", "08S01")
            return False
    elif app.config.proxy.tls_required:
        _deny(
            session,
            seq + 1,
            ErrorCode.ER_ACCESS_DENIED_ERROR,
            f"Access denied for user '{response.username}'@'{session.peer}' (TLS is required)",
            "28000",
        )
        return False
    session.client_flags = int(response.capabilities & (caps | Capability.SSL))  # int: tested per command
    session.collation = response.charset
    auth = _authenticator(session)
    step = auth.start(response.username, response.auth_plugin_name, response.auth_response)
    seq = await _converse(session, auth, step, seq)
    if seq < 0:
        return False
    session.user = response.username
    if not _within_user_limit(session, seq + 1):
        return False
    database = response.database or app.default_database(session.user)
    if database and not await _use_database(session, database, seq + 1):
        return False
    session.write_packet(make_ok(session.client_flags, status_flags=session.status_flags()), seq + 1)
    return True


async def reauthenticate(session: ClientSession, payload: bytes) -> bool:
    """COM_CHANGE_USER: a new user (or the same) on this connection, with a fresh session state."""
    change = parse_com_change_user(payload, session.client_flags)
    session.release_connections()
    session.state.reset()
    session.state.database = None
    auth = _authenticator(session)
    step = auth.start(change.username, change.auth_plugin_name, change.auth_response)
    seq = await _converse(session, auth, step, 0)
    if seq < 0:
        return False
    session.user = change.username
    if change.charset:
        session.collation = change.charset
    if change.database and not await _use_database(session, change.database, seq + 1):
        return False
    session.write_packet(make_ok(session.client_flags, status_flags=session.status_flags()), seq + 1)
    return True


async def _converse(session: ClientSession, auth: ServerAuthenticator, step: object, seq: int) -> int:
    """Run the auth dialogue; return the last sequence id used, or -1 after a failure."""
    while True:
        if isinstance(step, AuthOk):
            for extra in step.extra_packets:
                seq += 1
                session.write_packet(extra, seq)
            return seq
        if isinstance(step, AuthFailed):
            session.app.stats.auth_failures += 1
            log.info("session %d: authentication failed from %s: %s", session.id, session.peer, step.message)
            _deny(session, seq + 1, step.errno, step.message, "28000")
            return -1
        assert isinstance(step, SendMore)
        seq += 1
        session.write_packet(step.payload, seq)
        seq, payload = await read_packet(session, _HANDSHAKE_TIMEOUT)
        step = auth.receive(payload)


async def _use_database(session: ClientSession, database: str, seq: int) -> bool:
    """Check the default database on the primary (1049 for an unknown one, as a server would);
    on a replica while there is no usable primary (a failover), so that reads can go on."""
    topology = session.app.topology
    node = topology.primary
    if node is None or not node.online:
        node = topology.choose_replica(0.5) or node
    if node is None:
        split = topology.split_brain
        why = f"servers {', '.join(split)} are writable at once" if split else "no primary is known"
        _deny(session, seq, ErrorCode.ER_UNKNOWN_ERROR, f"rwproxy: {why}", "HY000")
        return False
    try:
        conn = await backend_link.connection_for(session, node, login_database=database)
    except BackendError as exc:
        # The primary is not there although the snapshot says ONLINE (the first moments of a
        # failover): evidence for the monitor; check the database on a replica, as above, else
        # wait for a primary like a statement would (write buffering).
        if exc.errno not in CONNECT_ERRORS or node is not topology.primary:
            _deny(session, seq, exc.errno, str(exc), exc.sqlstate)
            return False
        connect_failed(session.app, node.name, exc)
        other = session.app.topology.choose_replica(0.5) or await primary_after_wait(session.app)
        if other is None:
            _deny(session, seq, exc.errno, str(exc), exc.sqlstate)
            return False
        try:
            conn = await backend_link.connection_for(session, other, login_database=database)
        except BackendError as exc2:
            _deny(session, seq, exc2.errno, str(exc2), exc2.sqlstate)
            return False
    try:
        name = database.encode("utf-8", "surrogateescape")  # the client's bytes, even if not UTF-8
        outcome, data = await conn.call_keep(Command.INIT_DB, name, ResponseKind.SIMPLE)
    except BackendError as exc:
        _deny(session, seq, exc.errno, str(exc), exc.sqlstate)
        return False
    if not outcome.ok:
        err = parse_err(data[4:], session.client_flags)
        _deny(session, seq, err.code, err.message, err.sqlstate)
        return False
    session.state.set_database(database)
    conn.applied_seq = session.state.replay_seq
    conn.database = database
    return True


def _within_user_limit(session: ClientSession, seq: int) -> bool:
    """``users[].max_connections``: refuse past the limit, as max_user_connections would (1226)."""
    limit = session.app.user_connection_limit(session.user)
    if limit is None:
        return True
    count = sum(1 for s in session.app.sessions.values() if s.user == session.user)
    if count <= limit:
        return True
    _deny(
        session,
        seq,
        1226,
        f"User '{session.user}' has exceeded the 'max_user_connections' resource (current value: {limit})",
        "42000",
    )
    return False


def _authenticator(session: ClientSession) -> ServerAuthenticator:
    app = session.app
    return ServerAuthenticator(
        session.salt,
        app.lookup_user,
        tls_active=session.tls,
        rsa=app.rsa,
        sha2_cache=app.sha2_cache,
        client_host=session.peer,
        greeting_plugin=app.config.proxy.auth_plugin,
    )


def _deny(session: ClientSession, seq: int, errno: int, message: str, sqlstate: str) -> None:
    session.write_packet(
        make_err(errno, message, sqlstate, session.client_flags or Capability.PROTOCOL_41), seq
    )
    session.close()


async def run_handshake(session: ClientSession) -> bool:
    """Authenticate a new client; True when its command loop may start (else it is closed)."""
    try:
        async with asyncio.timeout(session.app.config.proxy.auth_timeout_seconds):
            ok = await authenticate(session)
    except (TimeoutError, ConnectionError, RemoteProtocolError, asyncio.CancelledError) as exc:
        log.debug("session %d: handshake ended: %r", session.id, exc)
        ok = False
    except Exception:
        log.exception("session %d: handshake failed", session.id)
        ok = False
    if not ok or session.transport is None or session.transport.is_closing():
        session.close()
        return False
    session.state.consistency = session.app.user_consistency(session.user)
    return True


async def run_reauth(session: ClientSession, payload: bytes) -> bool:
    """COM_CHANGE_USER; True when the session goes on as the new user (else it is closed)."""
    try:
        ok = await reauthenticate(session, payload)
    except (TimeoutError, ConnectionError, RemoteProtocolError) as exc:
        log.debug("session %d: change user ended: %r", session.id, exc)
        ok = False
    if not ok:
        session.close()
        return False
    session.state.consistency = session.app.user_consistency(session.user)
    return True


async def handshake_phase(session: ClientSession) -> None:
    """A new connection's task: authenticate, then the command loop."""
    try:
        ok = await run_handshake(session)
    finally:
        preauth.leave(session)
    if ok:
        session.enter_commands()


async def reauth_phase(session: ClientSession, payload: bytes) -> None:
    """COM_CHANGE_USER's task: authenticate again, then the command loop goes on."""
    if await run_reauth(session, payload):
        session.enter_commands()


async def read_packet(session: ClientSession, timeout: float) -> tuple[int, bytes]:
    """The client's next packet during the handshake (``data_received`` wakes ``session.waiter``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        packet = session.decoder.next_packet()
        if packet is not None:
            return packet
        session.waiter = loop.create_future()
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for the client")
        await asyncio.wait_for(session.waiter, remaining)
        session.waiter = None


def start_tls(session: ClientSession) -> None:
    """Switch to TLS right after the SSLRequest; bytes already read go to the TLS layer."""
    ctx = session.app.tls_context
    assert ctx is not None and session.transport is not None
    rest = session.decoder.take_rest()
    session.tls_layer = TlsTransport(session.transport, ctx)
    session.transport = session.tls_layer
    session.tls = True
    if rest:
        session.data_received(rest)
