"""``rwproxy drill``: run a workload through a running proxy, inject a fault, measure what clients
saw (detection, write outage, read availability, errors by code, lost / duplicate / in-doubt writes,
stale reads) and report it as text and JSON.

Modules: ``events`` (what is recorded), ``workload`` (writer/reader clients), ``faults`` (kill, delay,
switchover, operator command), ``status_watch`` (the proxy's /status over time), ``report`` (the
numbers, pure), ``scenarios`` (the run: ``run_drill``, ``DrillOptions``, ``reverify``), ``cli``
(``rwproxy drill``). Nothing is imported here, so that ``rwproxy`` stays quick to start.
"""
