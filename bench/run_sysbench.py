"""sysbench side by side: direct to the primary vs HAProxy (L4) vs rwproxy, in one run.

    python bench/run_sysbench.py --quick     # smoke run, ~2-3 minutes
    python bench/run_sysbench.py             # full run, ~20 minutes

Starts a local MariaDB cluster (1 primary + ``--replicas``), prepares the sysbench tables on the
primary, starts HAProxy (``mode tcp``, ``nbthread 1``, backend = the primary) and rwproxy
(``python -m rwproxy run``), then for each round, workload, ps-mode and thread count runs sysbench
against direct, haproxy and rwproxy back to back. Prints medians over rounds and the ratios; the
absolute numbers on a shared 2-core box are noise, the ratios are the result. Raw results go to
``bench/results/sysbench-<timestamp>.json``. Exit status 1 when any run errored (sysbench failed or
reported errors, or a proxy died or hung), 130 on Ctrl-C; every process started is stopped.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from benchlib import (
    RESULTS_DIR,
    TARGETS,
    Bench,
    finish_report,
    install_signal_handlers,
    loadavg,
    median,
    require_tools,
    run_bounded,
    timestamp,
)

WORKLOADS = ("oltp_point_select", "oltp_read_only", "oltp_read_write")
PS_MODES = ("disable", "auto")
READ_ONLY = {"oltp_point_select", "oltp_read_only"}  # cannot deadlock: any ignored error is a failure
BAR_WORKLOADS = {"oltp_point_select", "oltp_read_only"}  # the issue's bar: text protocol, every thread count
BAR_RATIO = 0.8


@dataclass
class Run:
    round: int
    workload: str
    ps_mode: str
    threads: int
    target: str
    wall_s: float = 0.0
    rc: int | None = None
    timed_out: bool = False
    qps: float | None = None
    tps: float | None = None
    queries: int | None = None
    p95_ms: float | None = None
    avg_ms: float | None = None
    ignored_errors: int | None = None
    reconnects: int | None = None
    cpu_s: dict[str, float | None] = field(default_factory=dict)  # per process, delta over the run
    questions: dict[str, int | None] = field(default_factory=dict)  # per server, delta over the run
    proxy_us_per_query: float | None = None  # the CPU of the process in the path (haproxy/rwproxy)
    proxy_core_pct: float | None = None
    loadavg_after: str = ""
    errors: list[str] = field(default_factory=list)
    output_tail: str | None = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: --time 3 --rounds 1 --threads 1,16")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--tables", type=int, default=1)
    ap.add_argument("--table-size", type=int, default=10_000)
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated sysbench tests")
    ap.add_argument("--ps-modes", default=",".join(PS_MODES), help="comma-separated --db-ps-mode values")
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1,4,16)")
    ap.add_argument("--time", type=int, default=None, help="seconds per run (default 10, quick 3)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds over all runs (default 2, quick 1)")
    ap.add_argument("--targets", default=",".join(TARGETS), help="subset of direct,haproxy,rwproxy")
    ap.add_argument("--no-warmup", action="store_true", help="skip the unrecorded 2 s warm-up per target")
    ap.add_argument(
        "--sysbench-args",
        default="",
        help='extra options for every sysbench run, e.g. "--skip_trx=on" (reads outside transactions)',
    )
    args = ap.parse_args(argv)
    args.time = args.time or (3 if args.quick else 10)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.threads = [int(t) for t in (args.threads or ("1,16" if args.quick else "1,4,16")).split(",")]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    args.ps_modes = [m.strip() for m in args.ps_modes.split(",") if m.strip()]
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bad = [t for t in args.targets if t not in TARGETS]
    if bad:
        ap.error(f"unknown targets {bad}; choose from {TARGETS}")
    return args


# --- sysbench -----------------------------------------------------------------------------------------
def sysbench_argv(bench: Bench, target: str, args: argparse.Namespace, workload: str) -> list[str]:
    assert bench.cluster is not None
    ep = bench.endpoints[target]
    c = bench.cluster
    return [
        "sysbench",
        workload,
        "--db-driver=mysql",
        f"--mysql-host={ep.host}",
        f"--mysql-port={ep.port}",
        f"--mysql-user={c.app_user}",
        f"--mysql-password={c.app_password}",
        f"--mysql-db={c.database}",
        f"--tables={args.tables}",
        f"--table-size={args.table_size}",
    ]


_PATTERNS = {
    "queries": re.compile(r"^\s*queries:\s+(\d+)\s+\(([\d.]+) per sec\.\)", re.M),
    "transactions": re.compile(r"^\s*transactions:\s+(\d+)\s+\(([\d.]+) per sec\.\)", re.M),
    "ignored": re.compile(r"^\s*ignored errors:\s+(\d+)", re.M),
    "reconnects": re.compile(r"^\s*reconnects:\s+(\d+)", re.M),
    "p95": re.compile(r"^\s*95th percentile:\s+([\d.]+)", re.M),
    "avg": re.compile(r"^\s*avg:\s+([\d.]+)", re.M),
}


def parse_sysbench(out: str, run: Run) -> None:
    m = _PATTERNS["queries"].search(out)
    if m:
        run.queries, run.qps = int(m.group(1)), float(m.group(2))
    if m := _PATTERNS["transactions"].search(out):
        run.tps = float(m.group(2))
    if m := _PATTERNS["ignored"].search(out):
        run.ignored_errors = int(m.group(1))
    if m := _PATTERNS["reconnects"].search(out):
        run.reconnects = int(m.group(1))
    if m := _PATTERNS["p95"].search(out):
        run.p95_ms = float(m.group(1))
    if m := _PATTERNS["avg"].search(out):
        run.avg_ms = float(m.group(1))


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_one(bench: Bench, args: argparse.Namespace, run: Run, seconds: int) -> Run:
    argv = [
        *sysbench_argv(bench, run.target, args, run.workload),
        f"--threads={run.threads}",
        f"--time={seconds}",
        "--events=0",
        "--percentile=95",
        f"--db-ps-mode={run.ps_mode}",
        *shlex.split(args.sysbench_args),
        "run",
    ]
    q_before = bench.node_questions()
    before = _cpu_snapshot(bench)
    t0 = time.monotonic()
    run.rc, out = run_bounded(argv, timeout=seconds + 45)
    if run.rc is None:
        run.timed_out = True
        run.errors.append(f"sysbench did not finish within {seconds + 45} s and was killed (hang?)")
    run.wall_s = time.monotonic() - t0
    after = _cpu_snapshot(bench)
    q_after = bench.node_questions()
    run.questions = {
        k: (q_after[k] - v if v is not None and q_after.get(k) is not None else None)
        for k, v in q_before.items()
    }
    run.cpu_s = {
        k: (after[k] - v if v is not None and after.get(k) is not None else None) for k, v in before.items()
    }
    run.loadavg_after = loadavg()
    parse_sysbench(out, run)

    if run.rc not in (0, None):
        run.errors.append(f"sysbench exited with {run.rc}")
    if re.search(r"FATAL|error \d+|Can't connect|Lost connection", out) and not run.timed_out:
        run.errors.append("sysbench reported errors")
    if run.qps is None and not run.errors:
        run.errors.append("no 'queries:' line in the sysbench output")
    if run.reconnects:
        run.errors.append(f"{run.reconnects} reconnects")
    if run.ignored_errors and run.workload in READ_ONLY:
        run.errors.append(f"{run.ignored_errors} ignored errors on a read-only workload")
    for child in (bench.haproxy, bench.proxy):
        if child is not None and not child.alive():
            run.errors.append(f"{child.name} died (exit code {child.returncode()})")
    if run.errors:
        run.output_tail = tail(out)
        if run.target == "rwproxy" and bench.proxy is not None:
            run.output_tail += "\n--- rwproxy log tail ---\n" + bench.proxy.tail()

    proc = {"haproxy": "haproxy", "rwproxy": "rwproxy"}.get(run.target)
    cpu = run.cpu_s.get(proc) if proc else None
    if cpu is not None and run.queries:
        run.proxy_us_per_query = cpu / run.queries * 1e6
        run.proxy_core_pct = 100.0 * cpu / run.wall_s
    return run


def _cpu_snapshot(bench: Bench) -> dict[str, float | None]:
    snap = bench.node_cpu()
    snap["haproxy"] = bench.haproxy.cpu() if bench.haproxy else None
    snap["rwproxy"] = bench.proxy.cpu() if bench.proxy else None
    return snap


def heal(bench: Bench, run: Run) -> None:
    """Keep the benchmark going after a proxy failure: restart a dead or possibly hung rwproxy."""
    if bench.proxy is None:
        return
    if not bench.proxy.alive():
        bench.restart_proxy(f"died during {run.workload}/{run.ps_mode}/{run.threads}t (round {run.round})")
    elif run.target == "rwproxy" and run.timed_out:
        bench.restart_proxy(f"hung during {run.workload}/{run.ps_mode}/{run.threads}t (round {run.round})")
    if bench.haproxy is not None and not bench.haproxy.alive():
        raise RuntimeError(f"haproxy died:\n{bench.haproxy.tail()}")


# --- report -------------------------------------------------------------------------------------------
def _fmt(v: float | None, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def replica_share(runs: list[Run], primary: str) -> float | None:
    """Share of the statements the servers executed during ``runs`` that a replica executed."""
    total = on_replicas = 0
    for r in runs:
        for node, n in r.questions.items():
            total += n or 0
            on_replicas += (n or 0) if node != primary else 0
    return 100.0 * on_replicas / total if total else None


def summarize(
    runs: list[Run], args: argparse.Namespace, primary: str
) -> tuple[str, list[dict[str, Any]], list[str]]:
    lines = [
        "| workload | ps-mode | threads | direct qps | haproxy qps | rwproxy qps | rwproxy/haproxy "
        "| rwproxy/direct | p95 ms direct / haproxy / rwproxy | rwproxy µs/q (%core) | haproxy µs/q (%core) "
        "| rwproxy stmts on replica | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    rows: list[dict[str, Any]] = []
    bar_misses: list[str] = []
    for workload in args.workloads:
        for mode in args.ps_modes:
            for threads in args.threads:
                group = [r for r in runs if (r.workload, r.ps_mode, r.threads) == (workload, mode, threads)]
                med: dict[str, dict[str, float | None]] = {}
                nerr: dict[str, int] = {}
                for t in TARGETS:
                    ok = [r for r in group if r.target == t and not r.errors]
                    nerr[t] = sum(1 for r in group if r.target == t and r.errors)
                    med[t] = {
                        "qps": median([r.qps for r in ok if r.qps is not None]),
                        "p95": median([r.p95_ms for r in ok if r.p95_ms is not None]),
                        "us": median([r.proxy_us_per_query for r in ok if r.proxy_us_per_query is not None]),
                        "core": median([r.proxy_core_pct for r in ok if r.proxy_core_pct is not None]),
                    }
                ign_by = {t: sum(r.ignored_errors or 0 for r in group if r.target == t) for t in TARGETS}
                ign = sum(ign_by.values())
                share = replica_share([r for r in group if r.target == "rwproxy"], primary)
                rh = _ratio(med["rwproxy"]["qps"], med["haproxy"]["qps"])
                rd = _ratio(med["rwproxy"]["qps"], med["direct"]["qps"])
                errs = ", ".join(f"{t} {n} failed" for t, n in nerr.items() if n)
                if ign:
                    detail = "/".join(str(ign_by[t]) for t in TARGETS)
                    errs = ", ".join(x for x in (errs, f"ignored (deadlocks) d/h/rw {detail}") if x)
                bar = ""
                if workload in BAR_WORKLOADS and mode == "disable" and "rwproxy" in args.targets:
                    if rh is None:
                        bar = " ?"
                        bar_misses.append(f"{workload} text {threads}t: not measured (failed or interrupted)")
                    elif rh < BAR_RATIO:
                        bar = " ✗"
                        bar_misses.append(f"{workload} text {threads}t: rwproxy/haproxy = {rh:.2f}")
                    else:
                        bar = " ✓"
                p95 = " / ".join(_fmt(med[t]["p95"], ".2f") for t in TARGETS)
                lines.append(
                    f"| {workload} | {mode} | {threads} | {_fmt(med['direct']['qps'])} | "
                    f"{_fmt(med['haproxy']['qps'])} | {_fmt(med['rwproxy']['qps'])} | "
                    f"{_fmt(rh, '.2f')}{bar} | {_fmt(rd, '.2f')} | {p95} | "
                    f"{_fmt(med['rwproxy']['us'], '.1f')} ({_fmt(med['rwproxy']['core'], '.0f')}%) | "
                    f"{_fmt(med['haproxy']['us'], '.1f')} ({_fmt(med['haproxy']['core'], '.0f')}%) | "
                    f"{_fmt(share, '.0f')}% | {errs or '-'} |"
                )
                rows.append(
                    {
                        "workload": workload,
                        "ps_mode": mode,
                        "threads": threads,
                        "median": med,
                        "rwproxy_over_haproxy": rh,
                        "rwproxy_over_direct": rd,
                        "failed_runs": nerr,
                        "ignored_errors": ign_by,
                        "rwproxy_replica_share_pct": share,
                    }
                )
    return "\n".join(lines), rows, bar_misses


# --- main ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    require_tools("sysbench", "haproxy")
    started = timestamp()
    load_start = loadavg()
    n_runs = args.rounds * len(args.workloads) * len(args.ps_modes) * len(args.threads) * len(args.targets)
    print(
        f"# rwproxy sysbench comparison ({'quick' if args.quick else 'full'}) -- {n_runs} runs of "
        f"{args.time} s, ~{max(1, round(n_runs * (args.time + 0.3) / 60 + 0.3))} min",
        flush=True,
    )
    runs: list[Run] = []
    meta: dict[str, Any] = {"started": started, "args": vars(args), "loadavg_start": load_start}
    interrupted = False
    with Bench(replicas=args.replicas) as bench:
        try:
            cluster = bench.start_cluster()
            rc, prep_out = run_bounded([*sysbench_argv(bench, "direct", args, "oltp_common"), "prepare"], 600)
            if rc != 0:
                print(f"sysbench prepare failed (exit {rc}):\n{prep_out}", file=sys.stderr)
                return 1
            cluster.wait_replicas_caught_up(timeout=120)
            bench.start_haproxy()
            bench.start_proxy()
            meta["versions"] = bench.versions()
            meta["routing"] = {t: bench.answered_by(t) for t in bench.endpoints}
            print_header(bench, args, meta)

            if not args.no_warmup:  # unrecorded: warms buffer pools, pools, caches; fails fast if broken
                for t in args.targets:
                    w = run_one(bench, args, Run(0, "oltp_point_select", "disable", 4, t), 2)
                    if w.errors:
                        print(f"warm-up through {t} failed: {w.errors}\n{w.output_tail}", file=sys.stderr)
                        heal(bench, w)

            for rnd in range(1, args.rounds + 1):
                for workload in args.workloads:
                    for mode in args.ps_modes:
                        for threads in args.threads:
                            for target in args.targets:
                                r = run_one(bench, args, Run(rnd, workload, mode, threads, target), args.time)
                                runs.append(r)
                                status = "FAILED: " + "; ".join(r.errors) if r.errors else ""
                                served = "/".join(f"{v}" for v in r.questions.values())
                                print(
                                    f"  r{rnd} {workload:18} {mode:7} {threads:3}t {target:8} "
                                    f"{_fmt(r.qps):>9} qps  p95 {_fmt(r.p95_ms, '.2f'):>6} ms  "
                                    f"{_fmt(r.proxy_us_per_query, '.1f'):>6} µs/q  "
                                    f"questions {served}  {status}",
                                    flush=True,
                                )
                                if r.errors:
                                    print("    " + (r.output_tail or "").replace("\n", "\n    "), flush=True)
                                    heal(bench, r)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: stopping everything ...", file=sys.stderr)
        finally:
            meta["loadavg_end"] = loadavg()
            meta["events"] = bench.events
            meta["notes"] = bench.notes
            failed = [r for r in runs if r.errors]
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            out = RESULTS_DIR / f"sysbench-{started}.json"
            primary = bench.cluster.primary.name if bench.cluster else "node1"
            table, rows, bar_misses = summarize(runs, args, primary)
            meta["interrupted"] = interrupted
            out.write_text(
                json.dumps({"meta": meta, "summary": rows, "runs": [asdict(r) for r in runs]}, indent=1)
            )
            saved = bench.save_logs(out.with_suffix("")) if (failed or bench.events) else []

    print()
    print(table)
    print()
    print(
        f"load average: start {load_start}, end {meta['loadavg_end']} "
        f"(nproc {meta.get('versions', {}).get('nproc')})"
    )
    if bar_misses:
        print(
            f"bar (rwproxy >= {BAR_RATIO}x haproxy qps, point_select/read_only text): "
            "missed or not measured at"
        )
        for m in bar_misses:
            print(f"  - {m}")
    elif runs:
        print(f"bar (rwproxy >= {BAR_RATIO}x haproxy qps, point_select/read_only text): met everywhere")
    return finish_report(
        bench.events,
        out,
        saved,
        interrupted=interrupted,
        failure=f"{len(failed)} of {len(runs)} runs FAILED (see above and the JSON)" if failed else None,
    )


def print_header(bench: Bench, args: argparse.Namespace, meta: dict[str, Any]) -> None:
    v = meta["versions"]
    print(f"load average at start: {meta['loadavg_start']}   nproc: {v['nproc']}   kernel: {v['kernel']}")
    for k in ("python", "uvloop", "rwproxy", "mariadb_server", "haproxy", "sysbench"):
        print(f"  {k}: {v[k]}")
    print(
        f"cluster: 1 primary + {args.replicas} replica(s); "
        f"{args.tables} table(s) x {args.table_size:,} rows; "
        f"{args.time} s per run, {args.rounds} round(s), threads {args.threads}"
    )
    for t, ep in bench.endpoints.items():
        print(f"  {t:8} {ep.host}:{ep.port}  -> a plain SELECT is answered by {meta['routing'][t]}")
    for note in bench.notes:
        print(f"  ({note})")
    assert bench.cluster is not None
    names = "/".join(n.name for n in bench.cluster.nodes)
    print(f"per-run 'questions {names}' = statements each server executed during the run")
    print(
        "note: through rwproxy reads go to the replica while direct and haproxy hit the primary (expected);\n"
        "      writes and transactions go to the primary everywhere -- and oltp_read_only/oltp_read_write\n"
        "      wrap their reads in BEGIN..COMMIT (unless --sysbench-args=--skip_trx=on), so through rwproxy\n"
        "      they run on the primary too: see the 'stmts on replica' column.\n"
        "      µs/q = CPU (utime+stime) of the haproxy/rwproxy process per sysbench query;\n"
        "      %core = that CPU over the run's wall time.\n",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
