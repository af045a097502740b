"""Session-state tracking data in OK packets (``CLIENT_SESSION_TRACK``), for causal reads.

rwproxy asks its backend connections to track the GTID of each committed transaction (MariaDB:
``session_track_system_variables`` including ``last_gtid``; MySQL: ``session_track_gtids =
OWN_GTID``), so the GTID arrives in the OK packet of the write itself: no extra round trip.

* ``tracked_gtid(ok_payload)``: the GTID in an OK packet's session state, or None.
* ``strip_session_state(ok_payload)``: the same OK as a server would have sent it to a client that
  did not ask for ``CLIENT_SESSION_TRACK`` (flag cleared, state dropped, empty info dropped).
* ``tracking_statement(server_version, client_tracks)``: what to run on a backend connection.

https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_ok_packet.html
"""

from __future__ import annotations

from rwproxy.protocol.constants import ServerStatus
from rwproxy.protocol.errors import MalformedPacket
from rwproxy.protocol.wire import read_str_lenenc, read_uint_lenenc, str_lenenc

__all__ = [
    "SESSION_TRACK_GTIDS",
    "SESSION_TRACK_SYSTEM_VARIABLES",
    "session_state_entries",
    "strip_session_state",
    "tracked_gtid",
    "tracking_statement",
]

SESSION_TRACK_SYSTEM_VARIABLES = 0
SESSION_TRACK_GTIDS = 3
_CHANGED = int(ServerStatus.SESSION_STATE_CHANGED)


def _state_offsets(payload: bytes) -> tuple[int, int, int] | None:
    """(offset of the status flags, offset of the info field, status flags) of an OK packet whose
    session state changed, or None when it did not (or it is not an OK packet)."""
    if not payload or payload[0] not in (0x00, 0xFE):
        return None
    _, pos = read_uint_lenenc(payload, 1)
    _, pos = read_uint_lenenc(payload, pos)
    if pos + 4 > len(payload):
        return None
    flags = payload[pos] | payload[pos + 1] << 8
    if not flags & _CHANGED:
        return None
    return pos, pos + 4, flags


def session_state_entries(payload: bytes) -> list[tuple[int, bytes]]:
    """The (type, data) entries of an OK packet's session state ([] when none)."""
    offsets = _state_offsets(payload)
    if offsets is None or offsets[1] >= len(payload):
        return []
    _, pos = read_str_lenenc(payload, offsets[1])  # info
    if pos >= len(payload):
        return []
    state, _ = read_str_lenenc(payload, pos)
    entries = []
    at = 0
    while at < len(state):
        kind = state[at]
        data, at = read_str_lenenc(state, at + 1)
        entries.append((kind, data))
    return entries


def tracked_gtid(payload: bytes) -> str | None:
    """The GTID an OK packet reports (MariaDB ``last_gtid`` / MySQL own GTID), or None."""
    try:
        for kind, data in session_state_entries(payload):
            if kind == SESSION_TRACK_SYSTEM_VARIABLES:
                name, pos = read_str_lenenc(data, 0)
                if name.lower() == b"last_gtid":
                    value, _ = read_str_lenenc(data, pos)
                    return value.decode("ascii") or None
            elif kind == SESSION_TRACK_GTIDS and len(data) > 1:
                value, _ = read_str_lenenc(data, 1)  # after the encoding specification byte
                return value.decode("ascii") or None
    except (MalformedPacket, UnicodeDecodeError):
        return None
    return None


def strip_session_state(payload: bytes) -> bytes:
    """``payload`` without session state: what a client without CLIENT_SESSION_TRACK gets."""
    try:
        offsets = _state_offsets(payload)
        if offsets is None:
            return payload
        flags_at, info_at, flags = offsets
        info = b""
        if info_at < len(payload):
            info, _ = read_str_lenenc(payload, info_at)
    except MalformedPacket:
        return payload
    flags &= ~_CHANGED
    head = payload[:flags_at] + bytes((flags & 0xFF, flags >> 8)) + payload[flags_at + 2 : info_at]
    return head + str_lenenc(info) if info else head


def tracking_statement(server_version: str, client_tracks: bool) -> bytes:
    """The statement that makes a backend connection report each commit's GTID in its OK packet.

    For a client that negotiated SESSION_TRACK itself, the server's defaults stay and the GTID is
    added; for one that did not, the GTID is all that is tracked (rwproxy strips it before relaying).
    """
    if "mariadb" in server_version.lower():
        if client_tracks:
            return (
                b"SET SESSION session_track_system_variables = "
                b"CONCAT_WS(',', NULLIF(@@session.session_track_system_variables, ''), 'last_gtid')"
            )
        return (
            b"SET SESSION session_track_system_variables = 'last_gtid', session_track_schema = OFF, "
            b"session_track_state_change = OFF"
        )
    if client_tracks:
        return b"SET SESSION session_track_gtids = OWN_GTID"
    return (
        b"SET SESSION session_track_gtids = OWN_GTID, session_track_system_variables = '', "
        b"session_track_schema = OFF, session_track_state_change = OFF, "
        b"session_track_transaction_info = OFF"
    )
