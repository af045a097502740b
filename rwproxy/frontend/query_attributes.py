"""Commands of a client that negotiated ``CLIENT_QUERY_ATTRIBUTES``, made plain for the backends.

rwproxy offers the capability to every client and never negotiates it with a backend (see
``rwproxy.backend.connection.open_backend``), so COM_QUERY and COM_STMT_EXECUTE of such a client are
rewritten here (``rwproxy.protocol.query_attributes``) before they are classified and sent; their
attributes can carry routing hints (``rwproxy.router.attribute_hints``). A malformed prefix gets an
ER_MALFORMED_PACKET answer and the session goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from rwproxy.protocol.constants import ErrorCode
from rwproxy.protocol.errors import MalformedPacket
from rwproxy.protocol.query_attributes import QueryAttribute, plain_execute, plain_query

if TYPE_CHECKING:
    from rwproxy.frontend.prepared import PreparedStatement
    from rwproxy.frontend.session import ClientSession

__all__ = ["QUERY_ATTRIBUTES", "strip_execute", "strip_query"]

# A literal: compiled, the per-command test in commands.py inlines it (== Capability.QUERY_ATTRIBUTES).
QUERY_ATTRIBUTES: Final = 0x8000000


def strip_query(session: ClientSession, payload: bytes) -> tuple[bytes, tuple[QueryAttribute, ...]] | None:
    """The plain COM_QUERY and its attributes; None when malformed (the client got an error)."""
    try:
        return plain_query(payload)
    except MalformedPacket as exc:
        session.reply_error(
            ErrorCode.ER_MALFORMED_PACKET, f"Malformed COM_QUERY query attributes: {exc}", "HY000"
        )
        return None


def strip_execute(
    session: ClientSession, stmt: PreparedStatement, payload: bytes
) -> tuple[bytes, tuple[QueryAttribute, ...]] | None:
    """The plain COM_STMT_EXECUTE and its attributes; None when malformed (the client got an error)."""
    try:
        return plain_execute(payload, stmt.num_params, stmt.last_types)
    except MalformedPacket as exc:
        session.reply_error(
            ErrorCode.ER_MALFORMED_PACKET, f"Malformed COM_STMT_EXECUTE query attributes: {exc}", "HY000"
        )
        return None
