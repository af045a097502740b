"""Monitor.report_unreachable / suspected: a session's connect failure is evidence until a check
that started after it has ended (write buffering does not trust the primary meanwhile)."""

from __future__ import annotations

from rwproxy.config import MonitorConfig, ServerConfig
from rwproxy.topology import monitor as monitor_mod
from tests.unit.test_health import WRITABLE, FakeServers, _wait
from tests.unit.test_health import fake as fake


async def test_reported_failure_is_suspected_until_a_later_check_ends(fake: FakeServers) -> None:
    fake.results = {"a": WRITABLE}
    m = monitor_mod.Monitor(
        [ServerConfig(name="a", host="a")],
        MonitorConfig(interval_seconds=30),
        user="mon",
        password="pw",
        on_topology=lambda t: None,
    )
    await m.start()
    try:
        assert fake.calls["a"] == 1 and not m.suspected("a")
        m.report_unreachable("a")
        m.report_unreachable("nonexistent")  # ignored
        assert m.suspected("a") and not m.suspected("nonexistent")
        await _wait(lambda: fake.calls["a"] == 2, timeout=1.0)  # checked at once, not in 30 s
        await _wait(lambda: not m.suspected("a"), timeout=1.0)  # ... and that check cleared it
    finally:
        await m.stop()
