"""``SHOW PROCESSLIST`` and information_schema.PROCESSLIST of the whole instance: the worker that
got the statement asks the supervisor (``ProcessList``), which collects the other workers' session
rows (``RowsRequest("processlist")``) and answers (``ProcessListReply``); the asking session waits
for that without blocking its worker and, when no answer comes in time, lists its worker's
sessions only.

``current`` is set in a worker process only (``rwproxy.workers.worker``);
``rwproxy.frontend.processlist`` asks it. The rows come with every session of the other workers;
the asking worker filters them by its viewer's user and PROCESS privilege, as it does its own.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["TIMEOUT", "RemoteProcesslist", "current"]

#: Seconds the asking session waits for the other workers' rows (the supervisor waits 2 s for them).
TIMEOUT = 3.0


class RemoteProcesslist(Protocol):
    async def other_rows(self) -> list[dict[str, Any]] | None:
        """Every session row of the other workers (``ProcessRow`` fields); None: no answer in time."""
        ...


current: RemoteProcesslist | None = None
