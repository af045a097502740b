"""A worker process's stand-ins for the monitor and the failover controller, which run once per
instance, in the supervisor (``rwproxy.workers.supervisor``).

Sessions keep calling what they call in a single process (``app.monitor.report_unreachable``,
``app.monitor.request_probe`` after ERROR 1290, ``app.monitor.suspected``/``flavor_of``,
``app.failover.buffer`` and ``primary_ready`` for write buffering); here those read the last
``State`` the supervisor published, and the evidence goes to the supervisor's monitor over the
channel. They subclass the real classes so that ``ProxyApp``'s typed attributes accept them (the
compiled build checks types), but share none of their state: ``__init__`` is their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from rwproxy.config import MonitorConfig, ServerConfig
from rwproxy.failover.buffer import WriteBuffer
from rwproxy.failover.controller import FailoverController
from rwproxy.failover.report import FailoverStats
from rwproxy.topology.monitor import Monitor
from rwproxy.topology.probe import Flavor
from rwproxy.workers.messages import Signal, State

__all__ = ["RemoteFailover", "RemoteMonitor", "WorkerView"]


class WorkerView:
    """The last published ``State`` plus this worker's own unacknowledged connect failures."""

    def __init__(self, send: Callable[[Signal], None]) -> None:
        self.send = send
        self.state: State | None = None
        self.first = asyncio.Event()
        self.reported: set[str] = set()  # connect failures not yet seen in a State's ``suspected``

    def update(self, state: State) -> None:
        # The supervisor publishes right after it took a report: from then on its word counts.
        self.reported -= state.suspected
        self.state = state
        self.first.set()


class RemoteMonitor(Monitor):
    def __init__(self, view: WorkerView) -> None:  # no super().__init__: nothing of a real monitor
        self.view = view
        self.version = 0

    @property
    def running(self) -> bool:
        return self.view.state is not None

    async def start(self, *, wait: bool = True) -> None:
        """The first snapshot comes from the supervisor before clients are served."""
        if wait:
            await self.view.first.wait()

    async def stop(self) -> None:
        return None

    def request_probe(self, server_name: str) -> None:
        self.view.send(Signal("probe", server_name))

    def report_unreachable(self, server_name: str) -> None:
        self.view.reported.add(server_name)
        self.view.send(Signal("unreachable", server_name))

    def suspected(self, server_name: str) -> bool:
        state = self.view.state
        return server_name in self.view.reported or (state is not None and server_name in state.suspected)

    def flavor_of(self, name: str) -> Flavor | None:
        state = self.view.state
        if state is None:
            return None
        value = dict(state.flavors).get(name)
        return Flavor(value) if value is not None else None

    def health_of(self, name: str) -> Any:
        return None

    # A reload in the worker applies [monitor] and the servers in the supervisor, not here.
    def set_settings(self, settings: MonitorConfig, *, user: str, password: str) -> None:
        return None

    def set_servers(self, servers: Sequence[ServerConfig]) -> None:
        return None

    def server_of(self, name: str) -> ServerConfig | None:
        return None

    def request_all(self) -> None:
        return None


class RemoteFailover(FailoverController):
    def __init__(self, view: WorkerView, mode: Any) -> None:  # no super().__init__ (see module doc)
        self.view = view
        self.mode = mode
        self.buffer = WriteBuffer()
        self.stats = FailoverStats()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def apply(self, state: State) -> None:
        """Follow the supervisor's write buffer (before the snapshot goes in: waiters look again)."""
        buffer = self.buffer
        if state.buffer_active and (not buffer.active or buffer.reason != state.buffer_reason):
            buffer.hold(state.buffer_reason)
        elif not state.buffer_active and buffer.active:
            buffer.release()

    def on_topology(self, topology: Any) -> None:
        self.buffer.poke()

    def primary_ready(self) -> bool:
        state = self.view.state
        return state is not None and state.primary_ready

    @property
    def in_progress(self) -> bool:
        return self.buffer.active

    async def switchover(self, to: str | None = None) -> dict[str, Any]:
        raise RuntimeError("switchover runs in the supervisor (its admin interface)")
