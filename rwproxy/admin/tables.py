"""The admin tables, built from the running proxy's live state at the moment they are read.

``SCHEMA`` gives every table's columns and SQL types (the admin SQL interface hands it to sqlglot's
executor, so empty tables still have columns); ``build(app, name)`` gives the rows as dicts. Run on the
proxy's event-loop thread: it reads the counters and session objects without locks.

Tables: ``servers``, ``pools``, ``sessions``, ``query_digest``, ``routing_rules``, ``stats``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rwproxy.observability.metrics import node_lag, pool_counts
from rwproxy.topology.model import read_share

if TYPE_CHECKING:
    from rwproxy.admin.ports import AdminSqlHost

__all__ = ["SCHEMA", "TABLES", "build", "queries_by_server", "readable_time", "sessions_by_server"]

Row = dict[str, Any]

SCHEMA: dict[str, dict[str, str]] = {
    "servers": {
        "name": "VARCHAR",
        "host": "VARCHAR",
        "port": "INT",
        "role": "VARCHAR",
        "state": "VARCHAR",
        "reason": "VARCHAR",
        "lag": "DOUBLE",
        "weight": "INT",
        "read_weight": "DOUBLE",
        "connections": "INT",
        "admin_status": "VARCHAR",
        "queries": "BIGINT",
        "connections_in_use": "INT",
        "client_sessions": "INT",
    },
    "pools": {
        "server": "VARCHAR",
        "idle": "INT",
        "in_use": "INT",
        "open": "INT",
        "max": "INT",
    },
    "sessions": {
        "id": "INT",
        "user": "VARCHAR",
        "client_address": "VARCHAR",
        "db": "VARCHAR",
        "in_transaction": "INT",
        "autocommit": "INT",
        "pins": "VARCHAR",
        "backend": "VARCHAR",
        "busy": "INT",
        "commands": "BIGINT",
        "worker": "INT",  # the worker process serving it (rwproxy.workers; 0 in one process)
    },
    "query_digest": {
        "digest": "VARCHAR",
        "digest_id": "VARCHAR",
        "example": "VARCHAR",
        "count": "BIGINT",
        "total_time_us": "BIGINT",
        "avg_time_us": "BIGINT",
        "max_time_us": "BIGINT",
        "route": "VARCHAR",
        "primary_count": "BIGINT",
        "replica_count": "BIGINT",
        "errors": "BIGINT",
        "first_seen": "VARCHAR",
    },
    "routing_rules": {
        "position": "INT",
        "name": "VARCHAR",
        "match_regex": "VARCHAR",
        "match_digest": "VARCHAR",
        "route": "VARCHAR",
        "hits": "BIGINT",
    },
    "stats": {
        "name": "VARCHAR",
        "value": "BIGINT",
    },
}


def queries_by_server(app: Any) -> Counter[str]:
    """Statements routed to each server since start (``rwproxy_queries_total`` summed by node)."""
    out: Counter[str] = Counter()
    for (name, _), n in list(app.stats.routes.items()):
        out[name] += n
    return out


def sessions_by_server(app: Any) -> Counter[str]:
    """Client sessions holding a backend connection to each server now."""
    out: Counter[str] = Counter()
    for session in list(app.sessions.values()):
        for name in getattr(session, "conns", ()):
            out[name] += 1
    return out


def readable_time(epoch: float) -> str:
    """``2026-12-04 18:41:57`` (UTC), for time columns of the admin tables."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _servers(app: AdminSqlHost) -> list[Row]:
    rows = []
    queries = queries_by_server(app)
    sessions = sessions_by_server(app)
    for node in app.topology.nodes:
        idle, in_use = pool_counts(app, node)
        rows.append(
            {
                "name": node.name,
                "host": node.host,
                "port": node.port,
                "role": node.role.value,
                "state": node.state.name,
                "reason": node.reason,
                "lag": node_lag(node),
                "weight": node.weight,
                "read_weight": float(read_share(node)),
                "connections": idle + in_use,
                "admin_status": "OFFLINE" if node.name in app.drained else "ONLINE",
                "queries": queries[node.name],
                "connections_in_use": in_use,
                "client_sessions": sessions[node.name],
            }
        )
    return rows


def _pools(app: AdminSqlHost) -> list[Row]:
    rows = []
    limit = app.config.backend.pool_max_per_server
    for node in app.topology.nodes:
        idle, in_use = pool_counts(app, node)
        open_ = idle + in_use
        rows.append({"server": node.name, "idle": idle, "in_use": in_use, "open": open_, "max": limit})
    return rows


def _sessions(app: AdminSqlHost) -> list[Row]:
    rows = []
    for session in list(app.sessions.values()):
        state = session.state
        pins = []
        if state.temp_tables:
            pins.append("temp_table")
        if state.named_locks:
            pins.append("named_lock")
        if state.tables_locked:
            pins.append("lock_tables")
        if state.sql_prepared:
            pins.append("sql_prepare")
        if state.unreplayable_set:
            pins.append("unreplayable_set")
        active = session.active
        rows.append(
            {
                "id": session.id,
                "user": session.user,
                "client_address": session.peer,
                "db": state.database,
                "in_transaction": int(state.in_transaction),
                "autocommit": int(state.autocommit),
                "pins": ",".join(pins),
                # The server running the current statement, else every server the session holds.
                "backend": active.node_name if active is not None else ",".join(sorted(session.conns)),
                "busy": int(session.busy),
                "commands": session.commands,
                "worker": 0,
            }
        )
    return rows


def _query_digest(app: AdminSqlHost) -> list[Row]:
    rows = app.digests.rows() if app.digests is not None else []
    return [{**row, "first_seen": readable_time(row["first_seen"])} for row in rows]


def _routing_rules(app: AdminSqlHost) -> list[Row]:
    rules = app.routing.rules
    hits = rules.hits
    rows = []
    for i, (rule, rc) in enumerate(zip(rules.rules, app.config.routing.rules, strict=False)):
        rows.append(
            {
                "position": i + 1,
                "name": rule.name,
                "match_regex": rc.match_regex,
                "match_digest": rc.match_digest,
                "route": rule.target.value,
                "hits": hits.get(rule.name, 0),
            }
        )
    return rows


def _stats(app: AdminSqlHost) -> list[Row]:
    s = app.stats
    c = app.classifier
    p = app.pool.stats
    values: list[tuple[str, int]] = [
        ("client_connections", len(app.sessions)),
        ("queries", sum(s.routes.values())),
        ("queries_primary", sum(n for (name, _), n in s.routes.items() if _is_primary(app, name))),
        ("errors", sum(s.errors.values())),
        ("refused_connections", s.refused_connections),
        ("auth_failures", s.auth_failures),
        ("idle_closed", s.idle_closed),
        ("protocol_errors", s.protocol_errors),
        ("replica_fallbacks", s.replica_fallbacks),
        ("replica_read_timeouts", s.read_timeouts),
        ("no_replica_reads", s.no_replica_reads),
        ("no_replica_periods", s.no_replica_periods),
        ("replay_failures", s.replay_failures),
        ("read_only_errors", s.read_only_errors),
        ("universal_reads", s.universal_reads),
        ("universal_position_queries", s.universal_position_queries),
        ("universal_position_failures", s.universal_position_failures),
        ("backend_connections_opened", p.opened),
        ("backend_connections_closed", p.closed),
        ("backend_connections_reused", p.reused),
        ("backend_connect_errors", p.connect_errors),
        ("classifier_fast_path", c.fast_path),
        ("classifier_cache_hits", c.cache_hits),
        ("classifier_cache_misses", c.cache_misses),
        ("classifier_parser_used", c.parser_used),
        ("topology_version", app.topology.version),
        ("servers_drained", len(app.drained)),
        ("query_digests", len(app.digests) if app.digests is not None else 0),
        ("query_digest_evictions", app.digests.evicted if app.digests is not None else 0),
    ]
    for pin, n in sorted(s.pins.items()):
        values.append((f"pins_{pin.lower()}", n))
    return [{"name": name, "value": int(value)} for name, value in values]  # counters: 15, not 15.0


def _is_primary(app: AdminSqlHost, name: str) -> bool:
    primary = app.topology.primary
    return primary is not None and primary.name == name


TABLES: dict[str, Callable[[AdminSqlHost], list[Row]]] = {
    "servers": _servers,
    "pools": _pools,
    "sessions": _sessions,
    "query_digest": _query_digest,
    "routing_rules": _routing_rules,
    "stats": _stats,
}


def build(app: AdminSqlHost, name: str) -> list[Row]:
    """The rows of table ``name`` (a key of ``TABLES``) right now."""
    return TABLES[name](app)
