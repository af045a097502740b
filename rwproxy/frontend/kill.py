"""``KILL [QUERY | CONNECTION] id`` and ``COM_PROCESS_KILL``: ids are rwproxy session ids.

The id is the one a client sees everywhere (greeting thread id, ``CONNECTION_ID()``, SHOW
PROCESSLIST), never a backend thread id. As on MySQL/MariaDB:

- unknown id: ERR 1094;
- the session of another user: ERR 1095 unless the user's backend account holds SUPER or
  CONNECTION ADMIN (CONNECTION_ADMIN) on the primary (:mod:`rwproxy.frontend.privileges`);
- ``KILL QUERY``: the statement the session runs is stopped by ``KILL QUERY <backend thread>`` sent
  on a side connection (the target's own backend account, to the server running it); the client of
  that session gets the server's error (1317) and its session goes on;
- ``KILL [CONNECTION]``: the same, then the session is closed (its backend connections are
  discarded, never pooled); killing one's own session answers ERR 1927 and closes it.

The side ``KILL QUERY`` is sent only while the target still runs the same statement on the same
backend connection (checked when the side connection is ready), so a statement that ended in the
meantime never takes down the next one, nor anything another session runs on that connection later.
A statement not yet on a server (its backend connection being opened, a causal read waiting) is
stopped once it is sent, if it is still the same statement (checked every 10 ms, up to 30 s).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendConnection, BackendError
from rwproxy.frontend.privileges import KILL_PRIVILEGES, global_privileges, side_connection
from rwproxy.protocol.constants import Command, ErrorCode
from rwproxy.protocol.results import ResponseKind

if TYPE_CHECKING:
    from rwproxy.frontend.host import SessionHost
    from rwproxy.frontend.session import ClientSession
    from rwproxy.workers.kill_forward import RemoteKill

__all__ = ["kill", "kill_backend_query"]

log = logging.getLogger(__name__)

_ER_CONNECTION_KILLED = 1927
_WAIT_FOR_SEND = 30.0  # seconds a KILL QUERY waits for a statement that is not on a server yet
_running: set[asyncio.Task[None]] = set()  # side KILL QUERY tasks (the loop keeps only weak references)


def kill(session: ClientSession, target_id: int, *, query_only: bool) -> None:
    """Answer one KILL command of ``session`` (synchronously when no privilege check is needed)."""
    target = session.app.sessions.get(target_id)
    if target is None:
        from rwproxy.workers import kill_forward  # worker processes: the id may live in another one

        remote = kill_forward.current
        if remote is not None and remote.elsewhere(target_id):
            session.busy = True
            session.spawn(_kill_in_other_worker(session, remote, target_id, query_only))
            return
        _unknown(session, target_id)
        return
    if target.user == session.user and not target.closed:
        _act(session, target, query_only=query_only)
        return
    session.busy = True
    session.spawn(_kill_other_user(session, target_id, query_only))


async def _kill_other_user(session: ClientSession, target_id: int, query_only: bool) -> None:
    privileges = await global_privileges(session.app, session.user)  # BackendError: the client sees it
    if session.closed:
        return
    if not privileges & KILL_PRIVILEGES:
        session.reply_error(
            ErrorCode.ER_KILL_DENIED_ERROR, f"You are not owner of thread {target_id}", "HY000"
        )
    else:
        target = session.app.sessions.get(target_id)
        if target is None:
            _unknown(session, target_id)
        else:
            _act(session, target, query_only=query_only)
    session.finish_command()


async def _kill_in_other_worker(
    session: ClientSession, remote: RemoteKill, target_id: int, query_only: bool
) -> None:
    answer = await remote.kill(target_id, query_only, session.user, False)
    if answer == "other_user":
        privileges = await global_privileges(session.app, session.user)  # BackendError: the client sees it
        if session.closed:
            return
        if not privileges & KILL_PRIVILEGES:
            session.reply_error(
                ErrorCode.ER_KILL_DENIED_ERROR, f"You are not owner of thread {target_id}", "HY000"
            )
            session.finish_command()
            return
        answer = await remote.kill(target_id, query_only, session.user, True)
    if session.closed:
        return
    if answer == "ok":
        session.reply_ok()
    else:
        _unknown(session, target_id)
    session.finish_command()


def kill_here(app: SessionHost, target_id: int, *, query_only: bool, user: str, privileged: bool) -> str:
    """A KILL that another worker passed on (``rwproxy.workers.kill_forward``): ``ok``, ``unknown``
    or ``other_user`` (``target_id`` belongs to another user and the asker is not ``privileged``)."""
    target = app.sessions.get(target_id)
    if target is None or target.closed:
        return "unknown"
    if target.user != user and not privileged:
        return "other_user"
    if target.busy:
        _stop_statement(app, target, ending=not query_only)
    if not query_only:
        log.info("session %d (%s): killed by %s from another worker", target.id, target.user, user)
        target.close()
    return "ok"


def _unknown(session: ClientSession, target_id: int) -> None:
    session.reply_error(ErrorCode.ER_NO_SUCH_THREAD, f"Unknown thread id: {target_id}", "HY000")


def _act(session: ClientSession, target: ClientSession, *, query_only: bool) -> None:
    if target.busy and target is not session:
        _stop_statement(session.app, target, ending=not query_only)
    if query_only:
        session.reply_ok()
        return
    if target is session:
        session.reply_error(_ER_CONNECTION_KILLED, "Connection was killed", "70100")
        session.close()
        return
    log.info("session %d (%s): killed by session %d (%s)", target.id, target.user, session.id, session.user)
    target.close()
    session.reply_ok()


def _stop_statement(app: SessionHost, target: ClientSession, *, ending: bool) -> None:
    """``KILL QUERY`` the backend thread running ``target``'s statement, while it still runs it.

    A statement may not be on a server yet (its backend connection is being opened, a causal read
    waits): then it is stopped as soon as it is sent, for as long as it is the same statement.
    ``ending``: the session is being closed (KILL CONNECTION): its busy connection is discarded, never
    pooled, so its thread still runs this session's statement (or nothing)."""
    generation = target.commands
    active = target.active

    def same_statement() -> bool:
        return target.commands == generation and target.busy and not target.closed

    async def run() -> None:
        conn = active
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WAIT_FOR_SEND
        while conn is None or not conn.busy:
            if ending or not same_statement() or loop.time() > deadline:
                return
            await asyncio.sleep(0.01)
            conn = target.active
        node = app.topology.by_name.get(conn.node_name)
        if node is None:
            return
        try:
            side = await side_connection(app, node, target.user)
        except BackendError as exc:
            log.warning("session %d: KILL QUERY on %s failed: %s", target.id, node.name, exc)
            return
        try:
            if ending:
                held = conn.bad is not None or (target.conns.get(conn.node_name) is conn and conn.busy)
            else:
                held = same_statement() and target.active is conn and conn.busy
            if held:
                await side.call(Command.QUERY, b"KILL QUERY %d" % conn.thread_id, ResponseKind.QUERY)
        finally:
            app.pool.release(side)

    task = asyncio.get_running_loop().create_task(run())
    _running.add(task)
    task.add_done_callback(_running.discard)


def kill_backend_query(app: SessionHost, conn: BackendConnection, user: str) -> None:
    """``KILL QUERY`` on the backend thread running ``conn``'s statement (a replica read past
    ``routing.replica_read_timeout_seconds``), from a side connection with the backend account of
    ``user``, the session's own (as for ``KILL QUERY`` above: an account may always kill its own
    threads). The caller discards ``conn`` at once; the server's answer is not waited for."""
    node = app.topology.by_name.get(conn.node_name)
    if node is None:
        return
    thread_id = conn.thread_id

    async def run() -> None:
        try:
            side = await side_connection(app, node, user)
        except BackendError as exc:
            log.warning("KILL QUERY on %s failed: %s", node.name, exc)
            return
        try:
            await side.call(Command.QUERY, b"KILL QUERY %d" % thread_id, ResponseKind.QUERY)
        finally:
            app.pool.release(side)

    task = asyncio.get_running_loop().create_task(run())
    _running.add(task)
    task.add_done_callback(_running.discard)
