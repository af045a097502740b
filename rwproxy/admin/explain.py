"""Where would a statement go, and why: ``rwproxy explain``, admin SQL ``EXPLAIN ROUTE '<sql>'`` and
admin HTTP ``GET /explain?sql=...``.

``explain(sql, topology, rules, options)`` runs the real classifier and routing policy on a fresh
session (autocommit on, no transaction, nothing pinned, eventual consistency) against a topology:
the running proxy's live one (admin SQL / HTTP: the monitor's roles, states and lag) or one built
from a config file (``rwproxy explain -c``: ``role = "auto"`` servers are resolved by guessing, and
lag is unknown; ``--admin`` asks a running proxy instead). The answer is a JSON-able dict; ``lines()``
renders it for people.

The ``digest`` is what a ``[[routing.rules]] match_digest`` must equal, character for character:
``rwproxy.router.digest.digest_text`` (literals -> ``?``, ``IN (...)``, ``VALUES (...)``, whitespace
collapsed, comments dropped except rwproxy hints; keyword case and backquotes as the client wrote
them). Matching rules are not counted in ``routing_rules.hits``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rwproxy.router.classify import Classifier
from rwproxy.router.digest import digest_hash, digest_text
from rwproxy.router.policy import PolicyOptions, Target, route
from rwproxy.router.rules import RuleSet
from rwproxy.router.session_state import SessionState
from rwproxy.router.statement import Effect
from rwproxy.topology.model import Node, Role, Topology

if TYPE_CHECKING:
    from rwproxy.admin.ports import AdminHost

__all__ = ["default_topology", "effect_names", "explain", "lines", "live", "offline_topology"]


def effect_names(effects: Effect) -> list[str]:
    """``Effect.SETS_USER_VAR|STARTS_TXN`` -> ``["sets user var", "starts txn"]`` (no enum reprs)."""
    return [
        m.name.lower().replace("_", " ")
        for m in Effect
        if m.value and m.name is not None and (effects & m) == m
    ]


def _matching_rule(rules: RuleSet, sql: str, digest: str) -> tuple[str, Target] | None:
    for rule in rules.rules:  # RuleSet.match would count a hit
        if (rule.regex is not None and rule.regex.search(sql)) or (
            rule.digest is not None and rule.digest == digest
        ):
            return rule.name, rule.target
    return None


def explain(
    sql: str,
    topology: Topology,
    rules: RuleSet,
    options: PolicyOptions,
    *,
    source: str,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The route of ``sql`` in a fresh session, as a dict. ``source`` says where ``topology`` came
    from (shown to the user)."""
    info = Classifier(0).classify(sql)
    digest = digest_text(sql)
    matched = _matching_rule(rules, sql, digest)
    r = route(info, SessionState(), topology, options, matched[1] if matched else None, 0.0)
    doc: dict[str, Any] = {
        "statement": info.kind.value,
        "parsed_with_sqlglot": info.used_parser,
        "effects": effect_names(info.effects),
        "digest": digest,
        "digest_id": f"{digest_hash(digest):016x}",
        "rule": matched[0] if matched else None,
        "target": r.target.value,
        "server": r.node.name if r.node is not None else None,
        "reason": r.reason.value,
        "statement_reason": r.statement_reason.value if r.statement_reason is not None else None,
        "pin": r.pin.value if r.pin is not None else None,
        "topology": {
            "source": source,
            "version": topology.version,
            "primary": topology.primary.name if topology.primary is not None else None,
            "replicas": [
                {"name": n.name, "state": n.state.value, "lag_seconds": n.lag_seconds}
                for n in topology.replicas
            ],
        },
        "notes": list(notes or ()),
    }
    return doc


def offline_topology(topology: Topology, auto_names: list[str]) -> tuple[Topology, list[str]]:
    """The config's static topology for ``rwproxy explain -c`` without a running proxy. With only
    ``role = "auto"`` servers there is no primary: the first is taken as the primary, and the notes
    say so. Replication lag is unknown offline; replicas are taken as in sync (lag 0) so that
    ``max_lag`` hints show what they do with a healthy replica."""
    notes = []
    nodes = list(topology.nodes)
    if topology.primary is None and nodes:
        nodes[0] = replace(nodes[0], role=Role.PRIMARY)
        notes.append(
            f'role = "auto": the monitor decides at run time; {nodes[0].name} is taken as the primary here'
        )
    elif auto_names:
        notes.append(f'role = "auto" servers taken as replicas: {", ".join(auto_names)}')
    nodes = [n if n.role is Role.PRIMARY else replace(n, lag_seconds=0.0) for n in nodes]
    if any(n.role is Role.REPLICA for n in nodes):
        notes.append("replication lag is unknown without a running proxy: replicas taken as in sync (lag 0)")
    notes.append("for the live topology (roles, states, lag) ask a running proxy: --admin HOST:PORT")
    return Topology(tuple(nodes)), notes


def default_topology() -> Topology:
    return Topology(
        (
            Node("primary", "127.0.0.1", 3306, Role.PRIMARY),
            Node("replica", "127.0.0.1", 3307, Role.REPLICA, lag_seconds=0.0),
        )
    )


def lines(doc: dict[str, Any]) -> list[str]:
    """The explanation for people, as printed by ``rwproxy explain``."""
    kind = doc["statement"] + (" (parsed with sqlglot)" if doc.get("parsed_with_sqlglot") else "")
    out = [f"statement: {kind}"]
    if doc.get("effects"):
        out.append(f"effects:   {', '.join(doc['effects'])}")
    out.append(f"digest:    {doc['digest']}")
    if doc.get("rule"):
        out.append(f"rule:      {doc['rule']}")
    where = doc["target"] + (f" ({doc['server']})" if doc.get("server") else " (none available)")
    detail = doc["reason"]
    if doc.get("statement_reason"):
        detail += f": it {doc['statement_reason']}"
    if doc.get("pin"):
        detail += f": {doc['pin']}"
    out.append(f"route:     {where}: {detail}")
    topo = doc.get("topology") or {}
    replicas = ", ".join(
        f"{r['name']} {r['state']}" + ("" if r.get("lag_seconds") is None else f" lag {r['lag_seconds']:g}s")
        for r in topo.get("replicas", [])
    )
    out.append(
        f"topology:  {topo.get('source', '?')}: primary {topo.get('primary') or '(none)'}"
        + (f"; replicas {replicas}" if replicas else "; no replicas")
    )
    out += [f"note:      {n}" for n in doc.get("notes", [])]
    return out


def live(app: AdminHost, sql: str) -> dict[str, Any]:
    """``explain`` against a running proxy's state (its topology, rules and routing options)."""
    return explain(
        sql,
        app.topology,
        app.routing.rules,
        app.routing.policy_options,
        source=f"live, from the running proxy (topology v{app.topology.version})",
    )
