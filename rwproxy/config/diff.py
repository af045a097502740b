"""What differs between two configs, and which of it a running proxy can apply (``rwproxy.reload``).

    d = diff_configs(running, from_file)
    d.users_added, d.servers_changed["db2"], d.live, d.restart   # what changed, by kind
    d.describe()                                                # one short line per change
    effective = keep_restart_only(running, from_file)           # the new config minus restart-only keys

Live (applied by a reload): users; servers (added, removed, weight, role, address); ``[routing]``
(rules, strategy, consistency, ...); ``[monitor]`` (enabled, pacing, thresholds, credentials);
``[logging]`` and ``proxy.log_*``; ``proxy.max_connections``, ``max_packet_size`` (new sessions),
``client_idle_timeout_seconds``, ``shutdown_grace_seconds``, ``auth_plugin``,
``server_version``; ``admin.bearer_token``.

Restart-only (``RESTART_ONLY``: kept as they are, and the reload says so): listeners, TLS files,
the whole ``[backend]`` section (pool shape, timeouts, backend TLS), the admin listeners and admin
accounts, the digest table and latency histogram switches, and what the classifier and pool were
built with.

Secret values never appear in a description: only their key names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from rwproxy.config.aws_sections import AwsConfig, TopologyConfig
from rwproxy.config.coordination import CoordinationConfig
from rwproxy.config.failover import FailoverConfig
from rwproxy.config.fields import _SECRET_KEYS
from rwproxy.config.model import Config

__all__ = ["RESTART_ONLY", "ConfigDiff", "diff_configs", "keep_restart_only"]

#: section -> keys a running proxy keeps until a restart.
RESTART_ONLY: dict[str, frozenset[str]] = {
    # tls_required goes with the TLS files: requiring TLS before a certificate is loaded would lock
    # every client out.
    "proxy": frozenset(
        {
            "listen",
            "tls_cert",
            "tls_key",
            "tls_required",
            "uvloop",
            "local_infile",
            "query_attributes",
            "workers",
        }
    ),
    "backend": frozenset(
        {
            "connect_timeout_seconds",
            "pool_max_per_server",
            "pool_idle_seconds",
            "pool_wait_timeout_seconds",
            "tls",
            "tls_ca",
            "tls_verify",
        }
    ),
    "routing": frozenset({"classifier_cache_size", "gtid_tracking", "sticky_replica"}),
    "admin": frozenset(
        {
            "http_listen",
            "sql_listen",
            "users",
            "query_digest",
            "query_digest_size",
            "query_digest_example_chars",
            "latency_histogram",
        }
    ),
}
# Whole sections read once at start: the failover controller and AWS discovery keep their settings.
RESTART_ONLY["failover"] = frozenset(FailoverConfig.model_fields)
RESTART_ONLY["topology_source"] = frozenset(TopologyConfig.model_fields)
RESTART_ONLY["aws"] = frozenset(AwsConfig.model_fields)
RESTART_ONLY["coordination"] = frozenset(CoordinationConfig.model_fields)
_SECTIONS = (
    "proxy",
    "backend",
    "routing",
    "monitor",
    "admin",
    "logging",
    "failover",
    "topology_source",
    "aws",
    "coordination",
)


@dataclass(slots=True)
class ConfigDiff:
    users_added: list[str] = field(default_factory=list)
    users_removed: list[str] = field(default_factory=list)
    users_changed: list[str] = field(default_factory=list)
    servers_added: list[str] = field(default_factory=list)
    servers_removed: list[str] = field(default_factory=list)
    servers_changed: dict[str, list[str]] = field(default_factory=dict)  # name -> "weight 1 -> 2"
    live: dict[str, str] = field(default_factory=dict)  # "routing.strategy" -> "weighted -> least_lag"
    restart: dict[str, str] = field(default_factory=dict)  # changed in the file, kept until a restart

    @property
    def servers(self) -> bool:
        return bool(self.servers_added or self.servers_removed or self.servers_changed)

    @property
    def users(self) -> bool:
        return bool(self.users_added or self.users_removed or self.users_changed)

    @property
    def changed(self) -> bool:
        """Something the reload applies changed."""
        return self.users or self.servers or bool(self.live)

    def section_changed(self, section: str) -> bool:
        return any(key.startswith(section + ".") for key in self.live)

    def describe(self) -> list[str]:
        """One line per change that was applied (no secret values)."""
        out: list[str] = []
        out += [f"user {n} added" for n in self.users_added]
        out += [f"user {n} removed" for n in self.users_removed]
        out += [f"user {n} changed" for n in self.users_changed]
        out += [f"server {n} added" for n in self.servers_added]
        out += [f"server {n} removed" for n in self.servers_removed]
        out += [f"server {n}: {', '.join(what)}" for n, what in self.servers_changed.items()]
        out += [f"{key}: {what}" for key, what in self.live.items()]
        return out

    def describe_restart(self) -> list[str]:
        return [f"{key}: {what}" for key, what in self.restart.items()]


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """Compare the running config with a newly read one (pure; never shows secret values)."""
    d = ConfigDiff()
    old_users = {u.name: u for u in old.users}
    new_users = {u.name: u for u in new.users}
    d.users_added = [n for n in new_users if n not in old_users]
    d.users_removed = [n for n in old_users if n not in new_users]
    d.users_changed = [n for n, u in new_users.items() if n in old_users and old_users[n] != u]

    old_servers = {s.name: s for s in old.servers}
    new_servers = {s.name: s for s in new.servers}
    d.servers_added = [n for n in new_servers if n not in old_servers]
    d.servers_removed = [n for n in old_servers if n not in new_servers]
    for name, s in new_servers.items():
        before = old_servers.get(name)
        if before is None or before == s:
            continue
        what = [
            f"{key} {_show(key, getattr(before, key))} -> {_show(key, getattr(s, key))}"
            for key in type(s).model_fields
            if getattr(before, key) != getattr(s, key)
        ]
        d.servers_changed[name] = what
    if [s.name for s in old.servers] != [s.name for s in new.servers] and not (
        d.servers_added or d.servers_removed
    ):
        d.live["servers"] = "order changed"

    for section in _SECTIONS:
        a: BaseModel = getattr(old, section)
        b: BaseModel = getattr(new, section)
        if a == b:
            continue
        restart_only = RESTART_ONLY.get(section, frozenset())
        for key in type(a).model_fields:
            va, vb = getattr(a, key), getattr(b, key)
            if va == vb:
                continue
            change = f"{_show(key, va)} -> {_show(key, vb)}"
            (d.restart if key in restart_only else d.live)[f"{section}.{key}"] = change
    return d


def keep_restart_only(old: Config, new: Config) -> Config:
    """``new`` with every restart-only key as in ``old``: the config a reloaded proxy really runs."""
    update: dict[str, Any] = {}
    for section, keys in RESTART_ONLY.items():
        a: BaseModel = getattr(old, section)
        b: BaseModel = getattr(new, section)
        kept = {k: getattr(a, k) for k in keys if getattr(a, k) != getattr(b, k)}
        if kept:
            update[section] = b.model_copy(update=kept)
    return new.model_copy(update=update) if update else new


def _show(key: str, value: Any) -> str:
    if key in _SECRET_KEYS:
        return "(set)" if value is not None else "(unset)"
    if isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
        return f"{len(value)} entries"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if value is None:
        return "(unset)"
    return str(value)
