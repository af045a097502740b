"""A guard around aiomysql's authentication: a password never goes out in clear text without TLS.

aiomysql answers an AuthSwitchRequest for ``mysql_clear_password`` with the plain password whatever
the transport, and when rwproxy asks for TLS but the server does not offer it (no CLIENT_SSL flag)
it silently continues unencrypted. ``GuardedConnection`` closes both holes:

* any connection: a switch to ``mysql_clear_password`` on a connection without TLS is refused;
* ``require_tls=True`` (RDS IAM tokens, which RDS always asks for in clear text): the login is refused
  before anything is sent unless TLS is in place.

The refusal is ``ClearPasswordRefused`` (an ``OperationalError`` with error 2061), whose message says
what to change and never contains the password.
"""

from __future__ import annotations

from typing import Any

import aiomysql
from pymysql.constants import CLIENT
from pymysql.err import OperationalError

__all__ = ["CLEAR_PASSWORD_REFUSED", "ClearPasswordRefused", "GuardedConnection"]

# CR_AUTH_PLUGIN_ERR ("Authentication requires secure connection" in MySQL's client library).
CLEAR_PASSWORD_REFUSED = 2061


class ClearPasswordRefused(OperationalError):  # type: ignore[misc]
    def __init__(self, message: str) -> None:
        super().__init__(CLEAR_PASSWORD_REFUSED, message)


class GuardedConnection(aiomysql.Connection):  # type: ignore[misc]
    """``aiomysql.Connection`` that sends a clear-text password only over TLS (see module doc)."""

    def __init__(self, *args: Any, require_tls: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rwproxy_require_tls = require_tls

    async def _request_authentication(self) -> None:
        if self._rwproxy_require_tls:
            if self._ssl_context is None:
                raise ClearPasswordRefused(
                    "rwproxy refuses to send this password (an RDS IAM token, sent in clear text) "
                    "without TLS: set backend.tls = true"
                )
            if not self.server_capabilities & CLIENT.SSL:
                raise ClearPasswordRefused(
                    f"rwproxy refuses to send this password (an RDS IAM token, sent in clear text): "
                    f"the server at {self._host}:{self._port} does not offer TLS"
                )
        await super()._request_authentication()

    async def _process_auth(self, plugin_name: bytes, auth_packet: Any) -> Any:
        if plugin_name == b"mysql_clear_password" and not self._secure:
            raise ClearPasswordRefused(
                f"the server at {self._host}:{self._port} asked for the password in clear text "
                "(mysql_clear_password) on a connection without TLS; rwproxy refuses "
                "(set backend.tls = true)"
            )
        return await super()._process_auth(plugin_name, auth_packet)
