"""moto in server mode: a real AWS API endpoint (HTTP on loopback) for boto3 — nothing is patched.

``MotoEndpoint.start()`` runs ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a free port and sets
fake credentials in the environment (so rwproxy's own boto3 session, built from ``[aws]``, finds
them) with instance-metadata lookups disabled. ``client(service)`` is a boto3 client for the tests.

What moto cannot show (see shared/notes/local-cluster.md): endpoint addresses cannot be chosen (hence
``[topology] address_map``), every instance is "available" at once, ``reboot_db_instance(ForceFailover)``
and ``promote_read_replica`` change nothing, and it does not check IAM policies or token signatures.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

__all__ = ["REGION", "MotoEndpoint", "rds_address"]

REGION = "us-east-1"
_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def rds_address(instance_id: str) -> str:
    """The endpoint address moto gives every RDS instance."""
    return f"{instance_id}.aaaaaaaaaa.{REGION}.rds.amazonaws.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoEndpoint:
    def __init__(self) -> None:
        self.url = ""
        self._server: Any = None
        self._saved: dict[str, str | None] = {}

    def start(self) -> MotoEndpoint:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        for key, value in _ENV.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        port = _free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.url)

    def aws_toml(self) -> str:
        """The ``[aws]`` section pointing rwproxy at this endpoint."""
        return f'[aws]\nregion = "{REGION}"\nendpoint_url = "{self.url}"\nmax_attempts = 2\n'
