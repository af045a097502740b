"""Bring a backend connection up to date with its session: replay what it has not applied yet.

The session's replay log (``SessionState.replay_after``) holds USE/COM_INIT_DB, constant SETs and
COM_SET_OPTION in order; a connection remembers the last entry it applied (``applied_seq``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.backend.connection import BackendConnection, BackendError
from proxy.protocol.constants import Command
from proxy.protocol.results import ResponseKind
from proxy.router.session_state import SessionState

if TYPE_CHECKING:
    from proxy.app import ProxyStats

__all__ = ["replay_state"]


async def replay_state(conn: BackendConnection, state: SessionState, stats: ProxyStats) -> None:
    """Replay on ``conn`` every session command it has not applied; BackendError when one fails."""
    for entry in state.replay_after(conn.applied_seq):
        kind = ResponseKind.QUERY if entry.command == Command.QUERY else ResponseKind.SIMPLE
        outcome, _data = await conn.call_keep(entry.command, entry.payload, kind)
        if not outcome.ok:
            stats.replay_failures += 1
            raise BackendError(
                f"rwproxy could not restore session state on {conn.node_name}: "
                f"{entry.payload[:200].decode('utf-8', 'replace')!r} failed there",
                outcome.error_code or 1105,
            )
        conn.applied_seq = entry.seq
    conn.applied_seq = max(conn.applied_seq, state.replay_seq)
