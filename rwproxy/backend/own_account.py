"""Which account rwproxy itself logs in with, for each of its own jobs: the one home of that rule.

Besides its clients' connections rwproxy opens connections of its own:

* ``"monitor"``: health checks, SHOW SLAVE/REPLICA STATUS, the heartbeat writer (``[monitor] user``);
* ``"failover"``: promotion, fencing, repointing, switchover, semi-sync reads (``[failover] user``);
* ``"side"``: pooled side connections of rwproxy's own, not done for a client (the start-up probe of
  the primary's version and capabilities); there is no section for it.

The same rule for every job:

1. ``user`` and ``password`` set in the job's section: exactly that account and password.
2. ``user`` set, ``password`` unset: that user; with ``[backend] credentials`` other than
   ``"config"`` its password comes from there (environment, secret, IAM token), else it is empty.
3. ``user`` unset: the first ``[[users]]`` entry's backend account (``backend_user`` /
   ``backend_password``), through ``[backend] credentials`` as every session's login.

Work done for a client on a side connection (KILL QUERY, privilege reads, a universal read's
position query) uses that client's own backend account instead (``app.backend_credentials(user)``),
so the server applies that account's privileges. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from rwproxy.backend.pool import BackendCredentials

if TYPE_CHECKING:
    from rwproxy.config import Config

__all__ = ["Job", "OwnAccount", "own_account", "own_credentials"]

Job = Literal["monitor", "failover", "side"]


@dataclass(frozen=True, slots=True)
class OwnAccount:
    """An account of rwproxy's own. ``via_source``: the password comes from ``[backend] credentials``
    (``password`` is then only what the "config" source would use)."""

    user: str
    password: str = field(repr=False)
    via_source: bool


def own_account(config: Config, job: Job) -> OwnAccount:
    """The account rwproxy uses for ``job`` under ``config`` (the rule in the module docstring)."""
    user: str | None
    password: str | None
    if job == "monitor":
        user, password = config.monitor.user, config.monitor.password
    elif job == "failover":
        user, password = config.failover.user, config.failover.password
    else:
        user = password = None
    from_source = config.backend.credentials != "config"
    if user is not None:
        if password is not None:
            return OwnAccount(user, password, via_source=False)
        return OwnAccount(user, "", via_source=from_source)
    first = config.users[0]
    return OwnAccount(first.backend_user, first.backend_password, via_source=from_source)


def own_credentials(
    account: OwnAccount, source: Callable[[str, str], BackendCredentials]
) -> BackendCredentials:
    """What a login with ``account`` uses; ``source``: ``CredentialSource.credentials`` (or
    ``AwsParts.credentials``), asked only when the password comes from ``[backend] credentials``."""
    if account.via_source:
        return source(account.user, account.password)
    return BackendCredentials(account.user, account.password)
