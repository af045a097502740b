"""Instance-wide admin views with worker processes: the admin ``sessions`` and ``query_digest``
tables and HTTP ``/digests`` show every worker's sessions and statements, not the supervisor's
(which serves no client).

The supervisor asks every serving worker for its rows (``RowsRequest`` / ``RowsReply``,
``WorkerPool.rows``, at most ``REPLY_TIMEOUT`` s: a hung worker's rows are missing, the admin
answers) and merges them here (pure):

* ``merge_sessions``: the rows of every worker, each with its ``worker`` index, by session id;
* ``merge_servers``: per server, the workers' backend connections (idle, in use, lendable),
  client sessions holding one and statements routed to it, summed (the admin ``servers`` and
  ``pools`` tables and ``/status`` per server);
* ``merge_digests``: per digest, counts, times, primary/replica counts and errors summed, the
  largest ``max_time_us``, the earliest ``first_seen``, the first worker's example text;
  ``avg_time_us`` and ``route`` derived again; most used first, as ``DigestTable.rows``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "SERVER_COUNTS",
    "apply_server_counts",
    "instance_digests",
    "instance_rows",
    "instance_servers",
    "merge_digests",
    "merge_servers",
    "merge_sessions",
    "server_rows",
]

Row = dict[str, Any]

_SUMMED = ("count", "total_time_us", "primary_count", "replica_count", "errors")


def merge_sessions(per_worker: Mapping[int, Sequence[Row]]) -> list[Row]:
    """Every worker's session rows, with a ``worker`` column, ordered by session id."""
    out = [{**row, "worker": index} for index, rows in sorted(per_worker.items()) for row in rows]
    out.sort(key=lambda r: r.get("id", 0))
    return out


#: The per-server counts a worker reports (``server_rows``), summed over the workers.
SERVER_COUNTS = ("idle", "in_use", "lendable", "client_sessions", "queries")


def server_rows(app: Any) -> list[Row]:
    """A worker's per-server counts (its part of the ``servers`` view)."""
    from rwproxy.admin.tables import queries_by_server, sessions_by_server
    from rwproxy.observability.metrics import pool_counts

    queries, sessions = queries_by_server(app), sessions_by_server(app)
    rows = []
    for node in app.topology.nodes:
        idle, in_use = pool_counts(app, node)
        lendable = app.pool.parked_count(node.name)
        rows.append(
            {
                "server": node.name,
                "idle": idle,
                "in_use": in_use,
                "lendable": lendable,
                "client_sessions": sessions[node.name],
                "queries": queries[node.name],
            }
        )
    return rows


def merge_servers(per_worker: Iterable[Sequence[Row]]) -> dict[str, Row]:
    """Per server name, the workers' ``SERVER_COUNTS`` summed."""
    out: dict[str, Row] = {}
    for rows in per_worker:
        for row in rows:
            have = out.setdefault(row["server"], dict.fromkeys(SERVER_COUNTS, 0))
            for key in SERVER_COUNTS:
                have[key] += row.get(key, 0)
    return out


def _route(count: int, primary: int) -> str:
    if primary == count:
        return "primary"
    return "replica" if primary == 0 else "mixed"


def merge_digests(per_worker: Iterable[Sequence[Row]]) -> list[Row]:
    """One row per digest over the workers (``DigestStats.as_row`` rows), most used first."""
    merged: dict[str, Row] = {}
    for rows in per_worker:
        for row in rows:
            have = merged.get(row["digest"])
            if have is None:
                merged[row["digest"]] = dict(row)
                continue
            for key in _SUMMED:
                have[key] += row[key]
            have["max_time_us"] = max(have["max_time_us"], row["max_time_us"])
            have["first_seen"] = min(have["first_seen"], row["first_seen"])
    for row in merged.values():
        count = row["count"]
        row["avg_time_us"] = round(row["total_time_us"] / count) if count else 0
        row["route"] = _route(count, row["primary_count"])
    return sorted(merged.values(), key=lambda r: (r["count"], r["total_time_us"]), reverse=True)


async def instance_rows(app: Any, table: str) -> list[Row] | None:
    """The instance-wide rows of admin table ``table`` with worker processes; ``None`` when the
    proxy runs in one process or the table is not per worker (``rwproxy.admin.tables`` builds it)."""
    pool = getattr(app, "workers", None)
    if pool is None or table not in ("sessions", "query_digest", "servers", "pools"):
        return None
    if table in ("servers", "pools"):
        return await _with_server_counts(app, table)
    if table == "sessions":
        replies = await pool.rows("sessions")
        return merge_sessions({index: reply.rows for index, reply in replies.items()})
    from rwproxy.admin.tables import readable_time

    rows, _ = await instance_digests(app)
    return [{**row, "first_seen": readable_time(row["first_seen"])} for row in rows]


async def instance_digests(app: Any) -> tuple[list[Row], int]:
    """Every worker's digest rows merged, and their tables' evictions summed."""
    replies = await app.workers.rows("digests")
    return merge_digests(r.rows for r in replies.values()), sum(r.evicted for r in replies.values())


async def instance_servers(app: Any) -> dict[str, Row]:
    replies = await app.workers.rows("servers")
    return merge_servers(r.rows for r in replies.values())


async def _with_server_counts(app: Any, table: str) -> list[Row]:
    """The supervisor's ``servers``/``pools`` rows with the workers' connection and session counts."""
    from rwproxy.admin.tables import build

    counts = await instance_servers(app)
    rows = build(app, table)
    zero = dict.fromkeys(SERVER_COUNTS, 0)
    for row in rows:
        c = counts.get(row["name" if table == "servers" else "server"], zero)
        if table == "servers":
            row["connections"] = c["idle"] + c["in_use"]
            row["connections_in_use"] = c["in_use"]
            row["client_sessions"] = c["client_sessions"]
            row["queries"] = c["queries"]
        else:
            row["idle"], row["in_use"], row["open"] = c["idle"], c["in_use"], c["idle"] + c["in_use"]
    return rows


def apply_server_counts(doc: dict[str, Any], counts: Mapping[str, Row]) -> None:
    """/status: each server's pool, connections and client sessions of the whole instance."""
    zero = dict.fromkeys(SERVER_COUNTS, 0)
    for node in doc.get("nodes", []):
        c = counts.get(node["name"], zero)
        node["pool"] = {"idle": c["idle"], "in_use": c["in_use"], "lendable": c["lendable"]}
        node["connections"] = c["idle"] + c["in_use"]
        node["client_sessions"] = c["client_sessions"]
