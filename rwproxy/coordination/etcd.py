"""A small etcd v3 client over etcd's own HTTP/JSON gateway (``/v3/...``), through aiohttp.

Why not a gRPC client library: the gateway ships in every etcd since 3.3 (here 3.4.23) and is
etcd's documented JSON API; aiohttp is already a dependency; the asyncio gRPC clients on PyPI
(aetcd, etcd3-py) lag behind protobuf/grpcio releases. We only need five calls: range, txn,
lease grant, lease keepalive (one round, not a stream) and lease revoke.

Keys and values are base64 in the JSON; int64 fields come back as strings. Every request goes to
the endpoint that answered last, then to the others in order; ``EtcdUnavailable`` when none
answered within the timeout. Nothing here decides anything: ``rwproxy.coordination.election`` does.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = [
    "Compare",
    "EtcdClient",
    "EtcdError",
    "EtcdUnavailable",
    "KeyValue",
    "TxnResult",
    "delete_op",
    "put_op",
    "range_op",
]

log = logging.getLogger(__name__)


class EtcdError(Exception):
    """etcd answered with an error (bad request, lease not found...)."""


class EtcdUnavailable(EtcdError):
    """No etcd endpoint answered (connection refused, timeout, 5xx from every member)."""


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        return cls(
            key=_unb64(kv.get("key")).decode(),
            value=_unb64(kv.get("value")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            lease=int(kv.get("lease", 0)),
        )


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction: ``target`` is CREATE / MOD / LEASE / VALUE / VERSION."""

    key: str
    target: str
    value: int | str

    def to_json(self) -> dict[str, Any]:
        field = {
            "CREATE": "create_revision",
            "MOD": "mod_revision",
            "LEASE": "lease",
            "VERSION": "version",
            "VALUE": "value",
        }[self.target]
        value = _b64(str(self.value)) if self.target == "VALUE" else str(self.value)
        return {"key": _b64(self.key), "target": self.target, "result": "EQUAL", field: value}


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    kvs: tuple[KeyValue, ...]  # from the range operations of the branch that ran, in order


def put_op(key: str, value: bytes | str, lease: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        body["lease"] = str(lease)
    return {"request_put": body}


def range_op(key: str) -> dict[str, Any]:
    return {"request_range": {"key": _b64(key)}}


def delete_op(key: str) -> dict[str, Any]:
    return {"request_delete_range": {"key": _b64(key)}}


class EtcdClient:
    def __init__(self, endpoints: Sequence[str], *, timeout: float = 2.0) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = [e if "://" in e else f"http://{e}" for e in endpoints]
        self.timeout = timeout
        self._current = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint that answered last (or will be tried first)."""
        return self.endpoints[self._current]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=4, force_close=False),
            )
        problems = []
        n = len(self.endpoints)
        for i in range(n):
            index = (self._current + i) % n
            url = self.endpoints[index] + path
            try:
                async with self._session.post(url, data=json.dumps(body)) as resp:
                    text = await resp.text()
                    if resp.status >= 500:
                        problems.append(f"{self.endpoints[index]}: HTTP {resp.status} {text[:200]}")
                        continue
                    doc = _first_json(text)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                problems.append(f"{self.endpoints[index]}: {type(exc).__name__} {exc}".rstrip())
                continue
            self._current = index
            if "error" in doc:
                raise EtcdError(str(doc.get("message") or doc["error"]))
            return doc
        raise EtcdUnavailable("no etcd endpoint answered: " + "; ".join(problems))

    async def get(self, key: str) -> KeyValue | None:
        doc = await self._post("/v3/kv/range", {"key": _b64(key)})
        kvs = doc.get("kvs") or []
        return KeyValue.from_json(kvs[0]) if kvs else None

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[dict[str, Any]],
        failure: Sequence[dict[str, Any]] = (),
    ) -> TxnResult:
        doc = await self._post(
            "/v3/kv/txn",
            {
                "compare": [c.to_json() for c in compare],
                "success": list(success),
                "failure": list(failure),
            },
        )
        kvs: list[KeyValue] = []
        for response in doc.get("responses") or []:
            for kv in (response.get("response_range") or {}).get("kvs") or []:
                kvs.append(KeyValue.from_json(kv))
        revision = int((doc.get("header") or {}).get("revision", 0))
        return TxnResult(bool(doc.get("succeeded", False)), revision, tuple(kvs))

    async def grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: ``(id, granted ttl)`` (etcd may raise a TTL below its minimum)."""
        doc = await self._post("/v3/lease/grant", {"TTL": str(ttl)})
        return int(doc["ID"]), int(doc.get("TTL", ttl))

    async def keepalive(self, lease: int) -> int:
        """Renew ``lease`` once; its remaining TTL, 0 when it expired or was revoked."""
        doc = await self._post("/v3/lease/keepalive", {"ID": str(lease)})
        return int((doc.get("result") or {}).get("TTL", 0))

    async def revoke(self, lease: int) -> None:
        await self._post("/v3/lease/revoke", {"ID": str(lease)})


def _first_json(text: str) -> dict[str, Any]:
    """The gateway streams keepalive answers as newline-separated JSON objects: take the first."""
    line = text.strip().split("\n", 1)[0]
    doc = json.loads(line) if line else {}
    if not isinstance(doc, dict):
        raise ValueError(f"not a JSON object: {line[:100]}")
    return doc
