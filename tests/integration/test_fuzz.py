"""A bounded protocol fuzz run (tests.support.fuzz) against ``rwproxy run`` in front of the real
cluster: mutated packets before and after login from three threads, while a healthy client (its own
user) runs statements beside them and must never fail. Afterwards the proxy is alive, logged no
traceback, holds no session, and its RSS and the primary's connection count are back within a bound
(tests.support.fuzz_run).

Seeded (``RWPROXY_FUZZ_SEED``, default 20261204) and sized for CI (``RWPROXY_FUZZ_SECONDS``,
default 25 s of fuzzing after a 3 s warm-up; 45-65 s in all). A failure names the seed and the
case. A longer run: ``python bench/fuzz_soak.py --seconds 600`` (``make fuzz-soak``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rwproxy.dev.cluster import Cluster
from tests.support.fuzz_run import fuzz_proxy

pytestmark = pytest.mark.cluster

SEED = int(os.environ.get("RWPROXY_FUZZ_SEED", "20261204"))
SECONDS = float(os.environ.get("RWPROXY_FUZZ_SECONDS", "25"))


def test_fuzz_before_and_after_login_hurts_nobody(cluster: Cluster, tmp_path: Path) -> None:
    report = fuzz_proxy(
        cluster, tmp_path, seconds=SECONDS, seed=SEED, round_seconds=SECONDS, warmup_seconds=3
    )
    print(report.summary())
    problems = report.problems()
    assert not problems, "\n".join([report.summary(), *problems, report.log_tail])
