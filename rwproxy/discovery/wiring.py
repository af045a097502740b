"""How the AWS parts hang off a ``ProxyApp``: the RDS discovery task (``[topology] source = "rds"``)
and the backend credential source (``[backend] credentials``). ``ProxyApp`` holds one ``AwsParts``
and calls it at start, stop, on every published topology and for every backend login.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rwproxy.backend.credentials import CredentialSource
from rwproxy.backend.own_account import OwnAccount, own_account, own_credentials
from rwproxy.backend.pool import BackendCredentials

if TYPE_CHECKING:
    from rwproxy.config import Config
    from rwproxy.discovery.aws import AwsClients
    from rwproxy.discovery.source import RdsDiscovery
    from rwproxy.topology.monitor import Monitor

__all__ = ["AwsParts"]


class AwsParts:
    def __init__(self, config: Config, monitor: Monitor | None) -> None:
        self.monitor = monitor
        topology = config.topology_source
        needs_aws = topology.source == "rds" or config.backend.credentials in ("secretsmanager", "iam")
        self.clients: AwsClients | None = None
        if needs_aws:
            from rwproxy.discovery.aws import AwsClients

            self.clients = AwsClients(config.aws)
        self.discovery: RdsDiscovery | None = None
        if topology.source == "rds":
            from rwproxy.discovery.source import RdsDiscovery

            assert monitor is not None and self.clients is not None  # the config requires the monitor
            self.discovery = RdsDiscovery(topology, self.clients, on_servers=monitor.set_servers)
        discovery = self.discovery
        self.credential_source = CredentialSource(
            config.backend,
            self.clients,
            endpoints=(lambda: discovery.endpoints) if discovery is not None else dict,
        )
        if monitor is not None:
            self.use_monitor_account(monitor, own_account(config, "monitor"))

    async def start(self) -> None:
        """Credentials first (a missing secret stops the start with ``CredentialsError``), then the
        first RDS read, which gives the monitor its servers before it starts."""
        await self.credential_source.start()
        if self.discovery is not None:
            await self.discovery.start()

    async def stop(self) -> None:
        if self.discovery is not None:
            await self.discovery.stop()
        await self.credential_source.stop()

    def credentials(self, backend_user: str, backend_password: str) -> BackendCredentials:
        return self.credential_source.credentials(backend_user, backend_password)

    def use_monitor_account(self, monitor: Monitor, account: OwnAccount) -> None:
        """The monitor logs in with ``account``: through ``[backend] credentials`` when its password
        comes from there, else with the fixed user/password ``Monitor`` holds (at start and reload)."""
        source = self.credential_source.credentials
        monitor.credentials = (lambda: own_credentials(account, source)) if account.via_source else None

    def topology_published(self) -> None:
        """After each monitor snapshot: compare RDS's intended roles with the servers' read_only."""
        if self.discovery is not None and self.monitor is not None:
            self.discovery.check_roles({name: st.read_only for name, st in self.monitor.stats.items()})

    def role_disagreement(self, name: str) -> str | None:
        return self.discovery.disagreements.get(name) if self.discovery is not None else None

    def status(self) -> dict[str, Any] | None:
        return self.discovery.status() if self.discovery is not None else None
