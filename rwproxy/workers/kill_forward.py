"""``KILL id`` of a session that lives in another worker process: the worker that got the KILL asks
the supervisor, which passes it to the worker that handed out the id (``ids.worker_of``).

``current`` is set in a worker process only (``rwproxy.workers.worker``); ``rwproxy.frontend.kill``
asks it when the id is not one of its own sessions. Answers: ``ok`` (done), ``unknown`` (no such
session, or its worker does not answer), ``other_user`` (the session belongs to another user: the
asking worker checks the KILL privilege and asks again with ``privileged``).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["RemoteKill", "current"]


class RemoteKill(Protocol):
    def elsewhere(self, session_id: int) -> bool:
        """The id was handed out by another worker of this instance."""
        ...

    async def kill(self, session_id: int, query_only: bool, user: str, privileged: bool) -> str: ...


current: RemoteKill | None = None
