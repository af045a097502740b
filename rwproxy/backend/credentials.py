"""Where the backend password comes from (``[backend] credentials``).

* ``config``: each user's ``backend_user``/``backend_password`` (nothing to refresh).
* ``env``: the password is read from the environment variable ``password_env`` at start.
* ``secretsmanager``: the secret ``secret_arn`` (JSON ``{"username": ..., "password": ...}`` as RDS and
  its rotation functions write it, or a plain string holding only the password). Re-read every
  ``secret_refresh_seconds``, and at once when a server answers ERROR 1045 (access denied): the pool
  then retries that login once with the new value. Connections already open stay open.
* ``iam``: an RDS IAM authentication token per (endpoint, port, user), made with boto3's
  ``generate_db_auth_token`` (local SigV4 signing, no API call) for the endpoint RDS reports (not the
  ``address_map`` target). A token is valid 15 minutes; rwproxy makes a new one after 10 minutes. The
  token goes out with ``mysql_clear_password``, so it is only sent over TLS
  (``rwproxy.backend.clear_password``; the config requires ``backend.tls = true``).

Secrets are never logged: messages name the source (variable name, secret ARN), never the value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from rwproxy.backend.pool import BackendCredentials

if TYPE_CHECKING:
    from rwproxy.config.sections import BackendConfig
    from rwproxy.discovery.aws import AwsClients

__all__ = ["IAM_TOKEN_REUSE_SECONDS", "CredentialSource", "CredentialsError", "parse_secret"]

log = logging.getLogger(__name__)

# RDS IAM tokens expire after 15 minutes; a connection only needs a valid one while logging in.
IAM_TOKEN_REUSE_SECONDS = 600.0
# ERROR 1045 storms must not turn into a Secrets Manager call per login attempt.
AUTH_ERROR_REFRESH_MIN_GAP = 2.0


class CredentialsError(Exception):
    """The backend password cannot be obtained; the message names the source, never a secret."""


def parse_secret(text: str) -> tuple[str | None, str]:
    """A SecretString -> (username or None, password). JSON with a "password" key, or a plain string."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CredentialsError(f"the secret is not valid JSON ({exc.msg})") from None
        password = doc.get("password") if isinstance(doc, dict) else None
        if not isinstance(password, str):
            raise CredentialsError('the secret is JSON without a string "password" key')
        username = doc.get("username")
        return (username if isinstance(username, str) and username else None), password
    return None, text


class CredentialSource:
    """Hands out ``BackendCredentials`` for a user's backend account, per ``[backend] credentials``."""

    def __init__(
        self,
        backend: BackendConfig,
        clients: AwsClients | None = None,
        endpoints: Callable[[], Mapping[str, tuple[str, int]]] = dict,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = backend.credentials
        self.settings = backend
        self._clients = clients
        self._endpoints = endpoints
        self._clock = clock
        self._username: str | None = None
        self._password: str | None = None
        self._version: str | None = None  # the secret's VersionId, for logs
        self._tokens: dict[tuple[str, int, str], tuple[str, float]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[bool] | None = None
        self._last_auth_refresh = float("-inf")
        self.refreshes = 0
        if self.kind in ("secretsmanager", "iam") and clients is None:
            raise CredentialsError(f'backend.credentials = "{self.kind}" needs the AWS client ([aws])')

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the password once (raises ``CredentialsError``), then keep it fresh."""
        if self.kind == "env":
            name = self.settings.password_env
            assert name is not None
            value = os.environ.get(name)
            if value is None:
                raise CredentialsError(f"backend.password_env: the environment variable {name} is not set")
            self._password = value
        elif self.kind == "secretsmanager":
            await self._read_secret()
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def stop(self) -> None:
        for task in (self._refresher, self._refreshing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._refresher = self._refreshing = None

    # -- credentials -------------------------------------------------------------------------

    def credentials(self, backend_user: str, backend_password: str) -> BackendCredentials:
        """What a connection for an account configured as (backend_user, backend_password) uses."""
        if self.kind == "config":
            return BackendCredentials(backend_user, backend_password)
        if self.kind == "iam":
            user = backend_user

            async def token(node_name: str, host: str, port: int) -> str:
                return await self.iam_token(node_name, host, port, user)

            return BackendCredentials(user, "", require_tls=True, password_for=token)
        if self._password is None:
            raise CredentialsError(f'backend.credentials = "{self.kind}": the password was not read yet')
        user = self._username or backend_user
        if self.kind == "secretsmanager":
            # The password is read at connect time, so a retry after a refresh uses the new one.
            return BackendCredentials(
                user,
                "",
                password_for=self._current_password,
                refresh_after_auth_error=self.refresh_after_auth_error,
            )
        return BackendCredentials(user, self._password)

    async def _current_password(self, node_name: str, host: str, port: int) -> str:
        assert self._password is not None
        return self._password

    async def iam_token(self, node_name: str, host: str, port: int, user: str) -> str:
        """A token for ``user`` on the server's RDS endpoint (``endpoints()[node_name]``, else the
        address connected to). Reused for ``IAM_TOKEN_REUSE_SECONDS``."""
        endpoint, endpoint_port = self._endpoints().get(node_name, (host, port))
        key = (endpoint, endpoint_port, user)
        now = self._clock()
        cached = self._tokens.get(key)
        if cached is not None and now - cached[1] < IAM_TOKEN_REUSE_SECONDS:
            return cached[0]
        assert self._clients is not None
        clients = self._clients

        def generate() -> str:
            rds = clients.client("rds")
            return str(
                rds.generate_db_auth_token(
                    DBHostname=endpoint, Port=endpoint_port, DBUsername=user, Region=rds.meta.region_name
                )
            )

        try:
            token = await asyncio.to_thread(generate)
        except Exception as exc:
            raise CredentialsError(f"cannot make an RDS IAM token for {user}@{endpoint}: {exc}") from exc
        self._tokens[key] = (token, now)
        log.debug("credentials: new IAM token for %s@%s:%d", user, endpoint, endpoint_port)
        return token

    async def refresh_after_auth_error(self) -> bool:
        """A server refused the password (ERROR 1045): re-read the secret now (at most every
        ``AUTH_ERROR_REFRESH_MIN_GAP`` s; concurrent callers share one read). True when it changed."""
        if self.kind != "secretsmanager":
            return False
        if self._refreshing is not None and not self._refreshing.done():
            return await asyncio.shield(self._refreshing)
        if self._clock() - self._last_auth_refresh < AUTH_ERROR_REFRESH_MIN_GAP:
            return False
        self._last_auth_refresh = self._clock()
        log.info("credentials: a server refused the backend password; re-reading the secret")
        self._refreshing = asyncio.get_running_loop().create_task(self._read_secret_changed())
        return await asyncio.shield(self._refreshing)

    # -- Secrets Manager ---------------------------------------------------------------------

    async def _read_secret_changed(self) -> bool:
        before = (self._username, self._password)
        try:
            await self._read_secret()
        except CredentialsError as exc:
            log.warning("credentials: %s (keeping the current password)", exc)
            return False
        return (self._username, self._password) != before

    async def _read_secret(self) -> None:
        arn = self.settings.secret_arn
        assert arn is not None and self._clients is not None
        clients = self._clients

        def fetch() -> dict[str, object]:
            return dict(clients.client("secretsmanager").get_secret_value(SecretId=arn))

        try:
            response = await asyncio.to_thread(fetch)
        except Exception as exc:
            raise CredentialsError(f"cannot read the secret {arn}: {_aws_reason(exc)}") from None
        text = response.get("SecretString")
        if not isinstance(text, str):
            raise CredentialsError(f"the secret {arn} has no SecretString (binary secrets are not supported)")
        try:
            username, password = parse_secret(text)
        except CredentialsError as exc:
            raise CredentialsError(f"the secret {arn}: {exc}") from None
        version = str(response.get("VersionId") or "")
        changed = (username, password) != (self._username, self._password)
        self._username, self._password = username, password
        self.refreshes += 1
        if changed:
            log.info(
                "credentials: backend password from %s (version %s)%s",
                arn,
                version or "?",
                f", user {username}" if username else "",
            )
        self._version = version

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.secret_refresh_seconds)
            await self._read_secret_changed()


def _aws_reason(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', '')}".strip()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
