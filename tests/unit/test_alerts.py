"""The shipped Prometheus alert rules (deploy/prometheus/alerts.yml) load, and each fires on the
series it is meant for and stays quiet on a healthy proxy (promtool, from the Debian prometheus
package that `make test` installs). That their metrics exist on a real rwproxy is checked by
tests/integration/test_dashboard_metrics.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
WANTED = {
    "RwproxyPrimaryLost",
    "RwproxyNoUsableReplica",
    "RwproxyReplicaLagOverLimit",
    "RwproxyFailoverInProgress",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not os.access(PROMTOOL, os.X_OK):
        pytest.fail(
            f"promtool is missing ({PROMTOOL}): it comes with Prometheus, `apt-get install -y prometheus` "
            "(make test does)"
        )
    return subprocess.run([PROMTOOL, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120)


def test_the_rules_load() -> None:
    out = _promtool("check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    names = {
        r["alert"]
        for g in yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    assert names >= WANTED
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    assert "alerts.yml" in config["rule_files"]
    assert _promtool("check", "config", "prometheus.yml").returncode == 0


def test_each_alert_fires_when_it_should_and_only_then() -> None:
    out = _promtool("test", "rules", "alerts_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    tested = (PROM_DIR / "alerts_test.yml").read_text()
    names = {
        r["alert"]
        for g in yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    for name in names:  # every alert has a case where it fires
        assert f"alertname: {name}\n        exp_alerts:" in tested, f"{name} is never shown to fire"


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    """The check can fail: a rule whose expression no longer selects the series does not fire."""
    rules = (
        (PROM_DIR / "alerts.yml").read_text().replace('reason="lag_over_max"', 'reason="lag_over_maximum"')
    )
    (tmp_path / "alerts.yml").write_text(rules)
    shutil.copy(PROM_DIR / "alerts_test.yml", tmp_path / "alerts_test.yml")
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "RwproxyReplicaLagOverLimit" in out.stdout + out.stderr
