"""Limits on clients that have not authenticated yet: they may cost the proxy almost nothing.

Anyone who can reach the listener can open a connection, so before the login succeeds:

- a packet may announce at most ``PREAUTH_MAX_PACKET`` (16 KiB; ``proxy.max_packet_size`` if that is
  smaller) of payload. A HandshakeResponse41 with a long user name, database, auth plugin name, a
  20-512 byte auth response and connect attributes is well under 2 KiB (the protocol would allow
  64 KiB of connect attributes; drivers send a few hundred bytes); RSA and AuthSwitch replies are
  under 1 KiB. A bigger header is refused at once, from the 4 header bytes, with ERR 1153: its body
  is never read.
- at most ``PREAUTH_MAX_BUFFERED`` bytes may wait in the session's decoder (the handshake is
  lock-step: a client sends one packet and waits, so more than two packets' worth is an attack).
- at most ``proxy.max_unauthenticated_connections`` such clients at once; the next one gets ERR 1040
  right after the accept (the one log line is written when the limit is reached, one when it clears).
- the whole login ends within ``proxy.auth_timeout_seconds`` (``rwproxy.frontend.handshake``).

The two size limits also hold while an authenticated client runs COM_CHANGE_USER (the same lock-step
auth dialogue).

So N unauthenticated clients hold at most N x 32 KiB of buffers; a closed session drops its decoder
buffer at once (``PacketDecoder.clear``), not when the garbage collector gets to it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

from rwproxy.protocol.constants import Capability, ErrorCode
from rwproxy.protocol.framing import HEADER_SIZE
from rwproxy.protocol.packets import make_err

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["PREAUTH_MAX_BUFFERED", "PREAUTH_MAX_PACKET", "PreauthGate", "admit", "input_fits", "leave"]

log = logging.getLogger(__name__)

PREAUTH_MAX_PACKET: Final = 16 * 1024
PREAUTH_MAX_BUFFERED: Final = 2 * (PREAUTH_MAX_PACKET + HEADER_SIZE)
_LOG_EVERY: Final = 10.0  # seconds between two lines about refused pre-auth packets


class PreauthGate:
    """Per proxy: how many clients are unauthenticated now, and what was refused before login."""

    __slots__ = ("_last_log", "_unlogged", "count", "oversized", "refused", "refusing")

    def __init__(self) -> None:
        self.count = 0  # sessions between accept and the end of their login
        self.refused = 0  # connections refused at the max_unauthenticated_connections cap
        self.oversized = 0  # sessions closed for a too big packet (or too many bytes) before login
        self.refusing = False  # at the cap since the last refusal (for the log)
        self._last_log = 0.0
        self._unlogged = 0

    def note_oversized(self, message: str) -> None:
        """Count it; log at most one line per ``_LOG_EVERY`` seconds (a flood must not flood the log)."""
        self.oversized += 1
        now = time.monotonic()
        if now - self._last_log < _LOG_EVERY:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more since the last such line)" if self._unlogged else ""
        log.warning("refused a client: %s%s", message, more)
        self._last_log = now
        self._unlogged = 0


def admit(session: ClientSession) -> bool:
    """A new connection: count it as unauthenticated, or refuse it (1040) when at the cap."""
    app = session.app
    gate = app.preauth
    limit = app.config.proxy.max_unauthenticated_connections
    if gate.count >= limit:
        gate.refused += 1
        app.stats.refused_connections += 1
        if not gate.refusing:
            gate.refusing = True
            log.warning(
                "%d clients are still authenticating (max_unauthenticated_connections): refusing new ones",
                limit,
            )
        session.write_packet(
            make_err(
                ErrorCode.ER_CON_COUNT_ERROR,
                f"Too many connections: {limit} clients are still authenticating; try again later",
                "08004",
            ),
            0,
        )
        session.close()
        return False
    gate.count += 1
    session.unauthenticated = True
    return True


def leave(session: ClientSession) -> None:
    """The login ended (done, failed, timed out or the client left); safe to call more than once."""
    if not session.unauthenticated:
        return
    session.unauthenticated = False
    app = session.app
    gate = app.preauth
    gate.count -= 1
    if gate.refusing and gate.count < app.config.proxy.max_unauthenticated_connections:
        gate.refusing = False
        log.warning("unauthenticated clients below the limit again; %d refused so far", gate.refused)


def input_fits(session: ClientSession) -> bool:
    """After bytes arrived before login: True, or the session is refused (ERR sent, buffer dropped)."""
    decoder = session.decoder
    when = "before authentication" if session.unauthenticated else "during COM_CHANGE_USER"
    header = decoder.pending_header()
    limit = min(PREAUTH_MAX_PACKET, session.app.config.proxy.max_packet_size)
    if header is not None and header[0] > limit:
        length, seq = header
        message = f"Got a packet bigger than 'max_allowed_packet' bytes: {length} bytes {when}, "
        message += f"the limit is {limit}"
        _refuse(session, ErrorCode.ER_NET_PACKET_TOO_LARGE, message, seq + 1)
        return False
    if decoder.buffered > PREAUTH_MAX_BUFFERED:
        message = f"Bad handshake: more than {PREAUTH_MAX_BUFFERED} bytes sent {when}"
        _refuse(session, ErrorCode.ER_HANDSHAKE_ERROR, message, (decoder.last_seq or 0) + 2)
        return False
    return True


def _refuse(session: ClientSession, errno: int, message: str, seq: int) -> None:
    session.app.preauth.note_oversized(f"session {session.id} ({session.peer}): {message}")
    session.decoder.clear()
    flags = session.client_flags or Capability.PROTOCOL_41
    session.write_packet(make_err(errno, message, "08S01", flags), seq)
    session.close()
    leave(session)
