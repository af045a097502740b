"""Tests of rwproxy.router.rules: user routing rules (regex or digest), first match wins."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from rwproxy.router.digest import digest_text
from rwproxy.router.policy import Target
from rwproxy.router.rules import Rule, RuleSet


@dataclass(frozen=True)
class RC:
    """A stand-in for the config object: only the attributes ``from_config`` reads."""

    route: str
    name: str | None = None
    match_regex: str | None = None
    match_digest: str | None = None


def _no_digest(sql: str) -> str:
    raise AssertionError(f"digester called for {sql!r} although no rule matches by digest")


REPORTS = RC("replica", "reports", match_regex=r"^select .* from reports\b")
ORDERS_BY_ID = RC("primary", "order-by-id", match_digest=digest_text("SELECT * FROM orders WHERE id = 1"))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM reports WHERE day = '2024-01-01'", Target.REPLICA),
        ("select total from REPORTS", Target.REPLICA),
        ("SeLeCt x FrOm Reports", Target.REPLICA),
        ("SELECT * FROM reports_archive", None),  # \b: a different table
        ("INSERT INTO reports VALUES (1)", None),
        ("  SELECT * FROM reports", None),  # anchored at the start of the text
    ],
)
def test_regex_rule_is_case_insensitive(sql: str, expected: Target | None) -> None:
    rules = RuleSet.from_config([REPORTS])
    assert rules.match(sql, _no_digest) is expected


def test_regex_searches_anywhere_unless_anchored() -> None:
    rules = RuleSet.from_config([RC("primary", "audit", match_regex="audit_log")])
    assert rules.match("SELECT COUNT(*) FROM db.AUDIT_LOG WHERE x = 1", _no_digest) is Target.PRIMARY


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM orders WHERE id = 1", Target.PRIMARY),
        ("SELECT * FROM orders WHERE id = 987654", Target.PRIMARY),
        ("select  *  from orders where id='x'", None),  # digest keeps keyword case
        ("SELECT *\n  FROM orders\tWHERE id = 42", Target.PRIMARY),  # whitespace normalised
        ("SELECT * FROM orders WHERE id = 1 -- trailing comment", Target.PRIMARY),
        ("SELECT * FROM orders WHERE id = 1 AND status = 'open'", None),
        ("SELECT * FROM customers WHERE id = 1", None),
    ],
)
def test_digest_rule_matches_when_only_literals_differ(sql: str, expected: Target | None) -> None:
    rules = RuleSet.from_config([ORDERS_BY_ID])
    assert rules.match(sql, digest_text) is expected


def test_digest_rule_uses_the_given_digester() -> None:
    calls: list[str] = []

    def digester(sql: str) -> str:
        calls.append(sql)
        return "DIGEST"

    rules = RuleSet([Rule("d1", Target.REPLICA, digest="OTHER"), Rule("d2", Target.PRIMARY, digest="DIGEST")])
    assert rules.match("SELECT 1", digester) is Target.PRIMARY
    assert calls == ["SELECT 1"]  # computed once, shared by every digest rule


def test_digester_not_called_without_digest_rules() -> None:
    rules = RuleSet.from_config([REPORTS, RC("primary", match_regex="for update")])
    assert rules.match("SELECT 1", _no_digest) is None


def test_first_match_wins() -> None:
    rules = RuleSet.from_config(
        [
            RC("primary", "first", match_regex="orders"),
            RC("replica", "second", match_regex="^select"),
            RC("replica", "third", match_digest=digest_text("SELECT * FROM orders WHERE id = 1")),
        ]
    )
    assert rules.match("SELECT * FROM orders WHERE id = 5", digest_text) is Target.PRIMARY
    assert rules.hits == {"first": 1, "second": 0, "third": 0}
    assert rules.match("SELECT * FROM items", digest_text) is Target.REPLICA
    assert rules.hits == {"first": 1, "second": 1, "third": 0}


def test_digest_rule_before_regex_rule_wins() -> None:
    rules = RuleSet.from_config(
        [
            RC("replica", "by-digest", match_digest=digest_text("SELECT * FROM orders WHERE id = 1")),
            RC("primary", "by-regex", match_regex="orders"),
        ]
    )
    assert rules.match("SELECT * FROM orders WHERE id = 2", digest_text) is Target.REPLICA
    assert rules.match("SELECT * FROM orders", digest_text) is Target.PRIMARY
    assert rules.hits == {"by-digest": 1, "by-regex": 1}


def test_hit_counters() -> None:
    rules = RuleSet.from_config([REPORTS, ORDERS_BY_ID])
    assert rules.hits == {"reports": 0, "order-by-id": 0}
    for sql in [
        "SELECT a FROM reports",
        "SELECT b FROM reports",
        "SELECT * FROM orders WHERE id = 3",
        "SELECT * FROM nowhere",
        "UPDATE orders SET a = 1",
    ]:
        rules.match(sql, digest_text)
    assert rules.hits == {"reports": 2, "order-by-id": 1}


def test_empty_ruleset_is_falsy_and_matches_nothing() -> None:
    empty = RuleSet([])
    assert not empty
    assert bool(empty) is False
    assert empty.match("SELECT 1", _no_digest) is None
    assert empty.hits == {}
    assert not RuleSet.from_config([])
    assert RuleSet.from_config([REPORTS])


def test_from_config_builds_rules() -> None:
    rules = RuleSet.from_config(
        [
            RC("primary", "p", match_regex="x+"),
            RC("replica", None, match_digest="SELECT ?"),
            RC("replica", None, match_regex="y"),
        ]
    )
    assert [r.name for r in rules.rules] == ["p", "rule1", "rule2"]  # unnamed: rule<index>
    assert [r.target for r in rules.rules] == [Target.PRIMARY, Target.REPLICA, Target.REPLICA]
    first = rules.rules[0]
    assert first.regex is not None
    assert first.regex.pattern == "x+"
    assert first.regex.flags & re.IGNORECASE
    assert first.digest is None
    assert rules.rules[1].regex is None
    assert rules.rules[1].digest == "SELECT ?"
    assert rules.hits == {"p": 0, "rule1": 0, "rule2": 0}


def test_from_config_empty_regex_string_means_no_regex() -> None:
    rules = RuleSet.from_config([RC("primary", "empty", match_regex="")])
    assert rules.rules[0].regex is None
    assert rules.match("SELECT 1", _no_digest) is None


def test_rule_without_matcher_never_matches() -> None:
    rules = RuleSet([Rule("nothing", Target.PRIMARY)])
    assert rules  # non-empty
    assert rules.match("SELECT 1", _no_digest) is None
    assert rules.hits == {"nothing": 0}


def test_direct_rule_regex_flags_are_the_callers() -> None:
    """Only from_config adds IGNORECASE; a Rule built directly uses its pattern as compiled."""
    rules = RuleSet([Rule("cs", Target.PRIMARY, regex=re.compile("orders"))])
    assert rules.match("SELECT * FROM orders", _no_digest) is Target.PRIMARY
    assert rules.match("SELECT * FROM ORDERS", _no_digest) is None


def test_rules_with_hint_comment_regex_sees_raw_text() -> None:
    rules = RuleSet.from_config([RC("replica", "hinted", match_regex=r"/\* report \*/")])
    assert rules.match("/* report */ SELECT 1", _no_digest) is Target.REPLICA
