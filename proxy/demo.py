"""``rwproxy demo``: a local replication cluster (1 primary + N replicas) with rwproxy in front.

Uses the same cluster module as the test suite (``proxy.devcluster``). Ctrl-C stops the proxy and
every server, and removes their temporary directories.

While it runs, a cluster state file (``proxy.devcluster.state``: nodes, pids, sockets, how to restart
them, the proxy and admin addresses; default ``$TMPDIR/rwproxy-demo-cluster.json``) lets
``rwproxy drill --cluster-state FILE`` find the servers to kill or delay. It is removed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["demo_config_text", "run_demo", "server_tables", "user_table"]


def demo_config_text(
    cluster: object,
    port: int,
    admin_port: int | None = None,
    *,
    check_interval: float = 0.5,
    failover_mode: str = "off",
    admin_token: str | None = None,
) -> str:
    """A config for the proxy in front of ``cluster`` (a ``proxy.devcluster.Cluster``). ``rwproxy
    demo`` uses ``failover_mode = "promote"`` so that ``rwproxy drill failover`` has something to show.

    ``admin_port`` None: the default admin address (127.0.0.1:9306), or a free port when ``port`` is 0.
    ``check_interval``: seconds between monitor checks (a dead primary is declared after 3).
    """
    c = cluster  # duck-typed to keep this importable without the cluster module loaded
    if admin_port is None and port == 0:
        admin_port = 0
    lines = [
        "[proxy]",
        f'listen = ["127.0.0.1:{port}"]',
        "",
    ]
    if admin_port is not None:
        lines += ["[admin]", f'http_listen = "127.0.0.1:{admin_port}"']
        if admin_token:
            lines.append(f'bearer_token = "{admin_token}"')
        lines.append("")
    lines += [
        "[monitor]",
        f"interval_seconds = {check_interval:g}",
        "",
        "[failover]",
        f'mode = "{failover_mode}"',
        f'user = "{c.failover_user}"',  # type: ignore[attr-defined]
        f'password = "{c.failover_password}"',  # type: ignore[attr-defined]
        f'replication_user = "{c.repl_user}"',  # type: ignore[attr-defined]
        f'replication_password = "{c.repl_password}"',  # type: ignore[attr-defined]
        "",
    ]
    lines += user_table(c) + server_tables(c, roles=False)
    return "\n".join(lines)


def user_table(cluster: Any) -> list[str]:
    """The ``[[users]]`` table for the cluster's app account, as config lines."""
    return ["[[users]]", f'name = "{cluster.app_user}"', f'password = "{cluster.app_password}"', ""]


def server_tables(
    cluster: Any,
    *,
    roles: bool,
    nodes: Sequence[Any] | None = None,
    ports: Mapping[str, int] | None = None,
) -> list[str]:
    """``[[servers]]`` tables for ``nodes`` (default: all of the cluster's), as config lines.

    ``roles``: ``role = "primary"``/``"replica"`` as the cluster has them; else ``"auto"`` (the
    monitor decides). ``ports``: node name -> port to use instead (e.g. a test's flaky link)."""
    lines: list[str] = []
    for node in nodes if nodes is not None else cluster.nodes:
        role = ("primary" if node is cluster.primary else "replica") if roles else "auto"
        port = (ports or {}).get(node.name, node.port)
        lines += ["[[servers]]", f'name = "{node.name}"', f'host = "{node.host}"', f"port = {port}"]
        lines += [f'role = "{role}"', ""]
    return lines


def run_demo(*, replicas: int = 2, port: int = 6033, state_file: str | None = None) -> int:
    """``state_file``: where to write the cluster state (None: the default path, "" = none)."""
    from proxy.devcluster import ClusterUnavailable, default_state_path, start_cluster

    if state_file is None:
        state_file = default_state_path()

    print("rwproxy demo: starting a local replication cluster ...", flush=True)
    try:
        cluster = start_cluster("local", replicas=replicas)
    except ClusterUnavailable as exc:
        print(f"rwproxy demo: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_serve(cluster, port, state_file))
    except KeyboardInterrupt:
        return 0
    finally:
        if state_file:
            with contextlib.suppress(OSError):
                os.remove(state_file)
        print("rwproxy demo: stopping the cluster and removing its files ...", flush=True)
        cluster.stop()


async def _serve(cluster: object, port: int, state_file: str) -> int:
    from proxy.app import ProxyApp
    from proxy.config import parse_config
    from proxy.devcluster import write_state

    admin_port = 9306 if _port_free(9306) else 0
    token = secrets.token_hex(16)  # POST /switchover; written to the state file for rwproxy drill
    text = demo_config_text(cluster, port, admin_port, failover_mode="promote", admin_token=token)
    config = parse_config(text, "<demo>")
    app = ProxyApp(config)
    bound = await app.start()
    host, bound_port = bound[0]
    c = cluster
    print(c.describe())  # type: ignore[attr-defined]
    print()
    from proxy import native

    print(f"rwproxy is listening (hot path: {native.status().summary}).")
    print("Connect through it with:")
    print(f"  mariadb -h{host} -P{bound_port} -u{c.app_user} -p{c.app_password} rwtest")  # type: ignore[attr-defined]
    print()
    print("Try:  SELECT @@server_id;   -- a replica answers")
    print("      BEGIN; SELECT @@server_id; COMMIT;   -- the primary answers inside a transaction")
    if app.admin_http is not None:
        print(f"Metrics: {app.admin_http.url}/metrics   status: {app.admin_http.url}/status")
    if state_file:
        admin = f"{app.admin_http.host}:{app.admin_http.port}" if app.admin_http is not None else None
        write_state(cluster, state_file, proxy=f"{host}:{bound_port}", admin=admin, admin_token=token)  # type: ignore[arg-type]
        print(f"Cluster state (for rwproxy drill --cluster-state): {state_file}")
        print(f"Try a drill:  rwproxy drill failover --cluster-state {state_file}")
        print("              (also: switchover, replica-loss, lag)")
    print("Press Ctrl-C to stop everything.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await app.stop(grace=2.0)
    return 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
