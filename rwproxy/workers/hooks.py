"""What ``ProxyApp`` and the admin interface call on the supervisor's worker pool
(``rwproxy.workers.supervisor.WorkerPool``). Kept apart so that the compiled ``rwproxy.app`` depends
on this small protocol only, not on the supervisor's code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from rwproxy.workers.messages import RowsReply

__all__ = ["WorkerHooks"]


class WorkerHooks(Protocol):
    def registry(self) -> CollectorRegistry:
        """The instance-wide /metrics registry."""
        ...

    async def refresh(self) -> None:
        """Fetch the workers' counters (before /metrics and /status)."""
        ...

    async def refresh_status(self) -> None:
        """``refresh`` and the workers' per-server connections and sessions (before /status)."""
        ...

    async def rows(self, view: str) -> dict[int, RowsReply]:
        """Every worker's rows of an admin view (``sessions``, ``digests``), by worker index."""
        ...

    def add_status(self, doc: dict[str, Any]) -> None:
        """Instance-wide sessions and a line per worker in the /status document."""
        ...

    async def drain(self, primary: str, timeout: float) -> int:
        """A switchover's drain step over every worker's sessions; how many still hold ``primary``."""
        ...

    async def config_reloaded(self) -> None:
        """The supervisor applied a reload: the workers apply it too."""
        ...
