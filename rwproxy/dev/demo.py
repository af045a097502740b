"""``rwproxy demo``: a local replication cluster (1 primary + N replicas) with rwproxy in front.

Uses the same cluster module as the test suite (``rwproxy.dev.cluster``). Ctrl-C stops the proxy and
every server, and removes their temporary directories.

While it runs, a cluster state file (``rwproxy.dev.cluster.state``: nodes, pids, sockets, how to restart
them, the proxy and admin addresses; default ``$TMPDIR/rwproxy-demo-cluster.json``) lets
``rwproxy drill --cluster-state FILE`` find the servers to kill or delay. It is removed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "busy_ports",
    "demo_config_text",
    "port_free",
    "run_demo",
    "rwproxy_command",
    "server_tables",
    "user_table",
]

DEFAULT_PORT = 6033
DEFAULT_ADMIN_PORT = 9306  # admin HTTP
DEFAULT_ADMIN_SQL_PORT = 6032
ADMIN_USER = "admin"


def demo_config_text(
    cluster: object,
    port: int,
    admin_port: int | None = None,
    *,
    check_interval: float = 0.5,
    failover_mode: str = "off",
    admin_token: str | None = None,
    admin_sql_port: int | None = None,
    admin_users: Sequence[tuple[str, str]] = (),
) -> str:
    """A config for the proxy in front of ``cluster`` (a ``rwproxy.dev.cluster.Cluster``). ``rwproxy
    demo`` uses ``failover_mode = "promote"`` so that ``rwproxy drill failover`` has something to show.

    ``admin_port`` None: the default admin address (127.0.0.1:9306), or a free port when ``port`` is 0.
    ``check_interval``: seconds between monitor checks (a dead primary is declared after 3).
    ``admin_sql_port`` and ``admin_users`` ((name, password) pairs): the admin SQL interface.
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
        if admin_sql_port is not None:
            lines.append(f'sql_listen = "127.0.0.1:{admin_sql_port}"')
        lines.append("")
        for name, password in admin_users:
            lines += ["[[admin.users]]", f'name = "{name}"', f'password = "{password}"', ""]
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


def rwproxy_command() -> str:
    """How to run this rwproxy from the current directory: ``rwproxy`` when that is on the PATH and
    is this one, else its path (``.venv/bin/rwproxy`` after ``make demo``, which does not touch the
    PATH)."""
    exe = Path(sys.argv[0])
    if exe.name != "rwproxy" or not exe.exists():  # python -m rwproxy: the venv's launcher, if any
        exe = Path(sys.executable).parent / "rwproxy"
        if not exe.exists():
            return f"{sys.executable} -m rwproxy"
    on_path = shutil.which("rwproxy")
    if on_path is not None and Path(on_path).resolve() == exe.resolve():
        return "rwproxy"
    try:
        rel = exe.absolute().relative_to(Path.cwd())
    except ValueError:
        return str(exe.absolute())
    return str(rel) if rel.parts and rel.parts[0] != ".." else str(exe.absolute())


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Can rwproxy bind ``host:port``? Tested as the listeners bind (SO_REUSEADDR), so a port with
    only TIME_WAIT connections left counts as free."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# (what, make variable, rwproxy demo option) per port the demo listens on
_PORTS = (
    ("client port (the proxy)", "PORT", "--port"),
    ("admin HTTP port", "ADMIN_PORT", "--admin-port"),
    ("admin SQL port", "ADMIN_SQL_PORT", "--admin-sql-port"),
)


def busy_ports(port: int, admin_port: int, admin_sql_port: int) -> list[str]:
    """One message per port the demo cannot bind (0 = any free port, never busy), saying how to pick
    another. Checked before the cluster starts."""
    out = []
    for (what, var, option), number in zip(_PORTS, (port, admin_port, admin_sql_port), strict=True):
        if number and not port_free(number):
            out.append(
                f"127.0.0.1:{number}, the {what}, is in use (another rwproxy demo? see: ss -ltnp "
                f"'sport = :{number}'); choose another with: make demo {var}={number + 1}  (or: rwproxy "
                f"demo {option} {number + 1}; 0 = any free port)"
            )
    return out


def run_demo(
    *,
    replicas: int = 2,
    port: int = DEFAULT_PORT,
    state_file: str | None = None,
    admin_port: int = DEFAULT_ADMIN_PORT,
    admin_sql_port: int = DEFAULT_ADMIN_SQL_PORT,
    log_level: str = "info",
) -> int:
    """``state_file``: where to write the cluster state (None: the default path, "" = none).
    ``log_level``: the proxy's log (state transitions, failed logins, failover steps) on stderr."""
    from rwproxy.dev.cluster import ClusterUnavailable, default_state_path, start_cluster
    from rwproxy.observability.logs import setup_logging

    if state_file is None:
        state_file = default_state_path()
    busy = busy_ports(port, admin_port, admin_sql_port)
    if busy:
        for message in busy:
            print(f"rwproxy demo: {message}", file=sys.stderr)
        return 2
    setup_logging(log_level, "text")

    print("rwproxy demo: starting a local replication cluster ...", flush=True)
    try:
        cluster = start_cluster("local", replicas=replicas)
    except ClusterUnavailable as exc:
        print(f"rwproxy demo: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_serve(cluster, port, state_file, admin_port, admin_sql_port))
    except KeyboardInterrupt:
        return 0
    finally:
        if state_file:
            with contextlib.suppress(OSError):
                os.remove(state_file)
        print("rwproxy demo: stopping the cluster and removing its files ...", flush=True)
        cluster.stop()


async def _serve(cluster: object, port: int, state_file: str, admin_port: int, admin_sql_port: int) -> int:
    from rwproxy.app import ProxyApp
    from rwproxy.config import parse_config
    from rwproxy.dev.cluster import write_state

    token = secrets.token_hex(16)  # POST /switchover; written to the state file for rwproxy drill
    admin_password = secrets.token_urlsafe(9)
    text = demo_config_text(
        cluster,
        port,
        admin_port,
        failover_mode="promote",
        admin_token=token,
        admin_sql_port=admin_sql_port,
        admin_users=[(ADMIN_USER, admin_password)],
    )
    config = parse_config(text, "<demo>")
    app = ProxyApp(config)
    try:
        bound = await app.start()
    except OSError as exc:  # taken between the check and the bind
        print(
            f"rwproxy demo: cannot listen: {exc}; choose other ports (make demo PORT=... ADMIN_PORT=... "
            "ADMIN_SQL_PORT=...)",
            file=sys.stderr,
        )
        await app.stop(grace=0.5)
        return 2
    host, bound_port = bound[0]
    c = cluster
    me = rwproxy_command()
    print(c.describe())  # type: ignore[attr-defined]
    print()
    from rwproxy import native

    print(f"rwproxy is listening (hot path: {native.status().summary}).")
    print("Connect through it with:")
    print(f"  mariadb -h{host} -P{bound_port} -u{c.app_user} -p{c.app_password} rwtest")  # type: ignore[attr-defined]
    print()
    print("Try:  SELECT @@server_id;   -- a replica answers")
    print("      BEGIN; SELECT @@server_id; COMMIT;   -- the primary answers inside a transaction")
    print("      mariadb -c ... -e '/* rwproxy:primary */ SELECT @@server_id'   -- a routing hint")
    print("      (-c keeps comments: the stock mariadb client strips them, and the hint with them)")
    print()
    print("Admin endpoints:")
    if app.admin_sql is not None:
        print(
            f"  SQL:   mariadb -h{app.admin_sql.host} -P{app.admin_sql.port} -u{ADMIN_USER} "
            f"-p{admin_password} rwproxy"
        )
        print("         SELECT * FROM servers;  SELECT * FROM stats;  EXPLAIN ROUTE 'SELECT 1';")
    if app.admin_http is not None:
        url = app.admin_http.url
        print(f"  HTTP:  {url}/status  {url}/metrics  {url}/digests")
        print(f"         POST endpoints (drain, switchover, reload): -H 'Authorization: Bearer {token}'")
        print(f"  CLI:   {me} status --admin {app.admin_http.host}:{app.admin_http.port}")
        print(f"         {me} explain --admin {app.admin_http.host}:{app.admin_http.port} 'SELECT 1'")
    if state_file:
        admin = f"{app.admin_http.host}:{app.admin_http.port}" if app.admin_http is not None else None
        write_state(cluster, state_file, proxy=f"{host}:{bound_port}", admin=admin, admin_token=token)  # type: ignore[arg-type]
        print(f"Cluster state (for {me} drill --cluster-state): {state_file}")
        print(f"Try a drill:  {me} drill failover --cluster-state {state_file}")
        print("              (also: switchover, replica-loss, lag)")
    print("The proxy's log (server state changes, failed logins, failover steps) follows on stderr.")
    print("Press Ctrl-C to stop everything.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await app.stop(grace=2.0)
    return 0
