"""Multiplexing: many idle client sessions over a small backend pool, each with its own state.

Starts a local replication cluster and rwproxy (``python -m rwproxy run``) with
``backend.pool_max_per_server = --pool``, then:

1. opens ``--sessions`` authenticated client sessions (aiomysql), each in one of ``--databases``
   databases and with its own user variable (``SET @v = <i>``), and leaves them idle;
2. reads the backend connections per server (the servers' processlist) and the proxy's RSS;
3. every session runs ``SELECT @v, DATABASE()`` and must see its own values;
4. point-select latency, multiplexing on vs off, side by side: ``--latency-sessions`` sessions of a
   user with ``multiplex = true`` and as many of one with ``multiplex = false`` (same backend
   account) take turns, ``--latency-seconds`` each, ``--rounds`` rounds (order swapped every
   round); p50/p99 from all samples.

    python bench/multiplex_bench.py                  # 10,000 sessions (a few minutes)
    python bench/multiplex_bench.py --sessions 1000  # quick
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiomysql
from benchlib import REPO, Bench, Child, Endpoint, install_signal_handlers, loadavg

from rwproxy.dev.cluster import free_port
from rwproxy.dev.demo import demo_config_text

NOMUX_USER = "nomux"


def raise_fd_limit(sessions: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * sessions + 2000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the proxy child inherits it
    return want


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proxy_config(bench: Bench, port: int, args: argparse.Namespace) -> str:
    c = bench.cluster
    assert c is not None
    text = demo_config_text(c, port, admin_port=args.admin_port)
    # The monitor's own account: the app account's connections on the servers are then the pool's.
    monitor = f'[monitor]\nuser = "{c.monitor_user}"\npassword = "{c.monitor_password}"\n'
    text = text.replace("[monitor]\n", monitor, 1)
    text = text.replace("[proxy]\n", f"[proxy]\nmax_connections = {args.sessions + 1000}\n", 1)
    text += (
        f'\n[[users]]\nname = "{NOMUX_USER}"\npassword = "{c.app_password}"\n'
        f'backend_user = "{c.app_user}"\nbackend_password = "{c.app_password}"\nmultiplex = false\n'
        f"\n[backend]\npool_max_per_server = {args.pool}\npool_wait_timeout_seconds = 60\n"
    )
    return text


def start_proxy(bench: Bench, args: argparse.Namespace) -> Child:
    port = free_port()
    args.admin_port = free_port()
    cfg = bench.tmp / "rwproxy.toml"
    cfg.write_text(proxy_config(bench, port, args))
    bench.proxy = Child(
        "rwproxy",
        [sys.executable, "-m", "rwproxy", "run", "--config", str(cfg)],
        bench.tmp / "rwproxy.log",
        cwd=REPO,
    )
    bench.proxy.start()
    bench.endpoints["rwproxy"] = Endpoint("127.0.0.1", port)
    if not bench._wait_proxy_ready(timeout=60):
        raise RuntimeError(f"rwproxy did not come up:\n{bench.proxy.tail()}")
    return bench.proxy


def backend_connections(bench: Bench) -> dict[str, int]:
    c = bench.cluster
    assert c is not None
    out = {}
    for n in c.nodes:
        rows = c.admin_sql(
            n, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = %s", (c.app_user,)
        )
        role = "primary" if n is c.primary else "replica"
        out[f"{n.name} ({role})"] = int(rows[0][0])
    return out


async def open_sessions(
    ep: Endpoint, user: str, password: str, n: int, dbs: list[str], limit: int
) -> list[Any]:
    sem = asyncio.Semaphore(limit)
    conns: list[Any] = [None] * n
    retries = [0]

    async def one(i: int) -> None:
        async with sem:
            for attempt in range(5):
                try:
                    conn = await asyncio.wait_for(
                        aiomysql.connect(
                            host=ep.host,
                            port=ep.port,
                            user=user,
                            password=password,
                            db=dbs[i % len(dbs)],
                            autocommit=True,
                            connect_timeout=60,
                        ),
                        30,
                    )
                    break
                except (TimeoutError, OSError, aiomysql.OperationalError):  # e.g. a full accept queue
                    retries[0] += 1
                    if attempt == 4:
                        raise
            async with conn.cursor() as cur:
                await cur.execute(f"SET @v = {i}")
            conns[i] = conn

    await asyncio.gather(*(one(i) for i in range(n)))
    if retries[0]:
        print(f"open_sessions: {retries[0]} connection attempts retried (timeout)", flush=True)
    return conns


async def check_state(conns: list[Any], dbs: list[str], limit: int) -> int:
    sem = asyncio.Semaphore(limit)
    good = 0

    async def one(i: int, conn: Any) -> None:
        nonlocal good
        async with sem:
            async with conn.cursor() as cur:
                await cur.execute("SELECT @v, DATABASE()")
                row = await cur.fetchone()
            if row == (i, dbs[i % len(dbs)]):
                good += 1

    await asyncio.gather(*(one(i, c) for i, c in enumerate(conns)))
    return good


async def point_selects(conns: list[Any], seconds: float, samples: list[float]) -> None:
    deadline = time.perf_counter() + seconds

    async def loop(k: int, conn: Any) -> None:
        i = k
        async with conn.cursor() as cur:
            while time.perf_counter() < deadline:
                i = i % 1000 + 1
                t0 = time.perf_counter()
                await cur.execute(f"SELECT c FROM bench_kv WHERE id = {i}")
                await cur.fetchall()
                samples.append(time.perf_counter() - t0)

    await asyncio.gather(*(loop(k, c) for k, c in enumerate(conns)))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000


def mux_counters(args: argparse.Namespace) -> dict[str, float]:
    """rwproxy_multiplex_* and rwproxy_statements_total (summed) from the proxy's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{args.admin_port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {"statements": 0.0}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        base = name.split("{")[0]
        if base == "rwproxy_statements_total":
            out["statements"] += float(value)
        elif base in ("rwproxy_multiplex_handoffs_total", "rwproxy_multiplex_replays_total"):
            out[base[len("rwproxy_multiplex_") : -len("_total")]] = float(value)
        elif base == "rwproxy_multiplex_resets_total":
            out["resets"] = float(value)
    return out


def delta(a: dict[str, float], b: dict[str, float]) -> str:
    d = {k: b.get(k, 0) - a.get(k, 0) for k in b}
    per = d.get("replays", 0) / d["statements"] if d.get("statements") else 0
    return (
        f"{d['statements']:,.0f} statements, {d.get('handoffs', 0):,.0f} handoffs, "
        f"{d.get('resets', 0):,.0f} resets, {d.get('replays', 0):,.0f} replayed commands "
        f"({per:.2f} per statement)"
    )


def servers(bench: Bench) -> str:
    return ", ".join(f"{k}: {v}" for k, v in backend_connections(bench).items())


async def main_async(args: argparse.Namespace, bench: Bench, proxy: Child) -> list[tuple[str, str]]:
    c = bench.cluster
    assert c is not None and proxy.pid is not None
    ep = bench.endpoints["rwproxy"]
    dbs = [f"mux_{i}" for i in range(args.databases)]
    rows: list[tuple[str, str]] = []
    t0 = time.monotonic()
    m0 = mux_counters(args)
    conns = await open_sessions(ep, c.app_user, c.app_password, args.sessions, dbs, args.concurrency)
    took = time.monotonic() - t0
    rows.append(
        (
            f"client sessions (each: one of {args.databases} databases, SET @v = i)",
            f"{len(conns):,} opened in {took:.1f} s",
        )
    )
    m1 = mux_counters(args)
    rows.append(("multiplexing while they logged in and ran SET @v", delta(m0, m1)))
    await asyncio.sleep(1)
    rows.append(("backend connections per server (app account), sessions idle", servers(bench)))
    rows.append(("proxy RSS, sessions idle", f"{rss_mb(proxy.pid):.0f} MB"))
    t0 = time.monotonic()
    good = await check_state(conns, dbs, args.concurrency)
    took = time.monotonic() - t0
    rows.append(
        (
            "sessions that saw their own @v and database (SELECT @v, DATABASE())",
            f"{good:,} / {len(conns):,} in {took:.1f} s",
        )
    )
    m2 = mux_counters(args)
    rows.append(("multiplexing while every session ran SELECT @v, DATABASE()", delta(m1, m2)))
    rows.append(("backend connections per server, after", servers(bench)))
    rows.append(("proxy RSS, after", f"{rss_mb(proxy.pid):.0f} MB"))

    k = args.latency_sessions
    on = await open_sessions(ep, c.app_user, c.app_password, k, ["rwtest"], k)
    off = await open_sessions(ep, NOMUX_USER, c.app_password, k, ["rwtest"], k)
    samples: dict[str, list[float]] = {"on": [], "off": []}
    await point_selects(on + off, 1.0, [])  # warm-up
    m3 = mux_counters(args)
    for r in range(args.rounds):  # alternating, the order swapped every round
        order = (("on", on), ("off", off)) if r % 2 == 0 else (("off", off), ("on", on))
        for label, group in order:
            await point_selects(group, args.latency_seconds, samples[label])
    rows.append(("multiplexing during the latency runs", delta(m3, mux_counters(args))))
    for label in ("on", "off"):
        s = samples[label]
        qps = len(s) / (args.rounds * args.latency_seconds)
        rows.append(
            (
                f"point select, multiplexing {label} ({k} sessions; {args.sessions:,} idle ones open)",
                f"p50 {pct(s, 50):.3f} ms, p99 {pct(s, 99):.3f} ms, "
                f"mean {statistics.fmean(s) * 1000:.3f} ms, {qps:,.0f} qps",
            )
        )
    for conn in conns + on + off:
        conn.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--pool", type=int, default=100, help="backend.pool_max_per_server")
    parser.add_argument("--databases", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64, help="sessions logging in / querying at once")
    parser.add_argument("--latency-sessions", type=int, default=8)
    parser.add_argument("--latency-seconds", type=float, default=5.0, help="per target and round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    install_signal_handlers()
    fds = raise_fd_limit(args.sessions)
    with Bench(replicas=args.replicas) as bench:
        c = bench.start_cluster()
        conn = c.connect(c.primary)
        with conn.cursor() as cur:
            for i in range(args.databases):
                cur.execute(f"CREATE DATABASE IF NOT EXISTS mux_{i}")
            cur.execute(f"CREATE TABLE `{c.database}`.bench_kv (id INT PRIMARY KEY, c VARCHAR(120))")
            cur.executemany(
                f"INSERT INTO `{c.database}`.bench_kv VALUES (%s, %s)",
                [(i, "x" * 100) for i in range(1, 1001)],
            )
        conn.commit()
        conn.close()
        c.wait_replicas_caught_up()
        proxy = start_proxy(bench, args)
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        load = loadavg()
        rows = asyncio.run(main_async(args, bench, proxy))
        print(
            f"\nmultiplex_bench {started}, load average at start {load}, fd limit {fds}, "
            f"pool_max_per_server = {args.pool}, {args.replicas} replica(s), "
            f"proxy: {bench.notes[-1] if bench.notes else ''}\n"
        )
        print("| measure | value |\n|---|---|")
        for name, value in rows:
            print(f"| {name} | {value} |")
        for e in bench.events:
            print(f"event: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
