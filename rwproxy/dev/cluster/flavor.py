"""The SQL that differs between MariaDB (10.5+) and MySQL (8.4) replication.

Both accept ``START/STOP REPLICA [IO_THREAD|SQL_THREAD]``, ``SHOW REPLICA STATUS`` and
``RESET REPLICA ALL``; they differ in ``CHANGE MASTER`` vs ``CHANGE REPLICATION SOURCE``, GTID
variables and wait functions, status column names, privilege names and read-only handling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MARIADB", "MYSQL", "Flavor", "flavor_for_version", "status_field"]

Statement = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True)
class Flavor:
    name: str  # "mariadb" | "mysql"
    client: str  # command-line client shown by describe()

    @property
    def is_mariadb(self) -> bool:
        return self.name == "mariadb"

    # --- GTID ---------------------------------------------------------------------------------------
    @property
    def gtid_position_sql(self) -> str:
        """Everything the primary has written, as a position the replicas can wait for."""
        return "SELECT @@GLOBAL.gtid_binlog_pos" if self.is_mariadb else "SELECT @@GLOBAL.gtid_executed"

    @property
    def gtid_wait_sql(self) -> str:
        """Parameters (position, timeout seconds); the result is 0 once applied."""
        if self.is_mariadb:
            return "SELECT MASTER_GTID_WAIT(%s, %s)"
        return "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)"

    def fetched_position(self, status: Mapping[str, Any]) -> str:
        """What the IO thread has fetched (from SHOW REPLICA STATUS)."""
        key = "Gtid_IO_Pos" if self.is_mariadb else "Retrieved_Gtid_Set"
        return str(status.get(key) or "").replace("\n", "")

    # --- replication setup --------------------------------------------------------------------------
    def change_source(self, host: str, port: int, user: str, password: str) -> Statement:
        if self.is_mariadb:
            return (
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
                (host, port, user, password),
            )
        return (
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, SOURCE_USER=%s, "
            "SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1",
            (host, port, user, password),
        )

    def change_delay(self, seconds: int) -> Statement:
        if self.is_mariadb:
            return "CHANGE MASTER TO MASTER_DELAY=%s", (seconds,)
        return "CHANGE REPLICATION SOURCE TO SOURCE_DELAY=%s", (seconds,)

    def delay_of(self, status: Mapping[str, Any]) -> int:
        return int(status.get("SQL_Delay") or 0)

    def prepare_fresh_replica(self) -> list[str]:
        """Run on a new replica before its first CHANGE MASTER: replicate from the very beginning."""
        return ["SET GLOBAL gtid_slave_pos=''"] if self.is_mariadb else []

    def prepare_rejoin(self) -> list[str]:
        """Run on a former primary before pointing it at the new one."""
        # MariaDB replicates from gtid_slave_pos, which on an old primary is stale; its own binlog
        # position is what it has. MySQL's auto-position uses gtid_executed already.
        return ["SET GLOBAL gtid_slave_pos=@@GLOBAL.gtid_binlog_pos"] if self.is_mariadb else []

    # --- read only ----------------------------------------------------------------------------------
    def read_only(self, on: bool) -> list[str]:
        if self.is_mariadb:
            # MariaDB has no super_read_only; the app user lacks READ_ONLY ADMIN instead.
            return [f"SET GLOBAL read_only={int(on)}"]
        if on:
            return ["SET PERSIST read_only=ON", "SET PERSIST super_read_only=ON"]
        return ["SET PERSIST super_read_only=OFF", "SET PERSIST read_only=OFF"]

    # --- semi-sync ----------------------------------------------------------------------------------
    def semi_sync_primary(self, enabled: bool, timeout_ms: int | None) -> list[str]:
        prefix = "rpl_semi_sync_master" if self.is_mariadb else "rpl_semi_sync_source"
        out = [f"SET GLOBAL {prefix}_enabled={int(enabled)}"]
        if timeout_ms is not None:
            out.append(f"SET GLOBAL {prefix}_timeout={int(timeout_ms)}")
        return out

    def semi_sync_replica(self, enabled: bool) -> list[str]:
        var = "rpl_semi_sync_slave_enabled" if self.is_mariadb else "rpl_semi_sync_replica_enabled"
        return [f"SET GLOBAL {var}={int(enabled)}"]

    # --- users --------------------------------------------------------------------------------------
    def create_user(self, user: str, host: str, password: str) -> Statement:
        if self.is_mariadb:
            # mysql_native_password explicitly: MariaDB has no caching_sha2_password.
            return (
                "CREATE USER %s@%s IDENTIFIED VIA mysql_native_password USING PASSWORD(%s)",
                (user, host, password),
            )
        return "CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password)

    def app_grants(self, user: str, host: str) -> list[Statement]:
        out: list[Statement] = [("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (user, host))]
        if self.is_mariadb:
            # ALL includes READ_ONLY ADMIN on MariaDB >= 10.11, which would let the app write on a
            # read_only replica; an RDS master user cannot do that either.
            out.append(("REVOKE READ_ONLY ADMIN ON *.* FROM %s@%s", (user, host)))
        return out

    @property
    def monitor_privileges(self) -> str:
        return "PROCESS, BINLOG MONITOR, SLAVE MONITOR" if self.is_mariadb else "PROCESS, REPLICATION CLIENT"

    @property
    def repl_privileges(self) -> str:
        if self.is_mariadb:
            return "REPLICATION SLAVE, SLAVE MONITOR, BINLOG MONITOR"
        return "REPLICATION SLAVE, REPLICATION CLIENT"


MARIADB = Flavor("mariadb", "mariadb")
MYSQL = Flavor("mysql", "mysql")


def flavor_for_version(version: str) -> Flavor:
    """``SELECT VERSION()`` → flavour."""
    return MARIADB if "mariadb" in version.lower() else MYSQL


def status_field(status: Mapping[str, Any], *names: str) -> Any:
    """First present column of SHOW REPLICA STATUS among ``names`` (MariaDB keeps the Slave_/Master_
    spellings, MySQL 8.4 uses Replica_/Source_)."""
    for name in names:
        if name in status:
            return status[name]
    return None
