"""What a Grafana dashboard asks Prometheus for: its PromQL expressions, and the metric and label names
they use. Enough PromQL to check a dashboard against a real ``/metrics`` page, not a parser.

    exprs = dashboard_expressions(json.loads(path.read_text()))   # [(where, expr), ...]
    metric_names('sum by (node) (rate(rwproxy_queries_total{job="x"}[5m]))')  # {"rwproxy_queries_total"}
    label_names('sum by (node) (rate(rwproxy_queries_total{job="x"}[5m]))')   # {"node", "job"}
    missing_metrics({"a_total"}, exposition_text)                             # names not exposed
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "dashboard_expressions",
    "exposed_series",
    "label_names",
    "metric_names",
    "missing_metrics",
]

# PromQL words that are not metric names when they stand alone (binary operators, modifiers,
# aggregation keywords, literals). Functions and aggregations are recognised by the "(" after them.
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "inf",
        "nan",
    }
)
_GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)"
_STRING = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`"
_GRAFANA_VAR = r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]"


def _strip_strings_and_vars(expr: str) -> str:
    return re.sub(_GRAFANA_VAR, " ", re.sub(_STRING, '""', expr))


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (``foo_bucket`` stays ``foo_bucket``: that is the series
    Prometheus stores). Grafana's ``label_values(metric, label)`` counts its metric."""
    s = _strip_strings_and_vars(expr)
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\[\]]*\]", " ", s)  # range and subquery durations
    s = re.sub(_GROUPING, " ", s)
    s = re.sub(r"\blabel_values\s*\(([^,()]*),[^()]*\)", r" \1 ", s)
    s = re.sub(r"\blabel_values\s*\([^()]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?\w+", " ", s)
    names: set[str] = set()
    for m in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", s):
        token = m.group()
        if token.lower() in _KEYWORDS or re.match(r"\s*\(", s[m.end() :]):
            continue  # an operator, or a function / aggregation call
        names.add(token)
    return names


def label_names(expr: str) -> set[str]:
    """Label names an expression groups by or matches on."""
    s = _strip_strings_and_vars(expr)
    out: set[str] = set()
    for group in re.findall(_GROUPING, s):
        out.update(x.strip() for x in group.split(",") if x.strip())
    for matchers in re.findall(r"\{([^{}]*)\}", s):
        out.update(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    m = re.search(r"\blabel_values\s*\([^()]*,\s*(\w+)\s*\)", s)
    if m:
        out.add(m.group(1))
    return out


def dashboard_expressions(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every PromQL expression of a dashboard: panel targets (rows' nested panels included) and
    query variables, as (where, expression)."""
    out: list[tuple[str, str]] = []

    def panels(items: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", ()))

    for p in panels(dashboard.get("panels", ())):
        for t in p.get("targets", ()):
            if t.get("expr"):
                out.append((f"panel {p.get('title')!r} target {t.get('refId')}", str(t["expr"])))
    for var in dashboard.get("templating", {}).get("list", ()):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        if isinstance(query, Mapping):
            query = query.get("query")
        if query:
            out.append((f"variable {var.get('name')!r}", str(query)))
    return out


def exposed_series(exposition: str) -> dict[str, set[str]]:
    """Sample name → label names seen on it, from a Prometheus text exposition."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def missing_metrics(names: Iterable[str], exposition: str) -> set[str]:
    """The names among ``names`` with no sample in ``exposition``."""
    exposed = exposed_series(exposition)
    return {n for n in names if n not in exposed}
