"""Drill report: the numbers from the recorded events (pure functions), as JSON and as text.

    report = build_report(inputs)      # a JSON-ready dict
    print(render_text(report))

Definitions (all times in seconds since the drill started):

- write unavailability: the longest time without an acknowledged write from the last ack before
  the fault on (writers keep trying throughout): last ack before the outage → first ack after it.
  (Longest, not first: a write in flight when the primary is killed may still be acknowledged just
  after the fault, and an operator's trigger may take effect some time after it ran.) No ack after
  the outage: "not resumed", and the window runs to the end of the workload.
- read availability: reads that answered (fresh or stale) / reads attempted; longest read gap: the
  longest time between two answered reads (the workload's start and end count as edges).
- detection: the first ``/status`` sample after the fault whose (role, state) view differs from the
  last one before it; new primary: the first sample after the fault with a different ONLINE primary.
- lost acknowledged writes: acknowledged, but not in the table on the primary afterwards;
  duplicates: a sequence number present more than once; in-doubt writes (connection lost mid-
  statement) are split into landed / not landed; errored writes that landed anyway are listed too.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rwproxy.drill.events import ERROR, IN_DOUBT, OK, STALE, ReadEvent, StatusSample, WriteEvent

__all__ = [
    "ReportInputs",
    "build_report",
    "detection",
    "read_availability",
    "render_text",
    "verification",
    "write_unavailability",
]

_LIST_LIMIT = 20  # sequence numbers listed in the report per category (counts are always complete)


@dataclass
class ReportInputs:
    scenario: str
    started_at: str  # wall clock, ISO 8601
    workload_start: float
    workload_end: float
    writes: Sequence[WriteEvent]
    reads: Sequence[ReadEvent]
    fault_at: float | None = None
    fault_end: float | None = None
    fault: dict[str, Any] = field(default_factory=dict)  # description, target, error...
    samples: Sequence[StatusSample] | None = None  # None: no admin address given
    rows: Mapping[int, int] | None = None  # seq -> copies on the primary afterwards; None: unverified
    verify_source: str | None = None
    verify_error: str | None = None
    primary_before: dict[str, Any] | None = None
    primary_after: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The primary's semi-sync state when the drill started (/status failover.semi_sync), or None.
    semi_sync: dict[str, Any] | None = None
    # ... and when it ended (after the role change: the new primary's), or None.
    semi_sync_after: dict[str, Any] | None = None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def write_unavailability(
    writes: Sequence[WriteEvent], fault_at: float | None, workload_start: float, workload_end: float
) -> dict[str, Any]:
    acks = sorted(w.end for w in writes if w.outcome == OK)
    out: dict[str, Any] = {"acknowledged": len(acks)}
    if fault_at is None:
        edges = [workload_start, *acks, workload_end]
        gap = max((b - a for a, b in itertools.pairwise(edges)), default=0.0)
        out["longest_gap_seconds"] = _r(gap)
        return out
    before = [t for t in acks if t <= fault_at]
    edges = [before[-1] if before else workload_start, *(t for t in acks if t > fault_at), workload_end]
    gap, i = max((b - a, i) for i, (a, b) in enumerate(itertools.pairwise(edges)))
    resumed = i + 2 < len(edges)  # the gap ends at an ack, not at the end of the workload
    out.update(
        {
            "last_ack_before_outage": _r(edges[i]),
            "first_ack_after_outage": _r(edges[i + 1]) if resumed else None,
            "resumed": resumed,
            "unavailable_seconds": _r(gap),
            "recovered_seconds_after_fault": _r(edges[i + 1] - fault_at) if resumed else None,
        }
    )
    return out


def read_availability(
    reads: Sequence[ReadEvent], workload_start: float, workload_end: float
) -> dict[str, Any]:
    attempted = len(reads)
    answered = sorted(r.end for r in reads if r.outcome in (OK, STALE))
    errors = sum(1 for r in reads if r.outcome == ERROR)
    edges = [workload_start, *answered, workload_end]
    gap, gap_from = 0.0, workload_start
    for a, b in itertools.pairwise(edges):
        if b - a > gap:
            gap, gap_from = b - a, a
    by_kind: dict[str, dict[str, int]] = {}
    for r in reads:
        counts = by_kind.setdefault(r.kind, {"attempted": 0, OK: 0, STALE: 0, ERROR: 0})
        counts["attempted"] += 1
        counts[r.outcome] += 1
    return {
        "attempted": attempted,
        "answered": len(answered),
        "errors": errors,
        "stale": sum(1 for r in reads if r.outcome == STALE),
        "stale_read_your_writes": by_kind.get("ryw", {}).get(STALE, 0),
        "stale_other_sessions": by_kind.get("plain", {}).get(STALE, 0),
        "availability_percent": None if attempted == 0 else round(100.0 * len(answered) / attempted, 2),
        "longest_gap_seconds": _r(gap),
        "longest_gap_from": _r(gap_from),
        "by_kind": by_kind,
    }


def detection(samples: Sequence[StatusSample] | None, fault_at: float | None) -> dict[str, Any] | None:
    """When the proxy's view changed after the fault, and whether a new primary appeared. None
    when there was no admin address (reported as "n/a")."""
    if samples is None:
        return None
    ordered = sorted(samples, key=lambda s: s.t)
    last = ordered[-1] if ordered else None
    out: dict[str, Any] = {
        "samples": len(ordered),
        "primary_at_end": last.primary() if last and last.ok else None,
        "view_at_end": {n: f"{role}/{state}" for n, role, state in last.nodes} if last else {},
    }
    if fault_at is None:
        return out
    baseline = next((s for s in reversed(ordered) if s.t <= fault_at and s.ok), None)
    out["primary_before"] = baseline.primary() if baseline else None
    base_view = baseline.view() if baseline else {}
    after = [s for s in ordered if s.t > fault_at]
    changed = next((s for s in after if not s.ok or s.view() != base_view), None)
    if changed is not None:
        out["detected_at"] = _r(changed.t)
        out["detection_seconds"] = _r(changed.t - fault_at)
        if not changed.ok:
            out["change"] = ["admin interface stopped answering"]
        else:
            view = changed.view()
            unknown = ("?", "?")
            out["change"] = [
                f"{name}: {'/'.join(base_view.get(name, unknown))} -> {'/'.join(view.get(name, unknown))}"
                for name in sorted(set(base_view) | set(view))
                if base_view.get(name) != view.get(name)
            ]
    else:
        out["detected_at"] = out["detection_seconds"] = None
        out["change"] = []
    before = out["primary_before"]
    new = next((s for s in after if s.ok and s.primary() not in (None, before)), None)
    out["new_primary"] = new.primary() if new else None
    out["new_primary_at"] = _r(new.t) if new else None
    out["new_primary_seconds"] = _r(new.t - fault_at) if new else None
    lags = [s.lags for s in ordered if s.lags]
    if lags:
        names = sorted({n for lag in lags for n in lag})
        out["max_lag_seconds"] = {
            n: max((v for lag in lags if (v := lag.get(n)) is not None), default=None) for n in names
        }
    return out


def verification(writes: Sequence[WriteEvent], rows: Mapping[int, int] | None) -> dict[str, Any]:
    """Compare what the writers were told with what the table holds (``rows``: seq → copies)."""
    if rows is None:
        return {"verified": False}
    acked = [w.seq for w in writes if w.outcome == OK and w.seq is not None]
    in_doubt = [w.seq for w in writes if w.outcome == IN_DOUBT and w.seq is not None]
    errored = [w.seq for w in writes if w.outcome == ERROR and w.seq is not None]
    attempted = set(acked) | set(in_doubt) | set(errored)
    lost = sorted(s for s in acked if rows.get(s, 0) == 0)
    dups = sorted(s for s, n in rows.items() if n > 1)
    landed = sorted(s for s in in_doubt if rows.get(s, 0) > 0)
    missing = sorted(s for s in in_doubt if rows.get(s, 0) == 0)
    errored_landed = sorted(s for s in errored if rows.get(s, 0) > 0)
    unknown = sorted(s for s in rows if s not in attempted)
    return {
        "verified": True,
        "rows": sum(rows.values()),
        "lost_acknowledged": len(lost),
        "lost_acknowledged_seqs": lost[:_LIST_LIMIT],
        "duplicates": len(dups),
        "duplicate_seqs": dups[:_LIST_LIMIT],
        "in_doubt_landed": len(landed),
        "in_doubt_not_landed": len(missing),
        "errored_but_landed": len(errored_landed),
        "errored_but_landed_seqs": errored_landed[:_LIST_LIMIT],
        "never_attempted": len(unknown),
    }


def _by_code(events: Sequence[WriteEvent | ReadEvent]) -> dict[str, int]:
    counts = Counter(
        str(e.code if e.code is not None else "none") for e in events if e.outcome in (ERROR, IN_DOUBT)
    )
    return dict(sorted(counts.items()))


def _examples(events: Sequence[WriteEvent | ReadEvent]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in events:
        if e.outcome in (ERROR, IN_DOUBT):
            out.setdefault(str(e.code if e.code is not None else "none"), e.message[:200])
    return dict(sorted(out.items()))


def build_report(i: ReportInputs) -> dict[str, Any]:
    writes = list(i.writes)
    reads = list(i.reads)
    wr = write_unavailability(writes, i.fault_at, i.workload_start, i.workload_end)
    wr.update(
        {
            "attempted": len(writes),
            "errors": sum(1 for w in writes if w.outcome == ERROR),
            "in_doubt": sum(1 for w in writes if w.outcome == IN_DOUBT),
            "errors_by_code": _by_code(writes),
        }
    )
    rd = read_availability(reads, i.workload_start, i.workload_end)
    rd["errors_by_code"] = _by_code(reads)
    all_events: list[WriteEvent | ReadEvent] = [*writes, *reads]
    check = verification(writes, i.rows)
    check["source"] = i.verify_source
    if i.verify_error:
        check["error"] = i.verify_error
    return {
        "scenario": i.scenario,
        "started_at": i.started_at,
        "duration_seconds": _r(i.workload_end - i.workload_start),
        "settings": i.settings,
        "fault": {**i.fault, "at": _r(i.fault_at), "end": _r(i.fault_end)},
        "detection": detection(i.samples, i.fault_at),
        "writes": wr,
        "reads": rd,
        "client_errors_by_code": _by_code(all_events),
        "error_examples": _examples(all_events),
        "verification": check,
        "primary_before": i.primary_before,
        "primary_after": i.primary_after,
        "semi_sync": i.semi_sync,
        "semi_sync_after": i.semi_sync_after,
        "notes": list(i.notes),
    }


def semi_sync_text(semi: Mapping[str, Any] | None) -> str:
    """One line on what a failover may lose: RPO is 0 only with semi-sync on and an acknowledging
    replica when the primary dies."""
    if not semi or semi.get("enabled") is None:
        return "unknown (no --admin address, or the proxy has not read it)"
    if not semi["enabled"]:
        return "off at the start: a failover may lose acknowledged writes (RPO > 0)"
    clients = semi.get("clients")
    if not clients:
        return "on but no replica acknowledging at the start: RPO > 0 (writes wait, then go async)"
    return f"on, {clients} replica(s) acknowledging at the start: RPO 0 expected"


def semi_sync_after_text(semi: Mapping[str, Any] | None) -> str:
    """The same at the end of the drill: after a failover or switchover RPO is 0 again only if the
    new primary runs semi-sync with an acknowledging replica."""
    if not semi or semi.get("enabled") is None:
        return "unknown at the end"
    who = f"{semi['primary']}: " if semi.get("primary") else ""
    if not semi["enabled"]:
        return f"{who}off at the end: RPO > 0"
    clients = semi.get("clients")
    if not clients:
        return f"{who}on but no replica acknowledging at the end: RPO > 0"
    return f"{who}on, {clients} replica(s) acknowledging at the end: RPO 0"


# --- text -------------------------------------------------------------------------------------------
def _s(x: Any, unit: str = " s") -> str:
    return "n/a" if x is None else f"{x:.3f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def _server(p: Mapping[str, Any] | None) -> str:
    if not p:
        return "unknown"
    if p.get("error"):
        return f"unreachable ({p['error']})"
    name = f"{p['node']} " if p.get("node") else ""
    return f"{name}(server_id {p.get('server_id')}, {p.get('hostname')})"


def render_text(r: Mapping[str, Any]) -> str:
    f, w, rd, v, d = r["fault"], r["writes"], r["reads"], r["verification"], r["detection"]
    lines = [
        f"rwproxy drill: {r['scenario']}   started {r['started_at']}, ran {_s(r['duration_seconds'])}",
        "",
        f"fault            {f.get('description', 'none')}"
        + (f" at t={_s(f.get('at'))}" if f.get("at") is not None else "")
        + (f", restored at t={_s(f.get('end'))}" if f.get("end") is not None else ""),
    ]
    if f.get("error"):
        lines.append(f"                 FAULT FAILED: {f['error']}")
    if d is None:
        lines.append("detection        n/a (no --admin address)")
    else:
        if "detection_seconds" in d:
            det = d["detection_seconds"]
            lines.append(
                "detection        "
                + (f"{_s(det)} after the fault: {'; '.join(d['change'])}" if det is not None else "none")
            )
            new = d.get("new_primary")
            if new or r["scenario"] in ("failover", "switchover"):
                lines.append(
                    "new primary      "
                    + (
                        f"{new} after {_s(d.get('new_primary_seconds'))}"
                        if new
                        else "none appeared (proxy view)"
                    )
                )
        if d.get("max_lag_seconds"):
            lags = ", ".join(f"{n} {_s(x)}" for n, x in d["max_lag_seconds"].items())
            lines.append(f"max lag seen     {lags}")
    if r["scenario"] in ("failover", "switchover"):
        lines.append(f"semi-sync        {semi_sync_text(r.get('semi_sync'))}")
        if r.get("semi_sync_after") is not None:
            lines.append(f"                 {semi_sync_after_text(r.get('semi_sync_after'))}")
    lines.append(f"primary before   {_server(r.get('primary_before'))}")
    lines.append(f"primary after    {_server(r.get('primary_after'))}")
    lines.append("")
    lines.append(
        f"writes           {w['attempted']} attempted, {w['acknowledged']} acknowledged, "
        f"{w['errors']} errors, {w['in_doubt']} in doubt"
    )
    if "unavailable_seconds" in w:
        resumed = (
            f"writes back {_s(w['recovered_seconds_after_fault'])} after the fault"
            if w["resumed"]
            else "writes did NOT resume before the end"
        )
        lines.append(
            f"write outage     {_s(w['unavailable_seconds'])} (last ack t={_s(w['last_ack_before_outage'])}"
            f" -> first ack t={_s(w['first_ack_after_outage'])}); {resumed}"
        )
    elif "longest_gap_seconds" in w:
        lines.append(f"write gap        longest {_s(w['longest_gap_seconds'])} between acks")
    avail = rd["availability_percent"]
    lines.append(
        f"reads            {rd['attempted']} attempted, {rd['answered']} answered "
        f"({'n/a' if avail is None else f'{avail:.2f} %'}), {rd['errors']} errors, "
        f"longest gap {_s(rd['longest_gap_seconds'])}"
    )
    lines.append(
        f"stale reads      {rd['stale']} ({rd['stale_read_your_writes']} read-your-writes, "
        f"{rd['stale_other_sessions']} other sessions' acknowledged writes)"
    )
    codes = r["client_errors_by_code"]
    lines.append(
        "client errors    " + (", ".join(f"{c}: {n}" for c, n in codes.items()) if codes else "none")
    )
    for code, msg in r.get("error_examples", {}).items():
        lines.append(f"  {code:>6}  {msg}")
    lines.append("")
    if v.get("verified"):
        lost = v["lost_acknowledged"]
        lines.append(
            f"verification     {v['rows']} rows on the primary ({v.get('source')}): "
            f"LOST ACKNOWLEDGED WRITES {lost}, duplicates {v['duplicates']}"
        )
        if lost:
            lines.append(f"  lost seqs: {v['lost_acknowledged_seqs']}")
        lines.append(
            f"in-doubt writes  {v['in_doubt_landed']} landed, {v['in_doubt_not_landed']} did not; "
            f"errored but landed {v['errored_but_landed']}"
        )
    else:
        lines.append(f"verification     NOT DONE: {v.get('error', 'no primary to read from')}")
    for note in r.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)
