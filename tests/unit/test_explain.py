"""rwproxy.admin.explain offline: what `rwproxy explain` says without a running proxy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rwproxy.admin.explain import effect_names, explain, lines, offline_topology
from rwproxy.config import load_config
from rwproxy.router.policy import PolicyOptions
from rwproxy.router.rules import RuleSet
from rwproxy.router.statement import Effect
from rwproxy.topology.model import Node, Role, Topology

REPO = Path(__file__).resolve().parents[2]


def _auto_topology() -> Topology:
    # config.topology() with every server on role = "auto": all replicas, no primary
    return Topology(tuple(Node(f"db{i}", "10.0.0.1", 3306 + i, Role.REPLICA) for i in (1, 2, 3)))


def test_auto_roles_take_the_first_server_as_primary_and_say_so() -> None:
    topology, notes = offline_topology(_auto_topology(), ["db1", "db2", "db3"])
    assert topology.primary is not None and topology.primary.name == "db1"
    assert [n.name for n in topology.replicas] == ["db2", "db3"]
    assert any("db1 is taken as the primary" in n for n in notes)
    assert any("--admin" in n for n in notes)
    doc = explain(
        "INSERT INTO t VALUES (1)", topology, RuleSet(()), PolicyOptions(), source="test", notes=notes
    )
    assert (doc["target"], doc["server"]) == ("primary", "db1")


def test_max_lag_hint_goes_to_a_replica_offline() -> None:
    topology, _ = offline_topology(_auto_topology(), [])
    doc = explain("/* rwproxy:max_lag=5 */ SELECT 1", topology, RuleSet(()), PolicyOptions(), source="t")
    assert doc["target"] == "replica" and doc["server"] in ("db2", "db3"), doc


def test_effects_and_reasons_are_words_not_enum_reprs() -> None:
    assert effect_names(Effect.SETS_USER_VAR | Effect.STARTS_TXN) == ["sets user var", "starts txn"]
    assert effect_names(Effect.NONE) == []
    topology, _ = offline_topology(_auto_topology(), [])
    text = "\n".join(lines(explain("SET @x = 1", topology, RuleSet(()), PolicyOptions(), source="t")))
    assert "Effect." not in text and "RouteReason" not in text and "<" not in text
    assert "effects:   sets user var" in text
    assert "route:     primary (db1): the statement needs the primary: it changes session state" in text


def test_the_example_digest_rule_matches_its_example_statement() -> None:
    config = load_config(REPO / "rwproxy.example.toml")
    rules = RuleSet.from_config(config.routing.rules)
    topology, _ = offline_topology(config.topology(), [])
    doc = explain(
        "SELECT qty FROM inventory WHERE sku = 'A-17'", topology, rules, PolicyOptions(), source="t"
    )
    assert doc["digest"] == "SELECT qty FROM inventory WHERE sku = ?"
    assert (doc["rule"], doc["target"]) == ("inventory-fresh", "primary")
    assert rules.hits == {r.name: 0 for r in rules.rules}  # explaining is not a hit


def test_cli_explain_prints_the_digest_and_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rwproxy", "explain", "--json", "SELECT a FROM t WHERE id IN (1, 2, 3)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["digest"] == "SELECT a FROM t WHERE id IN (...)" and doc["target"] == "replica"
