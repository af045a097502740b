"""Answers ``SELECT @rwproxy_last_gtid`` and ``SET @rwproxy_wait_gtid`` locally (the parsing and the
routing they imply are pure: ``rwproxy.router.causal_token``). Called from ``commands._query``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rwproxy.protocol.constants import ErrorCode
from rwproxy.protocol.framing import frame
from rwproxy.protocol.packets import make_resultset
from rwproxy.router.causal_token import LAST_GTID_COLUMN, TokenError, is_last_gtid_query, parse_wait_gtid

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["answer_last_gtid", "answer_wait_gtid"]


def answer_last_gtid(session: ClientSession, sql: str) -> None:
    """A query mentioning ``@rwproxy_last_gtid``: answered with one row, the GTID of the
    session's last commit rwproxy learned (NULL: none yet); refused when it is not the plain
    ``SELECT @rwproxy_last_gtid`` (a server would silently answer NULL)."""
    if not is_last_gtid_query(sql):
        session.reply_error(
            ErrorCode.ER_PARSE_ERROR,
            "rwproxy: read the token alone, as SELECT @rwproxy_last_gtid",
            "42000",
        )
        return
    payloads = make_resultset(
        session.client_flags, [LAST_GTID_COLUMN], [[session.state.causal_gtid]], session.status_flags()
    )
    if session.transport is not None and not session.transport.is_closing():
        session.transport.write(b"".join(frame(p, seq) for seq, p in enumerate(payloads, start=1)))


def answer_wait_gtid(session: ClientSession, sql: str) -> None:
    """``SET @rwproxy_wait_gtid = '<gtid>' | NULL``: the session's reads must see that GTID."""
    parsed = parse_wait_gtid(sql)
    if isinstance(parsed, TokenError):
        session.reply_error(parsed.errno, parsed.message, "42000")
        return
    session.state.wait_gtid = parsed.gtid
    session.reply_ok()
