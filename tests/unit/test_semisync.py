"""rwproxy.failover.semisync: the pure parts (which variables per flavour, what is remembered of the
primary's state). Carrying semi-sync across real role changes: tests/integration/test_failover.py."""

from __future__ import annotations

from rwproxy.failover.actions import Admin
from rwproxy.failover.semisync import SemiSyncRoles, SemiSyncSettings, semi_sync_variables
from rwproxy.topology.probe import Flavor


def test_variables_per_flavour() -> None:
    assert semi_sync_variables(Flavor.MARIADB) == ("rpl_semi_sync_master", "rpl_semi_sync_slave_enabled")
    assert semi_sync_variables(Flavor.MYSQL) == ("rpl_semi_sync_source", "rpl_semi_sync_replica_enabled")
    # MySQL before 8.0.26 still has the old plugin names (the source/replica ones are tried next).
    assert semi_sync_variables(Flavor.MYSQL_LEGACY) == semi_sync_variables(Flavor.MARIADB)


def test_remember_keeps_the_last_known_state_through_unknown_reads() -> None:
    roles = SemiSyncRoles(Admin("u", "p"))
    assert roles.known is None
    roles.remember(
        {"primary": "db1", "enabled": True, "clients": 2, "timeout_ms": 5000, "wait_point": "AFTER_SYNC"}
    )
    assert roles.known == SemiSyncSettings(True, 5000, "AFTER_SYNC")
    # The primary dies: its state can no longer be read. What it had is what the new one gets.
    roles.remember({"primary": "db1", "enabled": None, "clients": None})
    assert roles.known == SemiSyncSettings(True, 5000, "AFTER_SYNC")
    roles.remember({"primary": "db2", "enabled": False, "clients": 0})
    assert roles.known == SemiSyncSettings(False, None, None)


def test_changes_are_counted_and_reported_once() -> None:
    roles = SemiSyncRoles(Admin("u", "p"))
    roles._changed("db2", "primary", "enabled", "as the old primary had it")
    roles._changed("db1", "primary", "disabled", "a replica now")
    assert roles.changes == {("db2", "primary", "enabled"): 1, ("db1", "primary", "disabled"): 1}
    steps = roles.take_steps()
    assert steps == [
        "semi-sync: db2: primary side enabled (as the old primary had it)",
        "semi-sync: db1: primary side disabled (a replica now)",
    ]
    assert roles.take_steps() == []
