"""User routing rules from config: regex or digest → primary | replica, first match wins. Pure."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from rwproxy.router.policy import Target

__all__ = ["Rule", "RuleSet"]


class _RuleConfig(Protocol):
    @property
    def name(self) -> str | None: ...
    @property
    def match_regex(self) -> str | None: ...
    @property
    def match_digest(self) -> str | None: ...
    @property
    def route(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    target: Target
    regex: re.Pattern[str] | None = None
    digest: str | None = None


class RuleSet:
    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self._needs_digest = any(r.digest is not None for r in self.rules)
        self.hits: dict[str, int] = {r.name: 0 for r in self.rules}

    @classmethod
    def from_config(cls, rules: Iterable[_RuleConfig]) -> RuleSet:
        built = []
        for i, rc in enumerate(rules):
            target = Target.PRIMARY if rc.route == "primary" else Target.REPLICA
            regex = re.compile(rc.match_regex, re.IGNORECASE) if rc.match_regex else None
            built.append(Rule(rc.name or f"rule{i}", target, regex, rc.match_digest))
        return cls(built)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def match(self, sql: str, digester: Callable[[str], str]) -> Target | None:
        """The target of the first rule matching ``sql`` (``digester`` computes its digest text)."""
        digest = digester(sql) if self._needs_digest else None
        for rule in self.rules:
            if (rule.regex is not None and rule.regex.search(sql)) or (
                rule.digest is not None and rule.digest == digest
            ):
                self.hits[rule.name] += 1
                return rule.target
        return None
