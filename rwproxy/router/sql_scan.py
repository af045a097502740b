"""Keyword scanning of statement text: the first keyword, the next keyword, (qualified) names, top-level
commas and words; and the answer type of the per-verb scanners.

Every helper takes ``(code, pos)`` and reads forward from ``pos``; none allocates more than the
tokens it returns. ``code`` is a statement as a client sent it or as :func:`rwproxy.router.digest.lex`
left it: string literals intact (``'...'``, ``"..."`` with backslash escapes), identifiers possibly
backquoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rwproxy.router.statement import StatementInfo

__all__ = [
    "IDENT",
    "LEAD",
    "PAREN_LEAD",
    "QIDENT",
    "STR_DQ",
    "STR_SQ",
    "Delegate",
    "Scan",
    "name_list",
    "qualified_name",
    "split_top_level",
    "top_level_word",
    "unquote",
    "word",
]

#: A single- or double-quoted string literal (regex source), default sql_mode: backslash escapes.
STR_SQ = r"'(?:[^'\\]|\\.|'')*'"
STR_DQ = r'"(?:[^"\\]|\\.|"")*"'
#: An identifier, backquoted or bare (regex source).
IDENT = r"`(?:[^`]|``)*`|[A-Za-z0-9_$\u0080-\U0010ffff]+"

#: The first keyword of a statement (group 1), after leading whitespace.
LEAD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_$]*)")
#: The first keyword after leading whitespace and opening parentheses: ``((SELECT ...``.
PAREN_LEAD = re.compile(r"[\s(]*([A-Za-z_][A-Za-z0-9_$]*)")
#: ``name`` or ``qualifier.name`` (groups 1 and 2), either part possibly backquoted.
QIDENT = re.compile(rf"\s*({IDENT})(?:\s*\.\s*({IDENT}))?")

_COMMA = re.compile(r"\s*,")
# Generic tokens for splitting at top-level commas / finding top-level words.
_TOK = re.compile(
    rf"""{STR_SQ}|{STR_DQ}|`(?:[^`]|``)*`|[A-Za-z0-9_$]+|[(),]|[^\sA-Za-z0-9_$'"`(),]+|\s+""",
    re.S | re.X,
)


@dataclass(frozen=True, slots=True)
class Delegate:
    """A scanner's answer "classify the statement starting at ``pos``" (EXPLAIN ANALYZE, SET STATEMENT).

    ``as_show``: the outer statement reports a plan (EXPLAIN ANALYZE, MariaDB ANALYZE) - see
    :func:`rwproxy.router.verb_scanners.as_show`.
    """

    pos: int
    as_show: bool


#: What a per-verb scanner answers: decided, delegated, or None (undecided: lex / parse further).
Scan = StatementInfo | Delegate | None


def word(code: str, pos: int) -> tuple[str, int]:
    """The next keyword (upper-cased) after ``pos`` and the position after it; ``("", pos)`` if none."""
    m = LEAD.match(code, pos)
    if m is None:
        return "", pos
    return m.group(1).upper(), m.end()


def unquote(ident: str) -> str:
    """The name a possibly backquoted identifier stands for: ```a``b``` -> ``a`b``."""
    if ident.startswith("`"):
        return ident[1:-1].replace("``", "`")
    return ident


def qualified_name(code: str, pos: int) -> tuple[str, int] | None:
    """``name`` or ``qualifier.name`` (unquoted) after ``pos`` and the position after it, or None."""
    m = QIDENT.match(code, pos)
    if m is None:
        return None
    name = unquote(m.group(1))
    if m.group(2) is not None:
        name = f"{name}.{unquote(m.group(2))}"
    return name, m.end()


def name_list(code: str, pos: int) -> tuple[str, ...]:
    """The comma-separated (qualified) names after ``pos``: ``t1, d.t2, `t 3```."""
    names: list[str] = []
    while True:
        item = qualified_name(code, pos)
        if item is None:
            break
        names.append(item[0])
        comma = _COMMA.match(code, item[1])
        if comma is None:
            break
        pos = comma.end()
    return tuple(names)


def split_top_level(code: str, pos: int) -> list[str]:
    """``code[pos:]`` split at commas outside parentheses and literals."""
    if code.find(",", pos) < 0:
        return [code[pos:]]
    parts: list[str] = []
    depth = 0
    start = pos
    for m in _TOK.finditer(code, pos):
        t = m.group()
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif t == "," and depth == 0:
            parts.append(code[start : m.start()])
            start = m.end()
    parts.append(code[start:])
    return parts


def top_level_word(code: str, pos: int, keyword: str) -> int | None:
    """Position just after the first ``keyword`` (upper-case) outside parentheses and literals, or None."""
    depth = 0
    for m in _TOK.finditer(code, pos):
        t = m.group()
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0 and t.upper() == keyword:
            return m.end()
    return None
