"""One id per client connection: ``CONNECTION_ID()`` in a statement becomes the session id.

The hot path pays nothing for a plain SELECT (the classifier's answer is the shared ``PLAIN_SELECT``,
which by construction holds no ``CONNECTION_ID(``) and one pre-filter search (``_id(``) for other
statements; only a statement that mentions the call is tokenized and rewritten
(:mod:`rwproxy.router.connection_id`), then classified again (a ``SELECT CONNECTION_ID()`` becomes a
plain read that a replica may serve; ``KILL CONNECTION_ID()`` a KILL of the session's own id).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rwproxy.router.connection_id import may_mention, rewrite_connection_id
from rwproxy.router.statement import StatementInfo

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["may_mention", "with_session_id"]


def with_session_id(
    session: ClientSession, sql: str, payload: bytes, info: StatementInfo
) -> tuple[str, bytes, StatementInfo]:
    """``(sql, payload, info)`` with CONNECTION_ID() calls replaced by the session id (unchanged when
    there are none). ``payload`` is the command packet's payload: its first byte (the command) stays."""
    rewritten = rewrite_connection_id(sql, session.id)
    if rewritten is None:
        return sql, payload, info
    body = rewritten.encode("utf-8", "surrogateescape")
    return rewritten, payload[:1] + body, session.app.classifier.classify(rewritten)
