"""A long protocol fuzz soak: the CI fuzz test (tests/integration/test_fuzz.py) for as long as asked.

    python bench/fuzz_soak.py --seconds 600 [--seed N] [--workers 3] [--round 30]

Starts a local replication cluster (rwproxy.dev.cluster) and ``rwproxy run`` in front of it, warms up,
then fuzzes in rounds (each round its own seed, ``seed + round - 1``) with a healthy client beside
the fuzzer; prints the proxy's RSS after every round (a slow leak shows as a climb) and the final
checks: healthy client never failed, fuzzer invariants held, the proxy alive without tracebacks,
no session left, RSS and the primary's Threads_connected back within the bound. Exit code 1 when a
check failed. Everything it starts is stopped at the end (also on Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchlib import install_signal_handlers  # puts the repository on sys.path

from rwproxy.dev.cluster import start_cluster
from tests.support.fuzz import FuzzStats
from tests.support.fuzz_run import fuzz_proxy

MiB = 1 << 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="seconds of fuzzing (default 600)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="default: the current time")
    parser.add_argument("--workers", type=int, default=3, help="fuzzing threads (default 3)")
    parser.add_argument("--round", type=float, default=30.0, help="seconds per round (default 30)")
    args = parser.parse_args(argv)
    install_signal_handlers()
    print(f"fuzz soak: {args.seconds:g} s, seed {args.seed}, {args.workers} workers", flush=True)
    started = time.monotonic()

    def on_round(n: int, stats: FuzzStats, rss: int) -> None:
        elapsed = time.monotonic() - started
        print(
            f"round {n:3d} (seed {args.seed + n - 1}) at {elapsed:6.0f} s: {stats.total:5d} cases, "
            f"{len(stats.failures)} failures, proxy RSS {rss / MiB:.1f} MiB",
            flush=True,
        )

    cluster = start_cluster("auto")
    try:
        with tempfile.TemporaryDirectory(prefix="rwproxy-fuzz-") as tmp:
            report = fuzz_proxy(
                cluster,
                Path(tmp),
                seconds=args.seconds,
                seed=args.seed,
                workers=args.workers,
                round_seconds=args.round,
                on_round=on_round,
            )
    finally:
        cluster.stop()
    print(report.summary())
    problems = report.problems()
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        print(report.log_tail)
        return 1
    print("ok: every check held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
