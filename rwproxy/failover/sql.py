"""Statements the failover controller runs, for MariaDB (10.5+) and MySQL (8.0.22+).

Pure: names in, SQL text and parameters out. The flavour comes from the monitor
(``rwproxy.topology.probe.Flavor``).
"""

from __future__ import annotations

from typing import Any

from rwproxy.topology.probe import Flavor

__all__ = [
    "applied_position_sql",
    "change_source",
    "fetched_position_key",
    "prepare_rejoin",
    "read_only",
    "semi_sync_sql",
    "wait_sql",
    "written_position_sql",
]

Statement = tuple[str, tuple[Any, ...]]


def _mariadb(flavor: Flavor | None) -> bool:
    return flavor is Flavor.MARIADB


def written_position_sql(flavor: Flavor | None) -> str:
    """Everything the server has written or applied (a primary's position, to wait for elsewhere)."""
    return "SELECT @@GLOBAL.gtid_binlog_pos" if _mariadb(flavor) else "SELECT @@GLOBAL.gtid_executed"


def applied_position_sql(flavor: Flavor | None) -> str:
    """Everything a replica has applied (compared between candidates)."""
    return "SELECT @@GLOBAL.gtid_current_pos" if _mariadb(flavor) else "SELECT @@GLOBAL.gtid_executed"


def fetched_position_key(flavor: Flavor | None) -> str:
    """SHOW REPLICA STATUS column with what the IO thread fetched (the relay log's end)."""
    return "Gtid_IO_Pos" if _mariadb(flavor) else "Retrieved_Gtid_Set"


def wait_sql(flavor: Flavor | None) -> str:
    """Parameters (position, timeout seconds); answers 0 once applied."""
    if _mariadb(flavor):
        return "SELECT MASTER_GTID_WAIT(%s, %s)"
    return "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)"


def read_only(flavor: Flavor | None, on: bool) -> list[str]:
    if _mariadb(flavor):
        return [f"SET GLOBAL read_only = {int(on)}"]
    if on:
        return ["SET GLOBAL read_only = ON", "SET GLOBAL super_read_only = ON"]
    return ["SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]


def change_source(
    flavor: Flavor | None, host: str, port: int, user: str, password: str, retry: int, *, old_primary: bool
) -> list[Statement]:
    """Point a replica (or a demoted primary) at ``host:port``, GTID-positioned, and start it."""
    if _mariadb(flavor):
        # A demoted primary's own binlog is what it has; its gtid_slave_pos is stale.
        use = "current_pos" if old_primary else "slave_pos"
        return [
            ("STOP REPLICA", ()),
            (
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                f"MASTER_USE_GTID={use}, MASTER_CONNECT_RETRY=%s",
                (host, port, user, password, retry),
            ),
            ("START REPLICA", ()),
        ]
    return [
        ("STOP REPLICA", ()),
        (
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, SOURCE_USER=%s, "
            "SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=%s",
            (host, port, user, password, retry),
        ),
        ("START REPLICA", ()),
    ]


def prepare_rejoin(flavor: Flavor | None) -> list[str]:
    """On a demoted primary before ``change_source``: nothing half-applied from its old role."""
    return ["STOP REPLICA", "RESET REPLICA ALL"]


def semi_sync_sql(flavor: Flavor | None) -> tuple[str, str]:
    """(variable query, status query) for the primary's semi-sync state: enabled, acking clients.
    MariaDB and MySQL before 8.0.26 (``MYSQL_LEGACY``) name them master/slave."""
    if _mariadb(flavor) or flavor is Flavor.MYSQL_LEGACY:
        return (
            "SELECT @@GLOBAL.rpl_semi_sync_master_enabled",
            "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'",
        )
    return (
        "SELECT @@GLOBAL.rpl_semi_sync_source_enabled",
        "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_source_clients'",
    )
