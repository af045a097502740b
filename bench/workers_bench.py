"""Worker processes side by side: direct MariaDB, HAProxy ``nbthread 2``, rwproxy ``workers = 1`` and
rwproxy ``workers = 2``, in one run (README "Scaling with worker processes").

    RWPROXY_NATIVE=1 python bench/workers_bench.py                 # ~5 minutes
    python bench/workers_bench.py --quick                          # smoke run, ~1 minute

Starts a local MariaDB cluster (1 primary + ``--replicas``), prepares the sysbench tables, starts
HAProxy (``mode tcp``, ``nbthread 2``, backend = the primary) and two rwproxy instances (``workers =
1`` and ``workers = 2``, both running the whole time, each with its own monitor), then for each
round, workload and thread count runs sysbench through the four targets back to back. Reports the
median qps, the ratios, the proxy CPU per query (utime+stime of every process of the instance: for
``workers = 2`` the supervisor and both workers, from /proc/PID/stat) and how much of a core each
rwproxy process used (both workers busy = both cores used). Raw results go to
``bench/results/workers-<timestamp>.json``. Exit status 1 when a run failed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    REPO,
    RESULTS_DIR,
    Bench,
    Child,
    Endpoint,
    cpu_seconds,
    install_signal_handlers,
    loadavg,
    median,
    require_tools,
    run_bounded,
    timestamp,
)
from run_sysbench import parse_sysbench, sysbench_argv

from rwproxy.dev.cluster import free_port
from rwproxy.dev.demo import demo_config_text

TARGETS = ("direct", "haproxy2", "rwproxy_w1", "rwproxy_w2")
PROXIES = {"haproxy2", "rwproxy_w1", "rwproxy_w2"}


@dataclass
class Run:
    round: int
    workload: str
    threads: int
    target: str
    wall_s: float = 0.0
    qps: float | None = None
    queries: int | None = None
    p95_ms: float | None = None
    avg_ms: float | None = None
    tps: float | None = None
    ignored_errors: int | None = None
    reconnects: int | None = None
    rc: int | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)  # per process of the target, delta
    proxy_us_per_query: float | None = None
    proxy_cores: float | None = None  # CPU seconds of the target's processes per wall second
    errors: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="--time 3 --rounds 1 --threads 16")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--tables", type=int, default=1)
    ap.add_argument("--table-size", type=int, default=10_000)
    ap.add_argument("--workloads", default="oltp_point_select", help="comma-separated sysbench tests")
    ap.add_argument("--threads", default=None, help="comma-separated (default 4,16,64)")
    ap.add_argument("--time", type=int, default=None, help="seconds per run (default 10)")
    ap.add_argument("--rounds", type=int, default=None, help="default 2")
    args = ap.parse_args(argv)
    args.time = args.time or (3 if args.quick else 10)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.threads = [int(t) for t in (args.threads or ("16" if args.quick else "4,16,64")).split(",")]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    return args


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


class Targets:
    """HAProxy nbthread 2 and the two rwproxy instances, on top of ``Bench``'s cluster."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.children: dict[str, Child] = {}

    def start_haproxy(self, nbthread: int = 2) -> None:
        self.children["haproxy2"] = self.bench.start_l4_hop("haproxy2", nbthread=nbthread)

    def start_rwproxy(self, name: str, workers: int) -> None:
        c = self.bench.cluster
        assert c is not None
        port = free_port()
        text = demo_config_text(c, port, free_port())
        text = text.replace(
            f'listen = ["127.0.0.1:{port}"]', f'listen = ["127.0.0.1:{port}"]\nworkers = {workers}'
        )
        cfg = self.bench.tmp / f"{name}.toml"
        cfg.write_text(text)
        child = Child(
            name,
            [sys.executable, "-m", "rwproxy", "run", "--config", str(cfg)],
            self.bench.tmp / f"{name}.log",
            cwd=REPO,
        )
        child.start()
        self.children[name] = child
        self.bench.endpoints[name] = Endpoint("127.0.0.1", port)
        deadline = time.monotonic() + 60
        while True:  # serving, with reads on a replica, and (workers = 2) both workers up
            try:
                who = self.bench.answered_by(name)
                if "(replica)" in who and len(children(child.pid or 0)) == (workers if workers > 1 else 0):
                    break
            except Exception:
                pass
            if time.monotonic() > deadline or not child.alive():
                raise RuntimeError(f"{name} did not come up:\n{child.tail()}")
            time.sleep(0.2)

    def pids(self, target: str) -> dict[str, int]:
        child = self.children.get(target)
        if child is None or child.pid is None:
            return {}
        out = {"main" if target == "haproxy2" else "supervisor": child.pid}
        if target == "rwproxy_w2":
            for k, pid in enumerate(children(child.pid)):
                out[f"worker{k}"] = pid
        elif target == "rwproxy_w1":
            out = {"process": child.pid}
        return out

    def hot_path(self, target: str) -> str:
        for line in self.children[target].tail(300).splitlines():
            if "hot path:" in line:
                return line[line.index("hot path:") :]
        return "hot path: unknown"

    def stop(self) -> None:
        for child in self.children.values():
            child.stop()


def run_one(bench: Bench, targets: Targets, args: argparse.Namespace, run: Run, seconds: int) -> Run:
    argv = [
        *sysbench_argv(bench, run.target, args, run.workload),
        f"--threads={run.threads}",
        f"--time={seconds}",
        "--events=0",
        "--percentile=95",
        "--db-ps-mode=disable",
        "run",
    ]
    pids = targets.pids(run.target)
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.monotonic()
    run.rc, out = run_bounded(argv, timeout=seconds + 45)
    run.wall_s = time.monotonic() - t0
    after = {k: cpu_seconds(p) for k, p in pids.items()}
    parse_sysbench(out, run)  # type: ignore[arg-type]  # the same fields as run_sysbench.Run
    for k, v in before.items():
        a = after.get(k)
        if v is not None and a is not None:
            run.cpu_s[k] = a - v
    if run.rc != 0:
        run.errors.append(f"sysbench exited with {run.rc}")
    if re.search(r"FATAL|error \d+|Can't connect|Lost connection", out):
        run.errors.append("sysbench reported errors")
    if run.qps is None and not run.errors:
        run.errors.append("no 'queries:' line in the sysbench output")
    if run.reconnects:
        run.errors.append(f"{run.reconnects} reconnects")
    if run.cpu_s and run.queries:
        total = sum(run.cpu_s.values())
        run.proxy_us_per_query = total / run.queries * 1e6
        run.proxy_cores = total / run.wall_s
    return run


def _f(v: float | None, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def summarize(runs: list[Run], args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        "| workload | threads | direct qps | HAProxy nbthread 2 qps | rwproxy w=1 qps | rwproxy w=2 qps "
        "| w2/w1 | w1/HAProxy | w2/HAProxy | µs/q HAProxy / w1 / w2 | cores used HAProxy / w1 / w2 "
        "| w2 per process (% of a core) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    rows = []
    for workload in args.workloads:
        for threads in args.threads:
            group = [r for r in runs if (r.workload, r.threads) == (workload, threads) and not r.errors]
            med: dict[str, dict[str, float | None]] = {}
            for t in TARGETS:
                ok = [r for r in group if r.target == t]
                med[t] = {
                    "qps": median([r.qps for r in ok if r.qps is not None]),
                    "us": median([r.proxy_us_per_query for r in ok if r.proxy_us_per_query is not None]),
                    "cores": median([r.proxy_cores for r in ok if r.proxy_cores is not None]),
                }
            w2 = [r for r in group if r.target == "rwproxy_w2"]
            per_proc: dict[str, float | None] = {}
            for k in sorted({k for r in w2 for k in r.cpu_s}):
                per_proc[k] = median([100 * r.cpu_s[k] / r.wall_s for r in w2 if k in r.cpu_s])
            q = {t: med[t]["qps"] for t in TARGETS}

            def ratio(a: str, b: str, q: dict[str, float | None] = q) -> float | None:
                x, y = q[a], q[b]
                return x / y if x is not None and y else None

            row = {
                "workload": workload,
                "threads": threads,
                **{f"{t}_qps": q[t] for t in TARGETS},
                **{f"{t}_us_per_query": med[t]["us"] for t in PROXIES},
                **{f"{t}_cores": med[t]["cores"] for t in PROXIES},
                "w2_per_process_pct": per_proc,
                "w2_over_w1": ratio("rwproxy_w2", "rwproxy_w1"),
                "w1_over_haproxy": ratio("rwproxy_w1", "haproxy2"),
                "w2_over_haproxy": ratio("rwproxy_w2", "haproxy2"),
            }
            rows.append(row)
            procs = ", ".join(f"{k} {_f(v, '.0f')}" for k, v in per_proc.items())
            lines.append(
                f"| {workload} | {threads} | "
                + " | ".join(_f(q[t]) for t in TARGETS)
                + " | "
                + " | ".join(_f(row[k], ".2f") for k in ("w2_over_w1", "w1_over_haproxy", "w2_over_haproxy"))
                + " | "
                + " / ".join(_f(med[t]["us"], ".1f") for t in ("haproxy2", "rwproxy_w1", "rwproxy_w2"))
                + " | "
                + " / ".join(_f(med[t]["cores"], ".2f") for t in ("haproxy2", "rwproxy_w1", "rwproxy_w2"))
                + f" | {procs} |"
            )
    return "\n".join(lines), rows


def main(argv: list[str] | None = None) -> int:
    install_signal_handlers()
    require_tools("sysbench", "haproxy")
    args = parse_args(argv)
    started = timestamp()
    load_start = loadavg()
    runs: list[Run] = []
    meta: dict[str, Any] = {"started": started, "args": vars(args), "loadavg_start": load_start}
    with Bench(replicas=args.replicas) as bench:
        targets = Targets(bench)
        try:
            cluster = bench.start_cluster()
            rc, prep = run_bounded([*sysbench_argv(bench, "direct", args, "oltp_common"), "prepare"], 600)
            if rc != 0:
                print(f"sysbench prepare failed (exit {rc}):\n{prep}", file=sys.stderr)
                return 1
            cluster.wait_replicas_caught_up(timeout=120)
            targets.start_haproxy(2)
            targets.start_rwproxy("rwproxy_w1", 1)
            targets.start_rwproxy("rwproxy_w2", 2)
            meta["versions"] = bench.versions()
            meta["hot_path"] = {t: targets.hot_path(t) for t in ("rwproxy_w1", "rwproxy_w2")}
            print(f"load average at start: {load_start}; nproc {meta['versions']['nproc']}")
            for k, v in meta["versions"].items():
                print(f"  {k}: {v}")
            for t, hp in meta["hot_path"].items():
                print(f"  {t}: {hp}")
            for t in TARGETS:  # warm-up, unrecorded
                run_one(bench, targets, args, Run(0, "oltp_point_select", 4, t), 2)
            for rnd in range(1, args.rounds + 1):
                for workload in args.workloads:
                    for threads in args.threads:
                        for t in TARGETS:
                            r = run_one(bench, targets, args, Run(rnd, workload, threads, t), args.time)
                            runs.append(r)
                            procs = " ".join(f"{k}={v / r.wall_s * 100:.0f}%" for k, v in r.cpu_s.items())
                            print(
                                f"  r{rnd} {workload:18} {threads:3}t {t:11} {_f(r.qps):>9} qps  "
                                f"p95 {_f(r.p95_ms, '.2f'):>6} ms  "
                                f"{_f(r.proxy_us_per_query, '.1f'):>6} µs/q  "
                                f"{procs}  {'FAILED: ' + '; '.join(r.errors) if r.errors else ''}",
                                flush=True,
                            )
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
        finally:
            targets.stop()
            meta["loadavg_end"] = loadavg()
    table, rows = summarize(runs, args)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"workers-{started}.json"
    out.write_text(json.dumps({"meta": meta, "summary": rows, "runs": [asdict(r) for r in runs]}, indent=1))
    print()
    print(table)
    print()
    print(f"load average: start {load_start}, end {meta['loadavg_end']}")
    print(f"raw results: {out}")
    failed = [r for r in runs if r.errors]
    if failed:
        print(f"{len(failed)} of {len(runs)} runs FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
