"""LOAD DATA LOCAL INFILE: the client's file goes to the backend as it comes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rwproxy.protocol.errors import RemoteProtocolError
from rwproxy.protocol.framing import frame

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["relay_infile"]


def relay_infile(session: ClientSession) -> None:
    """LOAD DATA LOCAL INFILE: the client's file packets go to the backend as they come, until the
    empty packet that ends the upload; then the backend's result is expected."""
    conn = session.infile_conn
    if conn is None:
        return
    while True:
        try:
            packet = session.decoder.next_packet()
        except RemoteProtocolError as exc:
            session.fatal(exc.errno, f"Malformed packet: {exc}", exc.sqlstate)
            return
        if packet is None:
            return
        seq, payload = packet
        conn.request(frame(payload, seq), None, None)
        if not payload:
            session.infile_conn = None
            conn.expect_infile_result()
            return
