"""One fuzz run against ``rwproxy run`` in front of a cluster, measured: used by the CI test
(``tests/integration/test_fuzz.py``, ~30 s) and the soak (``bench/fuzz_soak.py --seconds 600``).

    report = fuzz_proxy(cluster, workdir, seconds=30, seed=1)
    report.problems()   # [] when every invariant held

The proxy runs as its own process (``ProxyProcess``) with a 1 MiB packet limit, pooled backend
connections closed after 2 s idle and a second user for a healthy client that runs reads and small
write transactions all along (the fuzzer logs in as the cluster's app user, so it cannot KILL it).
Checked: the healthy client never failed, the fuzzer's invariants held (valid logins succeed, a
session's first ping is answered), the proxy is alive and logged no traceback, no session is left,
and the proxy's RSS and the primary's ``Threads_connected`` came back within a bound.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from rwproxy.dev.cluster import free_port
from rwproxy.dev.demo import demo_config_text
from tests.support.fuzz import FuzzStats, FuzzTarget, run_fuzz
from tests.support.proxy_process import ProxyProcess

__all__ = ["RSS_BOUND", "FuzzReport", "fuzz_proxy"]

MiB = 1 << 20
HEALTHY_USER, HEALTHY_PASSWORD = "healthy", "healthy-pw"
HEALTHY_TABLE = "CREATE TABLE IF NOT EXISTS fuzz_healthy (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"
# RSS the proxy may keep after the run over its level after a warm-up round: bounded caches
# (classifier, digests) and allocator slack. A leak of a few KiB per connection crosses it within a
# CI run (~1000 connections); the soak prints the RSS after every round, so a slow climb shows.
RSS_BOUND = 24 * MiB
THREADS_SLACK = 2  # the primary's Threads_connected may differ by this much (monitor reconnects)


@dataclass
class FuzzReport:
    seed: int
    seconds: float
    stats: FuzzStats = field(default_factory=FuzzStats)
    healthy_errors: list[BaseException] = field(default_factory=list)
    healthy_statements: int = 0
    rss_before: int = 0
    rss_after: int = 0
    rss_rounds: list[int] = field(default_factory=list)  # after each round
    threads_before: int = 0
    threads_after: int = 0
    sessions_left: int = -1
    proxy_alive: bool = True
    log_tail: str = ""
    tracebacks: int = 0

    def problems(self) -> list[str]:
        out = []
        if self.healthy_errors:
            out.append(f"the healthy client failed: {self.healthy_errors!r}")
        if self.healthy_statements == 0:
            out.append("the healthy client ran nothing")
        if self.stats.failures:
            out.append(f"fuzzer invariants broken: {self.stats.failures[:10]}")
        if self.stats.total < 50:
            out.append(f"only {self.stats.total} cases ran")
        if not self.proxy_alive:
            out.append("rwproxy died")
        if self.sessions_left != 0:
            out.append(f"{self.sessions_left} sessions left in the proxy")
        if self.rss_after - self.rss_before >= RSS_BOUND:
            out.append(f"RSS grew by {(self.rss_after - self.rss_before) / MiB:.1f} MiB")
        if self.threads_after > self.threads_before + THREADS_SLACK:
            out.append(f"primary Threads_connected {self.threads_before} -> {self.threads_after}")
        if self.tracebacks:
            out.append(f"{self.tracebacks} tracebacks / internal errors in the log")
        return out

    def summary(self) -> str:
        rounds = ", ".join(f"{r / MiB:.1f}" for r in self.rss_rounds)
        return (
            f"seed {self.seed}: {self.stats.total} cases in {self.seconds:g} s; outcomes "
            f"{dict(self.stats.outcomes)}; RSS {self.rss_before / MiB:.1f} -> {self.rss_after / MiB:.1f} MiB "
            f"(after each round: {rounds}); primary Threads_connected {self.threads_before} -> "
            f"{self.threads_after}; healthy statements {self.healthy_statements}\n"
            f"cases: {dict(self.stats.cases)}"
        )


def fuzz_config(cluster: Any, port: int, admin_port: int) -> str:
    text = demo_config_text(cluster, port, admin_port=admin_port)
    text = text.replace("[proxy]\n", f"[proxy]\nmax_packet_size = {MiB}\n", 1)
    return (
        text
        + "\n[[users]]\n"
        + f'name = "{HEALTHY_USER}"\npassword = "{HEALTHY_PASSWORD}"\n'
        + f'backend_user = "{cluster.app_user}"\nbackend_password = "{cluster.app_password}"\n'
        + "\n[backend]\npool_idle_seconds = 2.0\n"
    )


def threads_connected(cluster: Any) -> int:
    return int(cluster.sql(cluster.primary, "SHOW STATUS LIKE 'Threads_connected'")[0][1])


def proxy_sessions(admin_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/status", timeout=10) as r:
        return int(json.load(r)["sessions"])


def _until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return check()


@contextlib.contextmanager
def healthy_client(host: str, port: int, report: FuzzReport) -> Iterator[None]:
    """Reads, and every tenth a write transaction read back, in a loop beside the fuzzer."""
    stop = threading.Event()
    conn = pymysql.connect(
        host=host,
        port=port,
        user=HEALTHY_USER,
        password=HEALTHY_PASSWORD,
        database="rwtest",
        autocommit=True,
        connect_timeout=10,
        read_timeout=30,
    )

    def work() -> None:
        try:
            with conn.cursor() as cur:
                cur.execute(HEALTHY_TABLE)
            i = 0
            while not stop.is_set():
                i += 1
                with conn.cursor() as cur:
                    cur.execute("SELECT %s + 1", (i,))
                    assert cur.fetchone() == (i + 1,)
                    if i % 10 == 0:
                        cur.execute("BEGIN")
                        cur.execute("INSERT INTO fuzz_healthy (v) VALUES (%s)", (i,))
                        cur.execute("SELECT v FROM fuzz_healthy WHERE id = LAST_INSERT_ID()")
                        assert cur.fetchone() == (i,)
                        cur.execute("COMMIT")
                report.healthy_statements += 1
                time.sleep(0.02)
        except BaseException as exc:
            report.healthy_errors.append(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(60)
        conn.close()


def _trouble(log: str, limit: int = 3) -> str:
    """The first ``limit`` tracebacks of ``log``, each with the line before it."""
    lines = log.splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        if len(out) >= limit:
            break
        if "Traceback" in line or "internal error" in line:
            end = i + 1
            while end < len(lines) and lines[end].startswith(" "):
                end += 1
            out.append("\n".join(lines[max(0, i - 1) : end + 1]))
    return "\n...\n".join(out)


def fuzz_proxy(
    cluster: Any,
    workdir: Path,
    *,
    seconds: float,
    seed: int,
    workers: int = 3,
    round_seconds: float = 30.0,
    warmup_seconds: float = 5.0,
    on_round: Callable[[int, FuzzStats, int], None] | None = None,
) -> FuzzReport:
    """Fuzz a fresh proxy process for ``seconds`` (in rounds of ``round_seconds``, each with its own
    seed derived from ``seed``) after a warm-up round; measure and return the report."""
    port, admin_port = free_port(), free_port()
    target = FuzzTarget("127.0.0.1", port, cluster.app_user, cluster.app_password, max_packet_size=MiB)
    report = FuzzReport(seed, seconds)
    with ProxyProcess(fuzz_config(cluster, port, admin_port), workdir) as p:
        time.sleep(1.5)  # the monitor's connections are up (it checks every 0.5 s)
        report.threads_before = threads_connected(cluster)
        with healthy_client(p.host, p.port, report):
            warm = run_fuzz(target, seconds=warmup_seconds, seed=seed + 1_000_000, workers=workers)
            report.stats.failures.extend(warm.failures)
            _until(lambda: proxy_sessions(admin_port) == 1, 20)
            report.rss_before = p.rss_bytes()
            left, n = seconds, 0
            while left > 0 and p.proc is not None and p.proc.poll() is None:
                n += 1
                chunk = min(round_seconds, left)
                stats = run_fuzz(target, seconds=chunk, seed=seed + n - 1, workers=workers)
                report.stats.merge(stats)
                report.rss_rounds.append(p.rss_bytes())
                if on_round is not None:
                    on_round(n, stats, report.rss_rounds[-1])
                left -= chunk
            report.proxy_alive = p.proc is not None and p.proc.poll() is None
        if report.proxy_alive:
            _until(lambda: proxy_sessions(admin_port) == 0, 20)
            report.sessions_left = proxy_sessions(admin_port)
            _until(lambda: threads_connected(cluster) <= report.threads_before + THREADS_SLACK, 30)
            report.rss_after = p.rss_bytes()
        report.threads_after = threads_connected(cluster)
        log = p.log_text()
    report.tracebacks = log.count("Traceback") + log.count("internal error")
    report.log_tail = _trouble(log) or log[-6000:]
    return report
