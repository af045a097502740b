"""What read-your-writes costs per read: proxy CPU and client latency, four kinds of session side by side.

    python bench/causal_bench.py --quick     # 2,000 reads per scenario, 3 rounds (~30 s)
    python bench/causal_bench.py             # 10,000 reads per scenario, 5 rounds (~3 minutes)

A local cluster (primary + 1 replica, ``rwproxy.dev.cluster``) and rwproxy as its own process
(``python -m rwproxy run``, monitor every 0.5 s, admin HTTP on a free port). One client session per
scenario; every read is ``SELECT v FROM causal_bench WHERE id = 1`` (autocommit):

  a  eventual          an ``eventual`` session: the baseline
  b  ryw, no write     a ``read_your_writes`` session that never wrote (must cost what ``a`` costs)
  c  ryw, after write  each read right after an UPDATE in the same session: the proxy learns the GTID
                       from the OK packet and the monitor has not seen it yet, so the read waits on
                       the replica (MASTER_GTID_WAIT) — the wait path. The read's value is checked
                       (a stale read would be a bug).
  d  ryw, applied      one UPDATE, then wait until the monitor has seen the replica apply it; the
                       reads then go to that replica without waiting (route reason causal_applied)

Per scenario: latency per read (median and p95 of per-read times, client included) and µs of proxy
CPU per read (utime+stime of the rwproxy process over the loop, /proc/PID/stat, 10 ms ticks; it
includes the monitor's own checks, a small constant per second). For
``c`` the loop also runs the writes: the CPU of a write-only loop of the same length (``w``) is
subtracted. Scenarios alternate within each round; the report gives medians over rounds and ratios to
``a``, plus the route reasons each scenario produced (from ``/metrics``), which show the path taken.
This box is shared: absolute numbers are noise, the ratios of one run are the result.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pymysql
from benchlib import (
    REPO,
    RESULTS_DIR,
    Bench,
    Child,
    install_signal_handlers,
    loadavg,
    median,
    timestamp,
)

from rwproxy.dev.cluster import free_port, wait_for_port
from rwproxy.dev.demo import server_tables, user_table

SCENARIOS = {
    "a": "eventual",
    "b": "ryw, never wrote",
    "c": "ryw, right after a write (wait)",
    "d": "ryw, write applied (no wait)",
}
READ = "SELECT v FROM causal_bench WHERE id = 1"
WRITE = "UPDATE causal_bench SET v = v + 1 WHERE id = 1"
_METRIC = re.compile(r'^rwproxy_queries_total\{node="([^"]*)",route_reason="([^"]*)"\} (\S+)$')


@dataclass
class Run:
    round: int
    scenario: str
    reads: int
    latency_us_median: float | None = None
    latency_us_p95: float | None = None
    proxy_cpu_us_per_read: float | None = None
    routes: dict[str, int] = field(default_factory=dict)
    stale: int = 0


def _config(bench: Bench, port: int, admin: int) -> str:
    c = bench.cluster
    assert c is not None
    lines = [
        "[proxy]",
        f'listen = ["127.0.0.1:{port}"]',
        'log_level = "warning"',
        "[admin]",
        f'http_listen = "127.0.0.1:{admin}"',
        "[monitor]",
        "interval_seconds = 0.5",
        *user_table(c),
        *server_tables(c, roles=True),
    ]
    return "\n".join(lines) + "\n"


def _routes(admin: int) -> Counter[str]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    out: Counter[str] = Counter()
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m:
            out[m.group(2)] += int(float(m.group(3)))
    return out


def _session(bench: Bench, port: int, consistency: str) -> pymysql.Connection:
    c = bench.cluster
    assert c is not None
    conn = pymysql.connect(
        host="127.0.0.1",
        port=port,
        user=c.app_user,
        password=c.app_password,
        database=c.database,
        autocommit=True,
        ssl_disabled=True,
    )
    with conn.cursor() as cur:
        cur.execute(f"SET @rwproxy_consistency = '{consistency}'")
    return conn


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    vals = sorted(values)
    return vals[min(len(vals) - 1, int(0.95 * len(vals)))]


def _loop(
    proxy: Child, conn: pymysql.Connection, n: int, *, write: bool, read: bool
) -> tuple[list[float], float, int]:
    """(per-read latencies in µs, proxy CPU seconds over the loop, stale reads)."""
    lat: list[float] = []
    stale = 0
    pc = time.perf_counter
    with conn.cursor() as cur:
        cur.execute("SELECT v FROM causal_bench WHERE id = 1 FOR UPDATE")  # primary: the current value
        value = int(cur.fetchone()[0])
        cpu0 = proxy.cpu()
        for _ in range(n):
            if write:
                cur.execute(WRITE)
                value += 1
            if read:
                t0 = pc()
                cur.execute(READ)
                got = int(cur.fetchone()[0])
                lat.append((pc() - t0) * 1e6)
                if write and got != value:
                    stale += 1
        cpu1 = proxy.cpu()
    assert cpu0 is not None and cpu1 is not None, "rwproxy died"
    return lat, cpu1 - cpu0, stale


def _wait_applied(admin: int, conn: pymysql.Connection, timeout: float = 10.0) -> None:
    """After a write: until a read of this session goes to a replica without waiting."""
    deadline = time.monotonic() + timeout
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            before = _routes(admin)
            cur.execute(READ)
            cur.fetchone()
            if (_routes(admin) - before)["causal_applied"]:
                return
            time.sleep(0.1)
    raise RuntimeError("the monitor did not see the write applied within 10 s")


def run_scenario(bench: Bench, proxy: Child, port: int, admin: int, name: str, n: int, rnd: int) -> Run:
    run = Run(rnd, name, n)
    conn = _session(bench, port, "eventual" if name == "a" else "read_your_writes")
    try:
        if name == "d":
            with conn.cursor() as cur:
                cur.execute(WRITE)
            _wait_applied(admin, conn)
        before = _routes(admin)
        lat, cpu, stale = _loop(proxy, conn, n, write=name == "c", read=True)
        # The reads' route reasons (the writes and the FOR UPDATE are "statement").
        run.routes = {k: v for k, v in (_routes(admin) - before).items() if v and k != "statement"}
        if name == "c":
            fresh = _session(bench, port, "read_your_writes")
            try:
                _, write_cpu, _ = _loop(proxy, fresh, n, write=True, read=False)
            finally:
                fresh.close()
            cpu -= write_cpu
        run.latency_us_median = median(lat)
        run.latency_us_p95 = _p95(lat)
        run.proxy_cpu_us_per_read = cpu / n * 1e6
        run.stale = stale
    finally:
        conn.close()
    return run


def _fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def report(runs: list[Run]) -> list[str]:
    base: dict[str, float | None] = {}
    rows = []
    for name, title in SCENARIOS.items():
        mine = [r for r in runs if r.scenario == name]
        lat = median([r.latency_us_median for r in mine if r.latency_us_median is not None])
        p95 = median([r.latency_us_p95 for r in mine if r.latency_us_p95 is not None])
        cpu = median([r.proxy_cpu_us_per_read for r in mine if r.proxy_cpu_us_per_read is not None])
        if name == "a":
            base = {"lat": lat, "cpu": cpu}
        routes: Counter[str] = Counter()
        for r in mine:
            routes.update(r.routes)
        total = sum(routes.values()) or 1
        mix = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in routes.most_common())
        base_lat, base_cpu = base.get("lat"), base.get("cpu")
        lat_ratio = lat / base_lat if lat is not None and base_lat else None
        cpu_ratio = cpu / base_cpu if cpu is not None and base_cpu else None
        stale = sum(r.stale for r in mine)
        rows.append(
            f"| {name} | {title} | {_fmt(lat)} | {_fmt(p95)} | {_fmt(lat_ratio, 2)} | {_fmt(cpu, 1)} |"
            f" {_fmt(cpu_ratio, 2)} | {mix} | {stale if name == 'c' else '-'} |"
        )
    head = [
        "| | session | latency µs (median) | p95 µs | latency / a | proxy CPU µs/read | CPU / a"
        " | routes | stale |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    return head + rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 reads per scenario, 3 rounds")
    ap.add_argument("--reads", type=int, help="reads per scenario and round (default 10,000; --quick 2,000)")
    ap.add_argument("--rounds", type=int, help="rounds (default 5; --quick 3)")
    args = ap.parse_args(argv)
    n = args.reads or (2000 if args.quick else 10000)
    rounds = args.rounds or (3 if args.quick else 5)
    install_signal_handlers()
    print(f"causal_bench: {n} reads per scenario x {rounds} rounds; load average at start {loadavg()}")
    runs: list[Run] = []
    with Bench(replicas=1) as bench:
        c = bench.start_cluster()
        c.sql(c.primary, "CREATE TABLE rwtest.causal_bench (id INT PRIMARY KEY, v INT NOT NULL)")
        c.sql(c.primary, "INSERT INTO rwtest.causal_bench VALUES (1, 0)")
        c.wait_replicas_caught_up()
        port, admin = free_port(), free_port()
        cfg = bench.tmp / "rwproxy.toml"
        cfg.write_text(_config(bench, port, admin))
        proxy = Child(
            "rwproxy",
            [sys.executable, "-m", "rwproxy", "run", "--config", str(cfg)],
            bench.tmp / "rwproxy.log",
            cwd=REPO,
        )
        bench.proxy = proxy  # stopped by Bench.close()
        proxy.start()
        wait_for_port("127.0.0.1", port, timeout=30)
        wait_for_port("127.0.0.1", admin, timeout=30)
        warm = _session(bench, port, "eventual")
        _loop(proxy, warm, 200, write=False, read=True)  # pools, classifier cache
        warm.close()
        for rnd in range(1, rounds + 1):
            for name in SCENARIOS:
                run = run_scenario(bench, proxy, port, admin, name, n, rnd)
                runs.append(run)
                print(
                    f"round {rnd} {name}: median {_fmt(run.latency_us_median)} µs, "
                    f"cpu {_fmt(run.proxy_cpu_us_per_read, 1)} µs/read, routes {run.routes}"
                )
        versions = bench.versions()
    print()
    for line in report(runs):
        print(line)
    print(f"\nload average at end {loadavg()}; {versions.get('python', '')}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = Path(RESULTS_DIR) / f"causal-{timestamp()}.json"
    out.write_text(json.dumps({"reads": n, "rounds": rounds, "runs": [asdict(r) for r in runs]}, indent=1))
    print(f"raw results: {out}")
    stale = sum(r.stale for r in runs)
    if stale:
        print(f"STALE READS in read_your_writes: {stale}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
