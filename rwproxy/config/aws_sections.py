"""Config sections for AWS: ``[aws]`` (how rwproxy talks to the AWS APIs) and ``[topology]`` (where
the server list comes from: the static ``[[servers]]`` tables or the RDS API)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, Strict, field_validator, model_validator

from rwproxy.config.fields import _between, _fail, _Model, _PositiveSeconds, _show, _split_host_port

__all__ = ["AwsConfig", "TopologyConfig"]

# RDS identifiers: 1-63 letters, digits and hyphens, starting with a letter (checked loosely: moto and
# real RDS both lower-case them).
_RDS_ID = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,62}")
# What DescribeDBInstances may report in DBInstanceStatus (the ones that matter for traffic).
KNOWN_STATUSES = frozenset(
    {
        "available",
        "backing-up",
        "modifying",
        "configuring-enhanced-monitoring",
        "configuring-log-exports",
        "maintenance",
        "storage-optimization",
        "upgrading",
        "rebooting",
        "renaming",
        "resetting-master-credentials",
        "starting",
        "stopping",
        "stopped",
        "creating",
        "deleting",
        "failed",
        "storage-full",
        "incompatible-parameters",
        "inaccessible-encryption-credentials",
    }
)


class AwsConfig(_Model):
    """``[aws]``: the AWS API client used by RDS discovery, RDS failover actions, Secrets Manager and
    IAM token signing. Unset keys follow boto3's usual chain (AWS_REGION, AWS_PROFILE, instance role)."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    max_attempts: Annotated[int, _between(1, 20)] = 3
    connect_timeout_seconds: _PositiveSeconds = 5.0
    read_timeout_seconds: _PositiveSeconds = 10.0

    @field_validator("endpoint_url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            _fail(f'must be an http(s) URL such as "https://rds.eu-west-1.amazonaws.com", got {_show(value)}')
        return value


class TopologyConfig(_Model):
    """``[topology]``: ``source = "static"`` uses ``[[servers]]``; ``source = "rds"`` discovers the
    servers with the RDS API (``rwproxy.discovery``) from exactly one of ``instance_id`` (RDS MySQL source
    instance and its read replicas), ``cluster_id`` (Aurora MySQL cluster members) or ``tag_filters``
    (every instance carrying all the given tags), every ``refresh_interval_seconds``."""

    source: Literal["static", "rds"] = "static"
    instance_id: str | None = None
    cluster_id: str | None = None
    tag_filters: Annotated[dict[str, str], Strict(False)] = Field(default_factory=dict)
    refresh_interval_seconds: _PositiveSeconds = 10.0
    accepted_statuses: Annotated[tuple[str, ...], Strict(False)] = ("available",)
    address_map: Annotated[dict[str, str], Strict(False)] = Field(default_factory=dict)
    promote_read_replica: bool = False

    @field_validator("instance_id", "cluster_id")
    @classmethod
    def _id_shape(cls, value: str | None) -> str | None:
        if value is not None and not _RDS_ID.fullmatch(value):
            _fail(
                "must be an RDS identifier (1-63 letters, digits and hyphens, starting with a letter), "
                f"got {_show(value)}"
            )
        return value

    @field_validator("tag_filters")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key.strip():
                _fail("tag keys must not be empty")
        return value

    @field_validator("accepted_statuses")
    @classmethod
    def _statuses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            _fail('must list at least one status (usually "available")')
        for i, status in enumerate(value):
            if status not in KNOWN_STATUSES:
                _fail(f"unknown RDS instance status {_show(status)}", f"[{i}]")
        return value

    @field_validator("address_map")
    @classmethod
    def _map_shape(cls, value: dict[str, str]) -> dict[str, str]:
        for key, target in value.items():
            if not key or key.startswith(":"):
                _fail(f'keys must be "endpoint" or "endpoint:port", got {_show(key)}')
            if ":" in key:
                _split_host_port(key, min_port=1)
            try:
                _split_host_port(target, min_port=1)
            except Exception:
                _fail(f'must be "host:port", got {_show(target)}', f'"{key}"')
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> TopologyConfig:
        chosen = [k for k in ("instance_id", "cluster_id", "tag_filters") if getattr(self, k)]
        if self.source == "rds":
            if not chosen:
                _fail('source = "rds" needs one of instance_id, cluster_id or tag_filters', "source")
            if len(chosen) > 1:
                _fail(
                    f"set only one of instance_id, cluster_id, tag_filters (got {', '.join(chosen)})",
                    chosen[1],
                )
        elif chosen:
            _fail('is only used with source = "rds"', chosen[0])
        return self

    def map_address(self, host: str, port: int) -> tuple[str, int]:
        """An RDS endpoint rewritten by ``address_map`` ("endpoint:port" first, then "endpoint");
        unchanged when no key matches."""
        target = self.address_map.get(f"{host}:{port}") or self.address_map.get(host)
        if target is None:
            return host, port
        return _split_host_port(target, min_port=1)
