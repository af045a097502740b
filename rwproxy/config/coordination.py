"""``[coordination]``: several rwproxy instances of one cluster agree through etcd.

Kept apart from ``sections.py``: one concept, used by ``rwproxy.coordination``. Without the section
(or with ``etcd = []``) every instance acts alone, exactly as before.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Strict, field_validator, model_validator
from pydantic_core import PydanticCustomError

from rwproxy.config.fields import _between, _fail, _Model, _PositiveSeconds, _show, _split_host_port

__all__ = ["CoordinationConfig"]

_KEY_PART = re.compile(r"[A-Za-z0-9_.-]+")


class CoordinationConfig(_Model):
    """``[coordination]``.

    etcd: client endpoints of ONE etcd cluster, ``"host:port"`` or ``"http(s)://host:port"``.
    The instances sharing ``cluster`` elect one leader (an etcd lease of ``lease_ttl_seconds``);
    only the leader promotes, fences or switches over. ``instance``: this instance's name in etcd
    (unset: ``<hostname>-<pid>``).
    """

    etcd: Annotated[tuple[str, ...], Strict(False)] = ()
    cluster: str = "default"
    prefix: str = "/rwproxy"
    instance: str | None = None
    # A leader that stops renewing (killed, partitioned from etcd) is replaced after this long.
    lease_ttl_seconds: Annotated[int, _between(2, 300)] = 15
    # One etcd request (all endpoints tried in turn within it).
    request_timeout_seconds: _PositiveSeconds = 2.0

    @property
    def enabled(self) -> bool:
        return bool(self.etcd)

    @field_validator("etcd")
    @classmethod
    def _endpoints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, text in enumerate(value):
            rest = text
            for scheme in ("http://", "https://"):
                if text.startswith(scheme):
                    rest = text[len(scheme) :].rstrip("/")
            if "://" in rest:
                _fail(f'must be "host:port" or "http(s)://host:port", got {_show(text)}', f"[{i}]")
            try:
                _split_host_port(rest, min_port=1)
            except PydanticCustomError as exc:
                _fail(str(exc), f"[{i}]")
        return value

    @field_validator("cluster", "instance")
    @classmethod
    def _key_part(cls, value: str | None) -> str | None:
        if value is not None and not _KEY_PART.fullmatch(value):
            _fail(f"must be letters, digits, '_', '.' or '-', got {_show(value)}")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or "//" in value:
            _fail(f'must start with "/" and not end with one, e.g. "/rwproxy", got {_show(value)}')
        return value

    @model_validator(mode="after")
    def _timeout_under_ttl(self) -> CoordinationConfig:
        if self.etcd and self.request_timeout_seconds * 3 > self.lease_ttl_seconds:
            _fail(
                f"must be at most a third of lease_ttl_seconds ({self.lease_ttl_seconds}) so that the "
                "lease is renewed in time",
                "request_timeout_seconds",
            )
        return self
