"""The whole configuration (``Config``) and its cross-section rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field, Strict, ValidationInfo, field_validator, model_validator

from rwproxy.config.aws_sections import AwsConfig, TopologyConfig
from rwproxy.config.coordination import CoordinationConfig
from rwproxy.config.dump import _plain
from rwproxy.config.failover import FailoverConfig
from rwproxy.config.fields import _fail, _Model, _show
from rwproxy.config.sections import (
    AdminConfig,
    BackendConfig,
    LoggingConfig,
    MonitorConfig,
    ProxyConfig,
    RoutingConfig,
    ServerConfig,
    UserConfig,
)
from rwproxy.topology.model import Node, Role, Topology

__all__ = ["Config"]


def _static_topology_problem(servers: Sequence[ServerConfig]) -> str | None:
    primaries = [s.name for s in servers if s.role == "primary"]
    if len(primaries) > 1:
        return f'exactly one server may have role = "primary", found {len(primaries)}: ' + ", ".join(
            primaries
        )
    if not primaries and not any(s.role == "auto" for s in servers):
        return (
            'no server can be the primary: mark it with role = "primary", or leave servers on '
            'role = "auto" for the monitor to pick the writable one (read_only = OFF)'
        )
    return None


class Config(_Model):
    """The whole configuration: one immutable snapshot."""

    proxy: ProxyConfig = ProxyConfig()
    users: Annotated[tuple[UserConfig, ...], Strict(False)]
    backend: BackendConfig = BackendConfig()
    # Before servers: the servers validator needs to know the source.
    topology_source: TopologyConfig = Field(default_factory=TopologyConfig, alias="topology")
    servers: Annotated[tuple[ServerConfig, ...], Strict(False)] = Field(default=(), validate_default=True)
    routing: RoutingConfig = RoutingConfig()
    monitor: MonitorConfig = MonitorConfig()
    admin: AdminConfig = AdminConfig()
    failover: FailoverConfig = FailoverConfig()
    aws: AwsConfig = AwsConfig()
    logging: LoggingConfig = LoggingConfig()
    coordination: CoordinationConfig = CoordinationConfig()

    @field_validator("users")
    @classmethod
    def _users(cls, users: tuple[UserConfig, ...]) -> tuple[UserConfig, ...]:
        if not users:
            _fail("at least one [[users]] table is required")
        seen: dict[str, int] = {}
        for i, user in enumerate(users):
            if user.name in seen:
                _fail(
                    f"duplicate user name {_show(user.name)} (also users[{seen[user.name]}])", f"[{i}].name"
                )
            seen[user.name] = i
        return users

    @field_validator("servers")
    @classmethod
    def _servers(cls, servers: tuple[ServerConfig, ...], info: ValidationInfo) -> tuple[ServerConfig, ...]:
        source = info.data.get("topology_source")
        if source is not None and source.source == "rds":
            if servers:
                _fail('must be empty with topology.source = "rds" (the RDS API lists the servers)')
            return servers
        if not servers:
            _fail("at least one [[servers]] table is required")
        names: dict[str, int] = {}
        addresses: dict[tuple[str, int], int] = {}
        for i, server in enumerate(servers):
            if server.name in names:
                _fail(
                    f"duplicate server name {_show(server.name)} (also servers[{names[server.name]}])",
                    f"[{i}].name",
                )
            names[server.name] = i
            address = (server.host.lower(), server.port)
            if address in addresses:
                j = addresses[address]
                _fail(
                    f'address "{server.host}:{server.port}" is already used by servers[{j}] '
                    f"({_show(servers[j].name)})",
                    f"[{i}]",
                )
            addresses[address] = i
        problem = _static_topology_problem(servers)
        if problem:
            _fail(problem)
        return servers

    @model_validator(mode="after")
    def _servers_for_source(self) -> Config:
        if self.topology_source.source == "rds" and not self.monitor.enabled:
            _fail(
                'topology.source = "rds" needs the monitor: it decides which discovered server is writable',
                "monitor.enabled",
            )
        return self

    @model_validator(mode="after")
    def _primary_known_without_monitor(self) -> Config:
        servers = self.servers
        if not servers:
            return self
        explicit = any(s.role == "primary" for s in servers)
        if not self.monitor.enabled and not explicit and len(servers) != 1:
            _fail(
                "with the monitor off nothing decides which server is the primary: mark one with "
                'role = "primary" or set monitor.enabled = true',
                "monitor.enabled",
            )
        return self

    @model_validator(mode="after")
    def _admin_not_on_a_client_port(self) -> Config:
        admin = self.admin.http_address
        if admin is not None and admin[1] != 0:
            clients = {(h.lower(), p) for h, p in self.proxy.listen_addresses}
            if (admin[0].lower(), admin[1]) in clients:
                _fail(
                    f"{_show(self.admin.http_listen)} is also in proxy.listen; use another port",
                    "admin.http_listen",
                )
        sql = self.admin.sql_address
        if sql is not None and sql[1] != 0:
            taken = {(h.lower(), p) for h, p in self.proxy.listen_addresses}
            if admin is not None:
                taken.add((admin[0].lower(), admin[1]))
            if (sql[0].lower(), sql[1]) in taken:
                _fail(
                    f"{_show(self.admin.sql_listen)} is also in proxy.listen or admin.http_listen; "
                    "use another port",
                    "admin.sql_listen",
                )
        return self

    @model_validator(mode="after")
    def _failover_needs_auto_roles(self) -> Config:
        if self.failover.mode in ("promote", "rds"):
            fixed = [s.name for s in self.servers if s.role != "auto"]
            if fixed:
                _fail(
                    f'mode = "{self.failover.mode}" moves the primary role: servers {", ".join(fixed)} '
                    'must have role = "auto"',
                    "failover.mode",
                )
            if not self.monitor.enabled:
                _fail(
                    f'mode = "{self.failover.mode}" needs the monitor (monitor.enabled = true)',
                    "failover.mode",
                )
        return self

    @model_validator(mode="after")
    def _coordination_needs_a_failover_controller(self) -> Config:
        if self.coordination.enabled and (self.failover.mode == "off" or not self.monitor.enabled):
            _fail(
                'coordinates failover: it needs monitor.enabled = true and failover.mode other than "off"',
                "coordination.etcd",
            )
        return self

    def topology(self) -> Topology:
        """The static topology: the ``primary`` server (or the only server) plus replicas.

        ``role = "auto"`` servers next to an explicit primary are treated as replicas.
        """
        nodes = []
        single = len(self.servers) == 1
        for server in self.servers:
            is_primary = server.role == "primary" or (single and server.role == "auto")
            nodes.append(
                Node(
                    name=server.name,
                    host=server.host,
                    port=server.port,
                    role=Role.PRIMARY if is_primary else Role.REPLICA,
                    weight=server.weight,
                )
            )
        return Topology(nodes=tuple(nodes))

    @property
    def log_settings(self) -> tuple[str, str]:
        """(level, format) of the log: ``[logging]``, else ``[proxy] log_level`` / ``log_format``."""
        return (
            self.logging.level or self.proxy.log_level,
            self.logging.format or self.proxy.log_format,
        )

    def to_toml_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        """The effective configuration as plain TOML values (unset optional keys left out)."""
        return _plain(self, keep_none=False, mask=mask_secrets)
