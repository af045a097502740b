"""The supervisor of an instance with worker processes (``[proxy] workers = N``, N > 1).

It runs what there must be one of: a ``ProxyApp`` without client listeners of its own, whose
monitor (and heartbeat), failover controller, coordination, RDS discovery and admin HTTP/SQL act
for the instance. It binds one SO_REUSEPORT socket per worker and address
(``rwproxy.workers.listeners``), starts N ``rwproxy.workers.worker`` processes and, over a
socketpair per worker:

* publishes a ``State`` (topology snapshot + write-buffering state) whenever it changes (checked
  every ``PUBLISH_INTERVAL`` while things move, ``PUBLISH_IDLE_INTERVAL`` when quiet, and at once
  after a session's evidence came in);
* passes the sessions' evidence (``Signal``) to its monitor;
* forwards a config reload it applied (``ProxyApp.reload_config``: SIGHUP, POST /reload, RELOAD
  CONFIG) to every worker, which re-reads the file;
* fetches the workers' counters for /metrics and /status (``refresh``, on each scrape), and their
  rows for the instance-wide admin views (``rows``: sessions, digests, per-server counts,
  ``rwproxy.workers.views``) and for a worker's process list (``ProcessList``);
* restarts a worker that died (its clients are gone, as with any crashed process);
* drains them all on shutdown (``Stop`` with the shutdown grace).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rwproxy.workers.listeners import bind_listeners
from rwproxy.workers.messages import (
    Decoder,
    Drain,
    Drained,
    Family,
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
    Signal,
    State,
    Stop,
    encode,
)
from rwproxy.workers.metrics import retire

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = ["PUBLISH_INTERVAL", "WorkerPool", "WorkerSlot"]

log = logging.getLogger("rwproxy.workers")

PUBLISH_INTERVAL = 0.01  # seconds between checks for a changed State: while things move ...
PUBLISH_IDLE_INTERVAL = 0.05  # ... and after a second without change (a quiet supervisor costs less)
RESTART_DELAY = 0.5  # seconds before a dead worker is started again (more after quick deaths)
REPLY_TIMEOUT = 2.0  # seconds to wait for the workers' counters on a scrape


class WorkerSlot:
    """One worker: its process, channel and the last counters it sent."""

    def __init__(self, index: int, sockets: list[socket.socket]) -> None:
        self.index = index
        self.sockets = sockets
        self.proc: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.ready = False
        self.pid: int | None = None
        self.restarts = 0
        self.started_at = 0.0
        self.sessions = 0
        self.cpu_seconds = 0.0
        self.families: list[Family] = []
        # Counters of its earlier processes (as last reported): instance totals never go down.
        self.retired: list[Family] = []
        self.task: asyncio.Task[None] | None = None

    def send(self, data: bytes) -> None:
        writer = self.writer
        if writer is not None and not writer.is_closing():
            writer.write(data)


class WorkerPool:
    def __init__(self, app: Any, config_path: str | Path, count: int) -> None:  # app: a ProxyApp
        self.app = app
        self.config_path = str(config_path)
        self.count = count
        self.slots: list[WorkerSlot] = []
        self.stopping = False
        self._published: tuple[Any, ...] | None = None
        self._state_frame = b""
        self._publisher: asyncio.Task[None] | None = None
        self._seq = 0
        self._replies: dict[int, tuple[asyncio.Future[None], set[int]]] = {}
        self._reloads: dict[int, tuple[asyncio.Future[None], dict[int, Reloaded]]] = {}
        self._kills: dict[int, tuple[WorkerSlot, int]] = {}  # our seq -> (asking worker, its seq)
        self._drains: dict[int, tuple[asyncio.Future[None], dict[int, int], set[int]]] = {}
        self._registry: CollectorRegistry | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # answers being put together (processlists)
        self._server_counts: dict[str, dict[str, Any]] = {}  # by refresh_status, for add_status
        self._rows: dict[int, tuple[asyncio.Future[None], dict[int, RowsReply], set[int]]] = {}

    # -- hooks ProxyApp and the admin interface call ---------------------------------------------

    def registry(self) -> CollectorRegistry:
        from rwproxy.workers.metrics import build_instance_registry

        if self._registry is None:
            self._registry = build_instance_registry(self.app, self)
        return self._registry

    async def refresh(self) -> None:
        """Ask every serving worker for its counters; wait for the answers (at most REPLY_TIMEOUT)."""
        live = [w for w in self.slots if w.ready]
        if not live:
            return
        self._seq += 1
        seq = self._seq
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._replies[seq] = (done, {w.index for w in live})
        frame = encode(MetricsRequest(seq))
        for w in live:
            w.send(frame)
        try:
            await asyncio.wait_for(done, REPLY_TIMEOUT)
        except TimeoutError:
            log.warning("workers: counters of some workers did not come within %.0f s", REPLY_TIMEOUT)
        finally:
            self._replies.pop(seq, None)

    async def refresh_status(self) -> None:
        """Before /status: the workers' counters and their per-server connections and sessions."""
        from rwproxy.workers.views import instance_servers

        _, self._server_counts = await asyncio.gather(self.refresh(), instance_servers(self.app))

    async def rows(self, view: str, *, besides: int | None = None) -> dict[int, RowsReply]:
        """Every serving worker's rows of ``view`` (``RowsRequest``), by worker index, but worker
        ``besides``; one that does not answer within REPLY_TIMEOUT is left out."""
        live = [w for w in self.slots if w.ready and w.index != besides]
        if not live:
            return {}
        self._seq += 1
        seq = self._seq
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        got: dict[int, RowsReply] = {}
        self._rows[seq] = (done, got, {w.index for w in live})
        frame = encode(RowsRequest(seq, view))
        for w in live:
            w.send(frame)
        try:
            await asyncio.wait_for(done, REPLY_TIMEOUT)
        except TimeoutError:
            log.warning("workers: %d of %d did not send their %s rows", len(live) - len(got), len(live), view)
        finally:
            self._rows.pop(seq, None)
        return dict(got)

    def add_status(self, doc: dict[str, Any]) -> None:
        """/status: sessions and per-server queries of the whole instance, and a line per worker."""
        from rwproxy.workers.metrics import instance_families, merge_families
        from rwproxy.workers.views import apply_server_counts

        doc["sessions"] = sum(w.sessions for w in self.slots)
        apply_server_counts(doc, self._server_counts)
        merged = merge_families(instance_families(self.slots))
        queries: dict[str, float] = {}
        for _, labels, value in merged.get("rwproxy_queries", ("", "", "", []))[3]:
            queries[labels.get("node", "")] = queries.get(labels.get("node", ""), 0.0) + value
        for node in doc.get("nodes", []):
            node["queries"] = int(queries.get(node["name"], 0))
        doc["workers"] = [
            {
                "worker": w.index,
                "pid": w.pid,
                "ready": w.ready,
                "sessions": w.sessions,
                "restarts": w.restarts,
                "cpu_seconds": round(w.cpu_seconds, 3),
            }
            for w in self.slots
        ]

    async def drain(self, primary: str, timeout: float) -> int:
        """A switchover's drain step for the whole instance: the workers' sessions that still hold
        a transaction or a statement on ``primary`` after at most ``timeout`` s (rwproxy.failover)."""
        self._publish()  # the buffering State goes first on each channel: no new writes start
        live = [w for w in self.slots if w.ready]
        if not live:
            return 0
        self._seq += 1
        seq = self._seq
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        left: dict[int, int] = {}
        self._drains[seq] = (done, left, {w.index for w in live})
        frame = encode(Drain(seq, primary, timeout))
        for w in live:
            w.send(frame)
        try:
            await asyncio.wait_for(done, timeout + REPLY_TIMEOUT)
        except TimeoutError:
            log.warning("workers: %d of %d did not answer the drain", len(live) - len(left), len(live))
        finally:
            self._drains.pop(seq, None)
        return sum(left.values())

    async def config_reloaded(self) -> None:
        """The supervisor applied a reload: every serving worker re-reads the file (10 s at most)."""
        live = [w for w in self.slots if w.ready]
        self._seq += 1
        seq = self._seq
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        results: dict[int, Reloaded] = {}
        self._reloads[seq] = (done, results)
        frame = encode(Reload(seq))
        for w in live:
            w.send(frame)
        try:
            if live:
                await asyncio.wait_for(done, 10.0)
        except TimeoutError:
            log.error("workers: %d of %d did not confirm the reload", len(live) - len(results), len(live))
        finally:
            self._reloads.pop(seq, None)
        for index, r in sorted(results.items()):
            if not r.ok:
                log.error("worker %d: config reload failed there: %s", index, r.text)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> list[tuple[str, int]]:
        """Bind the listeners, start the supervisor's app (monitor first), then the workers."""
        app = self.app
        per_worker = bind_listeners(app.config.proxy.listen_addresses, self.count)
        self.slots = [WorkerSlot(k, socks) for k, socks in enumerate(per_worker)]
        app.listen_sockets = []  # the supervisor serves no client itself
        app.workers = self
        await app.start()
        self._publish(force=True)
        self._publisher = asyncio.get_running_loop().create_task(self._publish_loop())
        for slot in self.slots:
            await self._spawn(slot)
        bound = [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in per_worker[0]]
        log.info(
            "rwproxy listening on %s (%d worker processes)",
            ", ".join(f"{h}:{p}" for h, p in bound),
            self.count,
        )
        return bound

    async def stop(self, grace: float | None = None) -> None:
        self.stopping = True
        grace = self.app.config.proxy.shutdown_grace_seconds if grace is None else grace
        frame = encode(Stop(grace))
        for w in self.slots:
            w.send(frame)
        procs = [w.proc for w in self.slots if w.proc is not None and w.proc.returncode is None]
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), grace + 5.0)
        except TimeoutError:
            for p in procs:
                if p.returncode is None:
                    log.warning("worker pid %d did not drain in time; killing it", p.pid)
                    p.kill()
        for w in self.slots:
            if w.task is not None:
                w.task.cancel()
        if self._publisher is not None:
            self._publisher.cancel()
        await self.app.stop(0.0)
        for w in self.slots:
            for sock in w.sockets:
                sock.close()

    # -- workers ---------------------------------------------------------------------------------

    async def _spawn(self, slot: WorkerSlot) -> None:
        parent, child = socket.socketpair()
        fds = [s.fileno() for s in slot.sockets]
        try:
            slot.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "rwproxy",
                "worker",
                "--config",
                self.config_path,
                "--index",
                str(slot.index),
                "--count",
                str(self.count),
                "--channel-fd",
                str(child.fileno()),
                "--listen-fds",
                ",".join(map(str, fds)),
                pass_fds=[child.fileno(), *fds],
            )
        finally:
            child.close()
        slot.pid = slot.proc.pid
        slot.started_at = time.monotonic()
        reader, slot.writer = await asyncio.open_unix_connection(sock=parent)
        slot.send(self._state_frame)  # its first snapshot, before it serves
        slot.task = asyncio.get_running_loop().create_task(self._watch(slot, reader))

    async def _watch(self, slot: WorkerSlot, reader: asyncio.StreamReader) -> None:
        decoder = Decoder()
        while True:
            try:
                data = await reader.read(1 << 16)
            except OSError:  # a write to a dead worker reset the channel
                data = b""
            if not data:
                break
            try:
                messages = decoder.feed(data)
            except Exception:
                log.exception("worker %d sent garbage; restarting it", slot.index)
                if slot.proc is not None and slot.proc.returncode is None:
                    slot.proc.kill()
                break
            for message in messages:
                self._handle(slot, message)
        slot.ready = False
        slot.sessions = 0
        proc = slot.proc
        code = await proc.wait() if proc is not None else None
        if slot.writer is not None:
            slot.writer.close()
        if self.stopping:
            log.info("worker %d (pid %s) exited (%s)", slot.index, slot.pid, code)
            return
        lived = time.monotonic() - slot.started_at
        delay = RESTART_DELAY if lived > 10 else min(RESTART_DELAY * (slot.restarts + 1), 10.0)
        log.error(
            "worker %d (pid %s) died (exit status %s) after %.0f s; its client connections are gone; "
            "restarting it in %.1f s",
            slot.index,
            slot.pid,
            code,
            lived,
            delay,
        )
        await asyncio.sleep(delay)
        if self.stopping:
            return
        slot.restarts += 1
        slot.retired = retire(slot.retired, slot.families)  # the new process counts from 0 again
        slot.families = []
        await self._spawn(slot)

    def _handle(self, slot: WorkerSlot, message: Message) -> None:
        if isinstance(message, Signal):
            monitor = self.app.monitor
            if monitor is not None:
                if message.kind == "unreachable":
                    monitor.report_unreachable(message.server)
                else:
                    monitor.request_probe(message.server)
            self._publish()  # the reporter sees its report acknowledged (State.suspected)
        elif isinstance(message, MetricsReply):
            slot.sessions, slot.cpu_seconds, slot.families = (
                message.sessions,
                message.cpu_seconds,
                message.families,
            )
            waiting = self._replies.get(message.seq)
            if waiting is not None:
                done, left = waiting
                left.discard(slot.index)
                if not left and not done.done():
                    done.set_result(None)
        elif isinstance(message, RowsReply):
            rows = self._rows.get(message.seq)
            if rows is not None:
                finished, got, expected = rows
                got[slot.index] = message
                if expected <= got.keys() and not finished.done():
                    finished.set_result(None)
        elif isinstance(message, Hello):
            slot.ready, slot.pid = True, message.pid
            log.info("worker %d (pid %d) serving", slot.index, message.pid)
        elif isinstance(message, Kill):
            self._pass_kill(slot, message)
        elif isinstance(message, ProcessList):
            task = asyncio.get_running_loop().create_task(self._processlist(slot, message.seq))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(message, Killed):
            asked = self._kills.pop(message.seq, None)
            if asked is not None:
                asker, seq = asked
                asker.send(encode(Killed(seq, message.answer)))
        elif isinstance(message, Drained):
            drain = self._drains.get(message.seq)
            if drain is not None:
                finished, counts, expected = drain
                counts[slot.index] = message.left
                if expected <= counts.keys() and not finished.done():
                    finished.set_result(None)
        elif isinstance(message, Reloaded):
            reload = self._reloads.get(message.seq)
            if reload is not None:
                done, results = reload
                results[slot.index] = message
                if len(results) >= sum(1 for w in self.slots if w.ready) and not done.done():
                    done.set_result(None)

    async def _processlist(self, asker: WorkerSlot, seq: int) -> None:
        """A worker's SHOW PROCESSLIST: the other workers' rows (rwproxy.workers.processlist_forward)."""
        replies = await self.rows("processlist", besides=asker.index)
        asker.send(encode(ProcessListReply(seq, [row for r in replies.values() for row in r.rows])))

    def _pass_kill(self, asker: WorkerSlot, message: Kill) -> None:
        """A KILL for a session of another worker: pass it on (the asker times out if it dies)."""
        from rwproxy.workers.ids import worker_of

        index = worker_of(message.session, self.count)
        owner = self.slots[index] if 0 <= index < len(self.slots) else None
        if owner is None or not owner.ready or owner is asker:
            asker.send(encode(Killed(message.seq, "unknown")))
            return
        self._seq += 1
        self._kills[self._seq] = (asker, message.seq)
        owner.send(
            encode(Kill(self._seq, message.session, message.query_only, message.user, message.privileged))
        )

    # -- publishing ------------------------------------------------------------------------------

    def _state(self) -> tuple[Any, ...]:
        app = self.app
        topology = app.topology
        failover, monitor = app.failover, app.monitor
        names = [n.name for n in topology.nodes]
        suspected = frozenset(n for n in names if monitor is not None and monitor.suspected(n))
        flavors: list[tuple[str, str]] = []
        if monitor is not None:
            for n in names:
                flavor = monitor.flavor_of(n)
                if flavor is not None:
                    flavors.append((n, flavor.value))
        return (
            topology,
            failover is not None and failover.buffer.active,
            failover.buffer.reason if failover is not None else "",
            failover is not None and failover.primary_ready(),
            suspected,
            tuple(flavors),
        )

    def _publish(self, *, force: bool = False) -> bool:
        """Send the State to every worker when it changed (or ``force``); whether it did."""
        key = self._state()
        last = self._published
        if not force and last is not None and key[0] is last[0] and key[1:] == last[1:]:
            return False
        self._published = key
        topology, active, reason, ready, suspected, flavors = key
        self._state_frame = encode(
            State.of(
                topology,
                buffer_active=active,
                buffer_reason=reason,
                primary_ready=ready,
                suspected=suspected,
                flavors=flavors,
            )
        )
        for w in self.slots:
            w.send(self._state_frame)
        return True

    async def _publish_loop(self) -> None:
        loop = asyncio.get_running_loop()
        changed_at = loop.time()
        while True:
            busy = loop.time() - changed_at < 1.0 or bool(self._published and self._published[1])
            await asyncio.sleep(PUBLISH_INTERVAL if busy else PUBLISH_IDLE_INTERVAL)
            try:
                if self._publish():
                    changed_at = loop.time()
            except Exception:  # a bug: say so, keep publishing
                log.exception("workers: publishing the topology failed")
