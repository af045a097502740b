"""``[failover]``: what rwproxy does when the primary is lost, and planned switchover.

Kept apart from ``sections.py``: one concept, its own validation (``promote`` needs replication
credentials). Used by ``rwproxy.failover``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rwproxy.config.fields import _at_least, _between, _fail, _Model, _PositiveSeconds

__all__ = ["FailoverConfig"]


class FailoverConfig(_Model):
    """``[failover]``.

    mode: ``observe`` (default) promotes nothing and follows whichever server turns writable;
    two writable servers at once make rwproxy refuse writes (no guessing). ``promote``: self-managed
    replication, rwproxy promotes the most advanced replica. ``rds``: rwproxy asks AWS to fail over.
    ``off``: the primary is whatever the monitor elects (the previous one wins ties).
    """

    mode: Literal["off", "observe", "promote", "rds"] = "observe"
    # Account for promotion/fencing/switchover statements (STOP REPLICA, CHANGE MASTER, read_only);
    # unset: the first [[users]] entry's backend credentials.
    user: str | None = None
    password: str | None = Field(default=None, repr=False)
    # What replicas use to replicate from the new primary (CHANGE MASTER ... MASTER_USER).
    replication_user: str | None = None
    replication_password: str | None = Field(default=None, repr=False)
    # The primary is declared dead after monitor.failures_to_offline failed checks AND, with
    # verify_with_replicas, when no reachable replica still receives from it (IO thread running).
    verify_with_replicas: bool = True
    # Statements that need the primary wait this long during a failover/switchover, then fail.
    buffer_timeout_seconds: _PositiveSeconds = 10.0
    # No second automatic failover within this many seconds of the last one.
    min_interval_seconds: Annotated[float, _at_least(0)] = 120.0
    # Promotion: how long the candidate may take to apply its relay log.
    catchup_timeout_seconds: _PositiveSeconds = 10.0
    # Switchover: how long open transactions on the primary may take to finish.
    drain_timeout_seconds: _PositiveSeconds = 5.0
    # Replicas reconnect to a new primary after this many seconds (MASTER_CONNECT_RETRY).
    connect_retry_seconds: Annotated[int, _between(1, 3600)] = 1

    @model_validator(mode="after")
    def _promote_needs_replication_credentials(self) -> FailoverConfig:
        if self.mode == "promote" and self.replication_user is None:
            _fail('is required with mode = "promote" (replicas must be repointed)', "replication_user")
        if self.password is not None and self.user is None:
            _fail("is required when failover.password is set", "user")
        return self
