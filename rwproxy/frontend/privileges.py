"""What a session's user may do to other sessions, as the primary says, and side-connection helpers.

rwproxy has no privilege table of its own: KILL of another user's session and seeing other users in
SHOW PROCESSLIST follow the global privileges the user's backend account holds on the primary
(``information_schema.USER_PRIVILEGES`` of ``CURRENT_USER()``, read on a pooled side connection with
that account, never on the session's own connections). Privileges granted through roles are not seen.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendConnection, BackendError
from rwproxy.protocol.constants import UTF8MB4_GENERAL_CI, Command
from rwproxy.protocol.errors import ProtocolError
from rwproxy.protocol.packets import parse_err, parse_text_row, split_payloads
from rwproxy.protocol.results import ResponseKind
from rwproxy.topology.model import Node

if TYPE_CHECKING:
    from rwproxy.frontend.host import SessionHost

__all__ = [
    "KILL_PRIVILEGES",
    "PROCESS_PRIVILEGES",
    "global_privileges",
    "result_rows",
    "side_connection",
]

log = logging.getLogger(__name__)

#: Any of these lets a user kill other users' sessions (MariaDB spells CONNECTION ADMIN with a space,
#: MySQL 8 as the dynamic privilege CONNECTION_ADMIN).
KILL_PRIVILEGES = frozenset({"SUPER", "CONNECTION ADMIN", "CONNECTION_ADMIN"})
#: Any of these lets a user see other users' sessions in the process list.
PROCESS_PRIVILEGES = frozenset({"PROCESS"})

_MY_PRIVILEGES = (
    b"SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = CONCAT('''', "
    b"SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')"
)


def result_rows(response: bytes) -> list[list[bytes | None]]:
    """The rows of a whole text result set read with client flags 0 (EOF after the column
    definitions). Raises :class:`BackendError` for an ERR response."""
    packets = split_payloads(response)
    if not packets:
        raise BackendError("empty response", 2013)
    if packets[0][:1] == b"\xff":
        err = parse_err(packets[0])
        raise BackendError(err.message, err.code, err.sqlstate)
    if packets[0][:1] == b"\x00":
        return []
    columns = packets[0][0]
    rows: list[list[bytes | None]] = []
    for packet in packets[columns + 2 :]:
        if packet[:1] == b"\xfe" and len(packet) < 9:
            break
        try:
            rows.append(parse_text_row(packet, columns))
        except ProtocolError as exc:
            raise BackendError(f"malformed result: {exc}", 2027) from None
    return rows


async def side_connection(app: SessionHost, node: Node, user: str) -> BackendConnection:
    """A pooled connection to ``node`` with ``user``'s backend account (release it to the pool)."""
    return await app.pool.acquire(
        node_name=node.name,
        host=node.host,
        port=node.port,
        creds=app.backend_credentials(user),
        client_flags=0,
        collation_id=UTF8MB4_GENERAL_CI,
    )


async def global_privileges(app: SessionHost, user: str) -> frozenset[str]:
    """The global privileges of ``user``'s backend account on the primary (upper case).

    Raises :class:`BackendError` when there is no primary or it cannot be asked."""
    primary = app.topology.primary
    if primary is None:
        raise BackendError("rwproxy: no primary is known to check privileges on", 2013)
    conn = await side_connection(app, primary, user)
    try:
        _, data = await conn.call_keep(Command.QUERY, _MY_PRIVILEGES, ResponseKind.QUERY)
    finally:
        app.pool.release(conn)  # closed instead when the call failed or was cut short
    return frozenset(
        bytes(row[0]).decode().upper() for row in result_rows(data) if row and row[0] is not None
    )
