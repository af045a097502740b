"""boto3 clients built from ``[aws]``. boto3 is imported here only, when an AWS feature is used
(it is in the ``aws`` extra: ``pip install rwproxy[aws]``).

boto3 calls block: callers run them with ``asyncio.to_thread``. A client is thread-safe; the
``Session`` that makes it is not, so clients are made once, under a lock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rwproxy.config.aws_sections import AwsConfig

__all__ = ["AwsClients", "AwsError", "error_code"]


class AwsError(Exception):
    """An AWS call failed or AWS support is not installed; the message says what to do."""


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` ("DBInstanceNotFound"...), else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


class AwsClients:
    """One client per service, made on first use (from any thread)."""

    def __init__(self, settings: AwsConfig) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        with self._lock:
            found = self._clients.get(service)
            if found is not None:
                return found
            try:
                import boto3
                from botocore.config import Config as BotoConfig
            except ImportError as exc:  # pragma: no cover - the dev extra installs boto3
                raise AwsError(
                    "AWS support needs boto3: pip install 'rwproxy[aws]' (or pip install boto3)"
                ) from exc
            s = self.settings
            if self._session is None:
                self._session = boto3.session.Session(profile_name=s.profile, region_name=s.region)
            if self._session.region_name is None:
                raise AwsError("no AWS region: set aws.region (or AWS_REGION / a profile with a region)")
            config = BotoConfig(
                retries={"max_attempts": s.max_attempts, "mode": "standard"},
                connect_timeout=s.connect_timeout_seconds,
                read_timeout=s.read_timeout_seconds,
            )
            made = self._session.client(service, endpoint_url=s.endpoint_url, config=config)
            self._clients[service] = made
            return made
