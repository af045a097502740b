"""The drill report's numbers, on synthetic event logs (no cluster, no clock)."""

from __future__ import annotations

import json

import pytest

from rwproxy.drill.events import ERROR, IN_DOUBT, OK, STALE, ReadEvent, StatusSample, WriteEvent
from rwproxy.drill.report import (
    ReportInputs,
    build_report,
    detection,
    read_availability,
    render_text,
    verification,
    write_unavailability,
)


def w(seq: int | None, end: float, outcome: str = OK, code: int | None = None) -> WriteEvent:
    return WriteEvent(seq, 0, end - 0.001, end, outcome, code, "" if code is None else f"error {code}")


def r(end: float, outcome: str = OK, kind: str = "plain", code: int | None = None) -> ReadEvent:
    return ReadEvent(0, kind, end - 0.001, end, outcome, code)


def test_write_unavailability_last_ack_before_to_first_ack_after() -> None:
    writes = [w(1, 0.5), w(2, 1.0), w(3, 1.2, ERROR, 2003), w(4, 1.4, IN_DOUBT, 2013), w(5, 2.75), w(6, 3.0)]
    out = write_unavailability(writes, fault_at=1.1, workload_start=0.0, workload_end=4.0)
    assert out["last_ack_before_outage"] == 1.0
    assert out["first_ack_after_outage"] == 2.75
    assert out["unavailable_seconds"] == pytest.approx(1.75)
    assert out["recovered_seconds_after_fault"] == pytest.approx(1.65)
    assert out["resumed"] is True
    assert out["acknowledged"] == 4


def test_write_in_flight_at_the_fault_does_not_end_the_outage() -> None:
    # seq 3 was acknowledged 5 ms after the kill (it committed before): writes had not resumed
    writes = [w(1, 0.5), w(2, 1.0), w(3, 1.105), w(4, 1.3, ERROR, 2003)]
    out = write_unavailability(writes, fault_at=1.1, workload_start=0.0, workload_end=4.0)
    assert out["resumed"] is False
    assert out["last_ack_before_outage"] == 1.105
    assert out["unavailable_seconds"] == pytest.approx(2.895)


def test_write_outage_that_starts_later_than_the_trigger() -> None:
    # the operator's command returned at 1.0; the failover it asked for hit at ~2.0
    writes = [w(1, 0.9), w(2, 1.5), w(3, 2.0), w(4, 3.4), w(5, 3.5)]
    out = write_unavailability(writes, fault_at=1.0, workload_start=0.0, workload_end=4.0)
    assert (out["last_ack_before_outage"], out["first_ack_after_outage"]) == (2.0, 3.4)
    assert out["recovered_seconds_after_fault"] == pytest.approx(2.4)


def test_write_unavailability_not_resumed_runs_to_the_end() -> None:
    out = write_unavailability([w(1, 0.5), w(2, 0.9, ERROR, 2003)], 1.0, workload_start=0, workload_end=5)
    assert out["resumed"] is False
    assert out["first_ack_after_outage"] is None
    assert out["unavailable_seconds"] == pytest.approx(4.5)
    assert out["recovered_seconds_after_fault"] is None


def test_write_unavailability_without_acks_before_the_fault_counts_from_the_start() -> None:
    out = write_unavailability([w(1, 2.0)], fault_at=1.0, workload_start=0.0, workload_end=3.0)
    assert out["last_ack_before_outage"] == 0.0
    assert out["unavailable_seconds"] == pytest.approx(2.0)


def test_write_gap_without_a_fault() -> None:
    out = write_unavailability([w(1, 0.2), w(2, 1.7), w(3, 1.8)], None, 0.0, 2.0)
    assert out["longest_gap_seconds"] == pytest.approx(1.5)


def test_read_availability_and_longest_gap() -> None:
    reads = [
        r(0.1),
        r(0.2, STALE, "ryw"),
        r(0.3, ERROR, code=2013),
        r(0.4, ERROR, code=2003),
        r(1.5),
        r(1.6, STALE),
    ]
    out = read_availability(reads, 0.0, 2.0)
    assert out["attempted"] == 6
    assert out["answered"] == 4  # a stale read answered: it counts as available
    assert out["errors"] == 2
    assert out["availability_percent"] == pytest.approx(66.67)
    assert out["longest_gap_seconds"] == pytest.approx(1.3)
    assert out["longest_gap_from"] == pytest.approx(0.2)
    assert out["stale"] == 2
    assert out["stale_read_your_writes"] == 1
    assert out["stale_other_sessions"] == 1


def test_read_gap_to_the_end_of_the_workload_counts() -> None:
    out = read_availability([r(0.5), r(0.6, ERROR, code=2003)], 0.0, 3.0)
    assert out["longest_gap_seconds"] == pytest.approx(2.5)  # the error answered nothing
    assert read_availability([], 0.0, 3.0)["availability_percent"] is None


def test_verification_lost_duplicates_in_doubt() -> None:
    writes = [
        w(1, 0.1),
        w(2, 0.2),
        w(3, 0.3),  # acked, missing: lost
        w(4, 0.4, IN_DOUBT, 2013),  # landed
        w(5, 0.5, IN_DOUBT, 2013),  # did not land
        w(6, 0.6, ERROR, 1290),  # errored, did not land: fine
        w(7, 0.7, ERROR, 1062),  # errored but landed: the error was wrong
        w(None, 0.8, ERROR, 2003),  # could not connect: no sequence number
    ]
    rows = {1: 1, 2: 2, 4: 1, 7: 1, 99: 1}
    out = verification(writes, rows)
    assert out["verified"] is True
    assert out["rows"] == 6
    assert out["lost_acknowledged"] == 1
    assert out["lost_acknowledged_seqs"] == [3]
    assert out["duplicates"] == 1
    assert out["duplicate_seqs"] == [2]
    assert out["in_doubt_landed"] == 1
    assert out["in_doubt_not_landed"] == 1
    assert out["errored_but_landed"] == 1
    assert out["errored_but_landed_seqs"] == [7]
    assert out["never_attempted"] == 1
    assert verification(writes, None) == {"verified": False}


def _view(*nodes: tuple[str, str, str], t: float, ok: bool = True) -> StatusSample:
    return StatusSample(t, ok, tuple(nodes))


def test_detection_and_new_primary() -> None:
    samples = [
        _view(("a", "primary", "online"), ("b", "replica", "online"), t=0.0),
        _view(("a", "primary", "shunned"), ("b", "replica", "online"), t=1.3),
        _view(("a", "primary", "offline"), ("b", "primary", "online"), t=2.5),
    ]
    out = detection(samples, fault_at=1.0)
    assert out is not None
    assert out["primary_before"] == "a"
    assert out["detection_seconds"] == pytest.approx(0.3)
    assert out["change"] == ["a: primary/online -> primary/shunned"]
    assert out["new_primary"] == "b"
    assert out["new_primary_seconds"] == pytest.approx(1.5)
    assert out["primary_at_end"] == "b"


def test_detection_none_when_nothing_changed_and_na_without_admin() -> None:
    samples = [_view(("a", "primary", "online"), t=0.0)]
    out = detection(samples, fault_at=1.0)
    assert out is not None
    assert out["detection_seconds"] is None
    assert out["new_primary"] is None
    assert detection(None, 1.0) is None


def test_detection_counts_an_unanswering_admin_as_a_change() -> None:
    samples = [_view(("a", "primary", "online"), t=0.0), _view(t=2.0, ok=False)]
    out = detection(samples, fault_at=1.5)
    assert out is not None
    assert out["detection_seconds"] == pytest.approx(0.5)
    assert out["change"] == ["admin interface stopped answering"]


def test_build_report_is_json_and_text() -> None:
    writes = [w(1, 0.5), w(2, 1.6, IN_DOUBT, 2013), w(3, 2.5)]
    reads = [r(0.4), r(1.9, ERROR, code=2003)]
    inputs = ReportInputs(
        scenario="failover",
        started_at="2026-01-01T00:00:00+00:00",
        workload_start=0.0,
        workload_end=3.0,
        writes=writes,
        reads=reads,
        fault_at=1.0,
        fault={"description": "SIGKILL primary a"},
        samples=None,
        rows={1: 1, 3: 1},
        verify_source="direct",
        primary_before={"server_id": 1, "hostname": "h", "node": "a"},
        primary_after={"error": "2003 cannot connect"},
    )
    report = build_report(inputs)
    assert json.loads(json.dumps(report)) == report
    assert report["client_errors_by_code"] == {"2003": 1, "2013": 1}
    assert report["writes"]["in_doubt"] == 1
    assert report["verification"]["in_doubt_not_landed"] == 1
    text = render_text(report)
    assert "detection        n/a" in text
    assert "LOST ACKNOWLEDGED WRITES 0" in text
    assert "unreachable (2003 cannot connect)" in text


def test_semi_sync_line() -> None:
    from rwproxy.drill.report import semi_sync_text

    assert "RPO 0" in semi_sync_text({"enabled": True, "clients": 2})
    assert "RPO > 0" in semi_sync_text({"enabled": True, "clients": 0})
    assert "RPO > 0" in semi_sync_text({"enabled": False, "clients": None})
    assert semi_sync_text(None).startswith("unknown")


def test_semi_sync_after_the_role_change_line() -> None:
    from rwproxy.drill.report import semi_sync_after_text

    assert semi_sync_after_text({"primary": "db2", "enabled": True, "clients": 1}) == (
        "db2: on, 1 replica(s) acknowledging at the end: RPO 0"
    )
    assert "RPO > 0" in semi_sync_after_text({"primary": "db2", "enabled": False, "clients": 0})
    assert "no replica acknowledging" in semi_sync_after_text({"enabled": True, "clients": 0})
    assert semi_sync_after_text(None) == "unknown at the end"


def test_drill_summary_is_validated() -> None:
    import pytest

    from rwproxy.failover.metrics import drill_summary

    ok = drill_summary({"scenario": "failover", "lost_acknowledged": 0, "read_availability": 0.99, "x": "y"})
    assert ok == {
        "scenario": "failover",
        "lost_acknowledged": 0,
        "duplicates": None,
        "write_outage_seconds": None,
        "read_availability": 0.99,
        "finished_at": None,
    }
    for bad in ({"scenario": "rm -rf"}, {"scenario": "lag", "duplicates": "many"}, [], {}):
        with pytest.raises((ValueError, KeyError)):
            drill_summary(bad)
