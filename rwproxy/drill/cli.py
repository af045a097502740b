"""``rwproxy drill SCENARIO ...``: arguments, and the run with its text / JSON output.

Exit status: 0 the drill ran and no acknowledged write was lost or duplicated; 1 writes were lost
or duplicated, or the fault could not be injected; 2 bad arguments or the drill could not start;
3 the proxy does not support the scenario (e.g. no switchover endpoint).

Imports only argparse at module level: ``rwproxy.cli`` loads this for every command.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["add_drill_parser", "run_drill_command"]

_EPILOG = """\
examples:
  rwproxy demo    # prints its cluster state file, e.g. /tmp/rwproxy-demo-cluster.json
  rwproxy drill replica-loss --cluster-state /tmp/rwproxy-demo-cluster.json
  rwproxy drill lag --cluster-state /tmp/rwproxy-demo-cluster.json --duration 8 --json -
  rwproxy drill failover --proxy db.internal:6033 --user app --password secret \\
      --admin db.internal:9306 --trigger "aws rds reboot-db-instance --db-instance-identifier prod \\
      --force-failover"

With --cluster-state, --proxy/--admin/--user/--password default to what the state file records.
exit status: 0 ok; 1 acknowledged writes lost or duplicated, or the fault failed; 2 usage;
3 the proxy does not support the scenario.
"""


def add_drill_parser(sub: Any) -> None:
    from rwproxy.drill.events import SCENARIOS  # light: dataclasses only

    p = sub.add_parser(
        "drill",
        help="run a workload through a running proxy, inject a fault, report what clients saw",
        description="Run writers and readers through a running rwproxy, inject a fault, and report "
        "detection time, write outage, read availability, errors, lost/duplicate writes, stale reads.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--proxy", help="the proxy's MySQL address host:port")
    p.add_argument("--user", "-u", help="MySQL user (through the proxy)")
    p.add_argument("--password", "-p", help="its password (default: $RWPROXY_DRILL_PASSWORD)")
    p.add_argument("--database", "-D", help="schema for the drill tables (default rwproxy_drill)")
    p.add_argument("--admin", help="the proxy's admin HTTP host:port (detection time, switchover)")
    p.add_argument(
        "--also-admin",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="another rwproxy instance's admin HTTP (repeatable): the report says which instance led",
    )
    p.add_argument(
        "--admin-token",
        default=os.environ.get("RWPROXY_ADMIN_TOKEN"),
        help="the proxy's [admin] bearer_token, for POST /switchover (default: $RWPROXY_ADMIN_TOKEN)",
    )
    fault = p.add_mutually_exclusive_group()
    fault.add_argument("--cluster-state", metavar="FILE", help="local cluster state file (rwproxy demo)")
    fault.add_argument("--trigger", metavar="CMD", help="shell command that injects the fault")
    p.add_argument("--restore-trigger", metavar="CMD", help="shell command that undoes it (lag)")
    p.add_argument("--duration", type=float, default=6.0, help="seconds of workload (default 6)")
    p.add_argument("--fault-after", type=float, default=2.0, help="seconds before the fault (default 2)")
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--readers", type=int, default=4)
    p.add_argument("--node", help="target replica (replica-loss, lag) or switchover candidate")
    p.add_argument("--lag-delay", type=int, default=3, help="MASTER_DELAY seconds for lag (default 3)")
    p.add_argument("--lag-hold", type=float, help="how long the lag lasts (default 60%% of the rest)")
    p.add_argument("--lag-method", choices=("delay", "stop-sql"), default="delay")
    restore = p.add_mutually_exclusive_group()
    restore.add_argument(
        "--restore",
        dest="restore",
        action="store_true",
        default=None,
        help="restart a killed node at the end (default for replica-loss)",
    )
    restore.add_argument("--no-restore", dest="restore", action="store_false")
    p.add_argument("--verify-dsn", help="read the table here afterwards: mysql://user:pass@host:port")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE ('-': stdout)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line")


def run_drill_command(args: argparse.Namespace) -> int:
    import json

    from rwproxy.dev.cluster import ClusterError, attach
    from rwproxy.drill.faults import Unsupported
    from rwproxy.drill.instances import render_coordination
    from rwproxy.drill.report import render_text
    from rwproxy.drill.scenarios import DrillError, DrillOptions, run_drill

    cluster = None
    state: dict[str, Any] = {}
    try:
        if args.cluster_state:
            cluster = attach(args.cluster_state)
            state = cluster.state
            cluster.refresh_primary()
    except ClusterError as exc:
        print(f"rwproxy drill: {exc}", file=sys.stderr)
        return 2
    proxy = args.proxy or state.get("proxy")
    user = args.user or state.get("app_user")
    password = args.password or os.environ.get("RWPROXY_DRILL_PASSWORD") or state.get("app_password")
    if not proxy or not user or password is None:
        print(
            "rwproxy drill: --proxy, --user and --password are required (or --cluster-state)", file=sys.stderr
        )
        return 2
    options = DrillOptions(
        args.scenario,
        proxy=proxy,
        user=user,
        password=password,
        database=args.database,
        admin=args.admin or state.get("admin"),
        admin_token=args.admin_token or state.get("admin_token"),
        trigger=args.trigger,
        restore_trigger=args.restore_trigger,
        duration=args.duration,
        fault_after=args.fault_after,
        writers=args.writers,
        readers=args.readers,
        node=args.node,
        lag_delay=args.lag_delay,
        lag_hold=args.lag_hold,
        lag_method=args.lag_method,
        restore=args.restore,
        verify_dsn=args.verify_dsn,
        quiet=args.quiet,
        also_admin=tuple(args.also_admin),
    )
    try:
        result = run_drill(options, cluster=cluster)
    except Unsupported as exc:
        print(f"rwproxy drill: {exc}", file=sys.stderr)
        return 3
    except DrillError as exc:
        print(f"rwproxy drill: {exc}", file=sys.stderr)
        return 2
    text = "\n".join([render_text(result.report), *render_coordination(result.report.get("coordination"))])
    doc = json.dumps(result.report, indent=2)
    if args.json == "-":
        print(text, file=sys.stderr)
        print(doc)
    else:
        print(text)
        if args.json:
            with open(args.json, "w") as f:
                f.write(doc + "\n")
            print(f"JSON report: {args.json}")
    return result.exit_code
