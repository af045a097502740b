"""Command line: ``rwproxy run | check-config | explain | status | switchover | demo | drill |
config-reference``. No logic beyond wiring."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

__all__ = ["main"]

log = logging.getLogger("rwproxy")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["worker"]:  # internal: one worker process, started by rwproxy.workers.supervisor
        from rwproxy.app import ProxyApp
        from rwproxy.workers.worker import main as worker_main

        return worker_main(words[1:], ProxyApp)
    parser = argparse.ArgumentParser(prog="rwproxy", description="Read/write-splitting MySQL proxy")
    parser.add_argument("--version", action="version", version=f"rwproxy {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve until SIGINT/SIGTERM")
    run.add_argument("--config", "-c", required=True, help="TOML config file")
    check = sub.add_parser("check-config", help="validate a config file and print the effective config")
    check.add_argument("file")
    explain = sub.add_parser("explain", help="classify a statement and show where it would go")
    explain.add_argument("sql")
    explain.add_argument("--config", "-c", help="config file (for rules and servers)")
    explain.add_argument(
        "--admin", help="admin HTTP address of a running proxy (host:port): use its live topology"
    )
    explain.add_argument("--json", action="store_true", help="print the raw JSON")
    status = sub.add_parser("status", help="print the topology of a running proxy (its admin HTTP /status)")
    status.add_argument("--admin", default="127.0.0.1:9306", help="admin HTTP address (host:port)")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    switch = sub.add_parser("switchover", help="planned switchover of a running proxy's primary")
    switch.add_argument("--admin", default="127.0.0.1:9306", help="admin HTTP address (host:port)")
    switch.add_argument("--to", help="server that becomes the primary (default: the least-lagged replica)")
    switch.add_argument(
        "--token",
        default=os.environ.get("RWPROXY_ADMIN_TOKEN"),
        help="[admin] bearer_token (default: $RWPROXY_ADMIN_TOKEN)",
    )
    demo = sub.add_parser("demo", help="start a local replication cluster with rwproxy in front")
    demo.add_argument("--replicas", type=int, default=2)
    demo.add_argument("--port", type=int, default=6033, help="proxy port (0 = any free port)")
    demo.add_argument("--admin-port", type=int, default=9306, help="admin HTTP port (0 = any free port)")
    demo.add_argument("--admin-sql-port", type=int, default=6032, help="admin SQL port (0 = any free port)")
    demo.add_argument("--log-level", default="info", help="the proxy's log level (default info)")
    demo.add_argument(
        "--state-file",
        help="cluster state file for rwproxy drill (default $TMPDIR/rwproxy-demo-cluster.json)",
    )
    ref = sub.add_parser(
        "config-reference",
        help="print (or write) the configuration reference, generated from the config models",
    )
    ref.add_argument("--output", "-o", help="write it to this file (docs/config-reference.md)")
    ref.add_argument("--check", metavar="FILE", help="exit 1 when FILE differs from what would be generated")
    from rwproxy.drill.cli import add_drill_parser

    add_drill_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "explain":
        return _explain(args.sql, args.config, args.admin, args.json)
    if args.command == "config-reference":
        return _config_reference(args.output, args.check)
    if args.command == "run":
        return _run(args.config)
    if args.command == "status":
        return _status(args.admin, args.json)
    if args.command == "switchover":
        return _switchover(args.admin, args.to, args.token)
    if args.command == "demo":
        from rwproxy.dev.demo import run_demo

        return run_demo(
            replicas=args.replicas,
            port=args.port,
            state_file=args.state_file,
            admin_port=args.admin_port,
            admin_sql_port=args.admin_sql_port,
            log_level=args.log_level,
        )
    if args.command == "drill":
        from rwproxy.drill.cli import run_drill_command

        return run_drill_command(args)
    return 2


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("rwproxy")
    except metadata.PackageNotFoundError:
        return "unknown"


def _load(path: str):  # type: ignore[no-untyped-def]
    from rwproxy.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"rwproxy: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _config_reference(output: str | None, check: str | None) -> int:
    from pathlib import Path

    from rwproxy.config.reference import REGENERATE, render

    text = render()
    if check:
        try:
            current = Path(check).read_text()
        except OSError as exc:
            print(f"rwproxy: cannot read {check}: {exc}", file=sys.stderr)
            return 1
        if current != text:
            print(f"rwproxy: {check} is stale; regenerate it with: {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{check} is up to date")
        return 0
    if output:
        Path(output).write_text(text)
        print(f"wrote {output}", file=sys.stderr)
        return 0
    sys.stdout.write(text)
    return 0


def _check_config(path: str) -> int:
    from rwproxy.config import dump_effective

    config = _load(path)
    print(dump_effective(config))
    print(f"# {path}: OK", file=sys.stderr)
    return 0


def _explain(sql: str, config_path: str | None, admin: str | None, raw: bool) -> int:
    import json

    from rwproxy.admin.explain import default_topology, explain, lines, offline_topology

    if admin:
        import urllib.error
        import urllib.parse
        import urllib.request

        url = f"http://{admin}/explain?" + urllib.parse.urlencode({"sql": sql})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                doc = json.load(response)
        except urllib.error.HTTPError as exc:
            print(f"rwproxy: {url}: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
            return 1
        except (urllib.error.URLError, OSError) as exc:
            print(f"rwproxy: cannot read {url}: {exc}", file=sys.stderr)
            return 1
    else:
        from rwproxy.router.policy import PolicyOptions
        from rwproxy.router.routing_state import RoutingState
        from rwproxy.router.rules import RuleSet

        if config_path:
            config = _load(config_path)
            auto = [s.name for s in config.servers if s.role == "auto"]
            topology, notes = offline_topology(config.topology(), auto)
            routing = RoutingState.from_config(config.routing)  # as the proxy would route
            rules, options = routing.rules, routing.policy_options
            source = f"from {config_path}"
        else:
            topology, rules, options = default_topology(), RuleSet(()), PolicyOptions()
            source = "an example (one primary, one replica in sync)"
            notes = ["pass -c FILE for your servers and rules, or --admin HOST:PORT for a running proxy"]
        doc = explain(sql, topology, rules, options, source=source, notes=notes)
    print(json.dumps(doc, indent=2) if raw else "\n".join(lines(doc)))
    return 0


def _status(admin: str, raw: bool) -> int:
    import json
    import urllib.error
    import urllib.request

    url = f"http://{admin}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            doc = json.load(response)
    except (urllib.error.URLError, OSError) as exc:
        print(f"rwproxy: cannot read {url}: {exc}", file=sys.stderr)
        return 1
    if raw:
        print(json.dumps(doc, indent=2))
        return 0
    print(render_status(doc))
    return 0


def _switchover(admin: str, to: str | None, token: str | None) -> int:
    """POST /switchover; prints the report. 0 done, 1 failed or refused."""
    import json
    import urllib.error
    import urllib.request

    url = f"http://{admin}/switchover"
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"to": to} if to else {}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            doc = json.load(response)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        print(f"rwproxy: switchover refused ({exc.code}): {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"rwproxy: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    report = doc.get("report") or {}
    target = report.get("to", doc.get("switchover"))
    print(f"switchover {report.get('from', '?')} -> {target}: {doc.get('result')}")
    for step in report.get("steps", []):
        print(f"  {step}")
    if "write_pause_seconds" in report:
        print(f"writes paused {report['write_pause_seconds'] * 1000:.0f} ms")
    return 0


def _duration(seconds: float) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``4 min 10 s``, ``12 s``: uptime for people."""
    s = int(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m} min"
    if m:
        return f"{m} min {s % 60} s"
    return f"{s} s"


def render_status(doc: dict) -> str:  # type: ignore[type-arg]
    """The /status document as a table for humans."""
    lines = [
        f"rwproxy {doc.get('version', '?')} (backend {doc.get('server_version', '?')}), "
        f"up {_duration(doc.get('uptime_seconds', 0))}, {doc.get('sessions', 0)} client sessions, "
        f"topology v{doc.get('topology_version', 0)}, {'ready' if doc.get('ready') else 'NOT READY'}",
        "",
        f"{'server':<12} {'address':<22} {'role':<8} {'state':<8} {'lag':>7} {'weight':>6} "
        f"{'queries':>9} {'conns':>5} {'in use':>6} {'clients':>7}  reason",
    ]
    for n in doc.get("nodes", []):
        lag = n.get("lag_seconds")
        pool = n.get("pool", {})
        conns = n.get("connections", pool.get("idle", 0) + pool.get("in_use", 0))
        lines.append(
            f"{n['name']:<12} {n['host'] + ':' + str(n['port']):<22} {n['role']:<8} {n['state']:<8} "
            f"{'-' if lag is None else f'{lag:.1f}s':>7} {n['weight']:>6} {n.get('queries', 0):>9} "
            f"{conns:>5} {pool.get('in_use', 0):>6} {n.get('client_sessions', 0):>7}  {n.get('reason') or ''}"
        )
        if n.get("role_disagreement"):
            lines.append(f"{'':<12} ! {n['role_disagreement']}")
    workers = doc.get("workers")
    if workers:  # [proxy] workers > 1 (rwproxy.workers)
        lines.append("")
        lines.append(f"{'worker':<8} {'pid':>8} {'state':<8} {'sessions':>8} {'restarts':>8} {'cpu s':>9}")
        for w in workers:
            state = "serving" if w.get("ready") else "starting"
            lines.append(
                f"{w['worker']:<8} {w.get('pid') or '-':>8} {state:<8} {w.get('sessions', 0):>8} "
                f"{w.get('restarts', 0):>8} {w.get('cpu_seconds', 0):>9.1f}"
            )
    discovery = doc.get("discovery")
    if discovery:
        left_out = [i for i in discovery.get("instances", []) if i.get("left_out")]
        lines.append("")
        lines.append(
            f"RDS discovery: {len(discovery.get('instances', []))} instances, "
            f"{discovery.get('failures', 0)} failed reads of {discovery.get('reads', 0)}"
            + (f", last error: {discovery['last_error']}" if discovery.get("last_error") else "")
        )
        for i in left_out:
            lines.append(f"  {i['name']}: left out ({i['left_out']})")
    return "\n".join(lines)


def _run(config_path: str) -> int:
    config = _load(config_path)
    _setup_logging(*config.log_settings)
    if config.proxy.uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            log.info("uvloop not installed; using asyncio's default loop")
    from rwproxy import native

    log.info("hot path: %s", native.status().summary)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, config_path))
    return 0


async def _serve(config, config_path: str) -> None:  # type: ignore[no-untyped-def]
    from rwproxy.app import ProxyApp
    from rwproxy.reload import install_sighup

    app = ProxyApp(config, config_path=config_path)
    if config.proxy.worker_count > 1:  # a supervisor and worker processes (rwproxy.workers)
        from rwproxy.workers.serve import serve_with_workers

        await serve_with_workers(app, config_path, config.proxy.worker_count)
        return
    await app.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    install_sighup(app)  # SIGHUP: re-read the config file (rwproxy.reload)
    await stop.wait()
    log.info("shutting down (grace %.1f s)", config.proxy.shutdown_grace_seconds)
    await app.stop()


def _setup_logging(level: str, fmt: str) -> None:
    from rwproxy.observability.logs import setup_logging

    setup_logging(level, fmt)
