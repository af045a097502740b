"""One worker process: a ``ProxyApp`` that serves clients on listeners the supervisor bound, with no
monitor, failover controller, coordination, RDS discovery or admin interface of its own.

    python -m rwproxy worker --config FILE --index K --count N --channel-fd FD --listen-fds A,B

Started by ``rwproxy.workers.supervisor`` only; ``rwproxy.cli`` passes the app class
(``main(argv, ProxyApp)``: nothing here imports ``rwproxy.app``). The channel (a socketpair) brings
topology snapshots and write-buffering state (``State``), reloads, metrics requests, KILLs and the
drain order; it takes back the sessions' evidence for the monitor (``Signal``), reload outcomes
and counters. When the channel closes (the supervisor is gone) the worker drains and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from rwproxy.workers.messages import (
    Decoder,
    Drain,
    Drained,
    Hello,
    Kill,
    Killed,
    Message,
    MetricsReply,
    MetricsRequest,
    ProcessList,
    ProcessListReply,
    Reload,
    Reloaded,
    RowsReply,
    RowsRequest,
    State,
    Stop,
    encode,
)

__all__ = ["WorkerProcess", "collect_families", "main"]

log = logging.getLogger("rwproxy.workers")


def collect_families(app: Any) -> list[Any]:
    """The worker's own metric families as plain tuples (``messages.Family``)."""
    from rwproxy.observability.metrics import RwproxyCollector

    out = []
    for metric in RwproxyCollector(app).collect():
        samples = [(s.name, dict(s.labels), float(s.value)) for s in metric.samples]
        out.append((metric.name, metric.type, metric.documentation, samples))
    return out


class _WorkerTag(logging.Filter):
    """Worker log lines start with ``worker K:`` (they share the supervisor's stderr)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.prefix = f"worker {index}: "
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and not record.msg.startswith(self.prefix):
            record.msg = self.prefix + record.msg
        record.worker = self.index
        return True


class WorkerProcess:
    def __init__(self, app: Any, index: int, count: int, channel: socket.socket) -> None:
        from rwproxy.workers.ids import session_ids
        from rwproxy.workers.remote import RemoteFailover, RemoteMonitor, WorkerView

        self.app = app
        self.index = index
        self.channel = channel
        self.stop_event = asyncio.Event()
        self.grace: float | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._kills: dict[int, asyncio.Future[str]] = {}
        self._processlists: dict[int, asyncio.Future[list[dict[str, Any]]]] = {}
        self._seq = 0
        self.count = count
        self.view = WorkerView(self.send)
        # What runs once per instance runs in the supervisor; these read what it publishes.
        if app.monitor is not None:
            app.monitor = RemoteMonitor(self.view)
        app.aws.discovery = None
        app.aws.monitor = None
        if app.failover is not None:
            app.failover = RemoteFailover(self.view, app.config.failover.mode)
        app.coordination = None
        app.admin_enabled = False
        app._ids = session_ids(index, count)

    # -- rwproxy.workers.kill_forward.RemoteKill ---------------------------------------------------

    def elsewhere(self, session_id: int) -> bool:
        from rwproxy.workers.ids import worker_of

        return session_id > 0 and worker_of(session_id, self.count) != self.index

    async def kill(self, session_id: int, query_only: bool, user: str, privileged: bool) -> str:
        self._seq += 1
        seq = self._seq
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._kills[seq] = future
        self.send(Kill(seq, session_id, query_only, user, privileged))
        try:
            return await asyncio.wait_for(future, 5.0)
        except TimeoutError:
            return "unknown"
        finally:
            self._kills.pop(seq, None)

    # -- rwproxy.workers.processlist_forward.RemoteProcesslist ------------------------------------

    async def other_rows(self) -> list[dict[str, Any]] | None:
        from rwproxy.workers.processlist_forward import TIMEOUT

        self._seq += 1
        seq = self._seq
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._processlists[seq] = future
        self.send(ProcessList(seq))
        try:
            return await asyncio.wait_for(future, TIMEOUT)
        except TimeoutError:
            log.warning("the other workers' sessions did not come within %.0f s; listing ours only", TIMEOUT)
            return None
        finally:
            self._processlists.pop(seq, None)

    def send(self, message: Message) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(encode(message))

    async def run(self, listen_sockets: list[socket.socket]) -> None:
        reader, self._writer = await asyncio.open_unix_connection(sock=self.channel)
        reading = asyncio.get_running_loop().create_task(self._read(reader))
        self.app.listen_sockets = listen_sockets
        await self.app.start()  # waits for the first State (RemoteMonitor.start)
        self.send(Hello(self.index, os.getpid()))
        await self.stop_event.wait()
        grace = self.grace
        log.info("draining (grace %.1f s)", grace or 0.0)
        await self.app.stop(grace)
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        self._writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = Decoder()
        while True:
            try:
                data = await reader.read(1 << 16)
            except OSError:
                data = b""
            if not data:
                log.warning("the supervisor is gone; draining")
                self.stop_event.set()
                return
            for message in decoder.feed(data):
                self._handle(message)

    def _handle(self, message: Message) -> None:
        if isinstance(message, State):
            self.apply_state(message)
        elif isinstance(message, MetricsRequest):
            self.send(self._metrics(message.seq))
        elif isinstance(message, RowsRequest):
            self.send(self._rows(message))
        elif isinstance(message, Reload):
            self._spawn(self._reload(message.seq))
        elif isinstance(message, Drain):
            self._spawn(self._drain(message))
        elif isinstance(message, Kill):  # a KILL asked in another worker, for one of our sessions
            from rwproxy.frontend.kill import kill_here

            answer = kill_here(
                self.app,
                message.session,
                query_only=message.query_only,
                user=message.user,
                privileged=message.privileged,
            )
            self.send(Killed(message.seq, answer))
        elif isinstance(message, ProcessListReply):
            rows = self._processlists.pop(message.seq, None)
            if rows is not None and not rows.done():
                rows.set_result(message.rows)
        elif isinstance(message, Killed):
            future = self._kills.pop(message.seq, None)
            if future is not None and not future.done():
                future.set_result(message.answer)
        elif isinstance(message, Stop):
            self.grace = message.grace
            self.stop_event.set()

    def apply_state(self, state: State) -> None:
        from rwproxy.workers.remote import RemoteFailover

        self.view.update(state)
        failover = self.app.failover
        if isinstance(failover, RemoteFailover):
            failover.apply(state)
        current = self.app.topology
        if state.nodes != current.nodes or state.version != current.version:
            self.app.set_topology(state.topology())
        elif failover is not None:
            failover.buffer.poke()  # buffering or readiness changed: waiters look again

    def _metrics(self, seq: int) -> MetricsReply:
        times = os.times()
        return MetricsReply(
            seq=seq,
            sessions=len(self.app.sessions),
            cpu_seconds=times.user + times.system,
            families=collect_families(self.app),
        )

    def _rows(self, message: RowsRequest) -> RowsReply:
        """This worker's part of an instance-wide admin view (rwproxy.workers.views)."""
        app = self.app
        if message.view == "sessions":
            from rwproxy.admin.tables import build

            return RowsReply(message.seq, build(app, "sessions"))
        if message.view == "processlist":
            from rwproxy.frontend.processlist import session_rows

            return RowsReply(message.seq, session_rows(app))
        if message.view == "servers":
            from rwproxy.workers.views import server_rows

            return RowsReply(message.seq, server_rows(app))
        if message.view == "digests" and app.digests is not None:
            return RowsReply(message.seq, app.digests.rows(), app.digests.evicted)
        return RowsReply(message.seq)

    async def _reload(self, seq: int) -> None:
        from rwproxy.reload import ReloadError
        from rwproxy.workers.remote import RemoteMonitor

        app = self.app
        try:
            result = await app.reload_config()
        except ReloadError as exc:
            self.send(Reloaded(seq, False, str(exc)))
            return
        # The monitor runs in the supervisor: a reload that switched it on here gets the stand-in.
        monitor = app.monitor
        if monitor is not None and not isinstance(monitor, RemoteMonitor):
            await monitor.stop()
            app.monitor = RemoteMonitor(self.view)
        self.send(Reloaded(seq, True, str(result)))

    async def _drain(self, message: Drain) -> None:
        from rwproxy.failover.buffer import drain_sessions

        left = await drain_sessions(self.app.sessions, message.primary, message.timeout)
        self.send(Drained(message.seq, left))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _serve(args: argparse.Namespace, config: Any, make_app: Callable[..., Any]) -> None:
    channel = socket.socket(fileno=args.channel_fd)
    listen = [socket.socket(fileno=int(fd)) for fd in args.listen_fds.split(",") if fd]
    app = make_app(config, config_path=args.config)
    worker = WorkerProcess(app, args.index, args.count, channel)
    from rwproxy.workers import kill_forward

    kill_forward.current = worker
    from rwproxy.workers import processlist_forward

    processlist_forward.current = worker
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop_event.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the supervisor reloads, then tells us
    await worker.run(listen)


def main(argv: Sequence[str] | None, make_app: Callable[..., Any]) -> int:
    """``make_app(config, config_path=...)``: the ``ProxyApp`` class (passed by ``rwproxy.cli``)."""
    parser = argparse.ArgumentParser(prog="rwproxy worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--channel-fd", type=int, required=True)
    parser.add_argument("--listen-fds", required=True)
    args = parser.parse_args(argv)
    from rwproxy.config import load_config
    from rwproxy.observability.logs import setup_logging

    config = load_config(args.config)
    handler = setup_logging(*config.log_settings)
    handler.addFilter(_WorkerTag(args.index))
    if config.proxy.uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
    started = time.monotonic()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, config, make_app))
    log.info("exited after %.0f s", time.monotonic() - started)
    return 0
