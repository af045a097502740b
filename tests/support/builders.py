"""Builders for the configs and topologies tests need: one home instead of a copy per test file.

Config text (TOML)::

    config_text()                                  # one user app/pw, one primary db1 on host h1
    config_text(section("monitor", enabled=False), servers=[server("db1", "10.0.0.1", role="primary"),
                server("db2", "10.0.0.2", role="replica")])
    make_config(...)                               # the same, parsed (``rwproxy.config.Config``)
    cluster_config(cluster, *section("routing", consistency="universal"))  # in front of the real cluster

Topology snapshots::

    topology(primary(), node("r1", lag=0.0), node("r2", lag=2.0, gtid="0-1-80"))
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rwproxy.config import Config, parse_config
from rwproxy.topology.gtid import parse_position
from rwproxy.topology.model import Node, NodeState, Role, Topology

__all__ = [
    "cluster_config",
    "config_text",
    "make_config",
    "node",
    "primary",
    "replica",
    "section",
    "server",
    "table",
    "toml_value",
    "topology",
    "user",
]

# -- config text --------------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """A Python value as a TOML value: strings quoted, booleans lower case, lists in brackets."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def table(header: str, **keys: Any) -> str:
    """``header`` (``"[monitor]"``, ``"[[users]]"``) and one ``key = value`` line per key, in order."""
    return header + "\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())


def section(name: str, **keys: Any) -> str:
    """``[name]`` with ``keys``."""
    return table(f"[{name}]", **keys)


def user(name: str = "app", password: str = "pw", **keys: Any) -> str:
    """A ``[[users]]`` table."""
    return table("[[users]]", name=name, password=password, **keys)


def server(name: str = "db1", host: str = "h1", **keys: Any) -> str:
    """A ``[[servers]]`` table (``port``, ``role``, ``weight`` ... as keys)."""
    return table("[[servers]]", name=name, host=host, **keys)


def config_text(*parts: str, users: Sequence[str] | None = None, servers: Sequence[str] | None = None) -> str:
    """Users, then servers, then ``parts`` (sections). Defaults: ``user()`` and one primary,
    ``server(role="primary")``."""
    users = (user(),) if users is None else users
    servers = (server(role="primary"),) if servers is None else servers
    return "".join(users) + "".join(servers) + "".join(parts)


def make_config(*parts: str, **kw: Any) -> Config:
    """``config_text(...)`` parsed."""
    return parse_config(config_text(*parts, **kw), "<test>")


def cluster_config(
    cluster: Any,
    *lines: str,
    admin: Mapping[str, Any] | None = None,
    roles: bool = False,
    nodes: Sequence[Any] | None = None,
    ports: Mapping[str, int] | None = None,
    users: Sequence[str] | None = None,
) -> str:
    """A config for a proxy on a free loopback port in front of ``cluster`` (a
    ``rwproxy.dev.cluster.Cluster``): ``[admin]`` (no HTTP listener unless ``admin`` sets
    ``http_listen``; its other keys too), ``lines`` (config lines, section headers included), then
    ``users`` (config lines; default: the cluster's app account) and the ``[[servers]]``
    (``rwproxy.dev.demo.server_tables``: ``roles``, ``nodes`` (``()``: none), ``ports``)."""
    from rwproxy.dev.demo import server_tables, user_table

    head = [
        "[proxy]",
        'listen = ["127.0.0.1:0"]',
        *table("[admin]", **{"http_listen": "", **(admin or {})}).split("\n"),
    ]
    accounts = user_table(cluster) if users is None else list(users)
    return "\n".join(
        [*head, *lines, *accounts, *server_tables(cluster, roles=roles, nodes=nodes, ports=ports)]
    )


# -- topologies ---------------------------------------------------------------------------------


def node(
    name: str,
    role: Role = Role.REPLICA,
    *,
    host: str | None = None,
    port: int = 3306,
    weight: int = 1,
    state: NodeState = NodeState.ONLINE,
    lag: float | None = None,
    gtid: str | None = None,
    **kw: Any,
) -> Node:
    """A ``Node``; ``host`` defaults to ``10.0.0.<the name's last digit>`` (else ``10.0.0.1``);
    ``gtid`` is parsed (``rwproxy.topology.gtid.parse_position``)."""
    return Node(
        name,
        host if host is not None else "10.0.0." + (name[-1] if name[-1].isdigit() else "1"),
        port,
        role,
        weight,
        state,
        lag,
        gtid=parse_position(gtid),
        **kw,
    )


def replica(name: str, lag: float | None = None, gtid: str | None = None, **kw: Any) -> Node:
    """``node(name, lag=lag, gtid=gtid, ...)``: a replica as the causal-read tables write one."""
    return node(name, lag=lag, gtid=gtid, **kw)


def primary(name: str = "db1", **kw: Any) -> Node:
    """``node(name, Role.PRIMARY, ...)``."""
    return node(name, Role.PRIMARY, **kw)


def topology(*nodes: Node, version: int = 0) -> Topology:
    return Topology(nodes=nodes, version=version)
