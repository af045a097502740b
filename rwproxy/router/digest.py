"""Lexing helpers shared by the classifier and the query-digest table: statement splitting, comment
removal, routing hints and literal-stripped digests.

Pure code: no I/O, no clock, no global state. Everything here works on MySQL/MariaDB text as a client
sends it (default sql_mode: backslash escapes in strings, ``"..."`` is a string, not an identifier).
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from rwproxy.router.statement import Hint

__all__ = [
    "HintDirectives",
    "Lexed",
    "digest_code",
    "digest_hash",
    "digest_text",
    "is_bare",
    "lex",
    "parse_hint",
    "parse_hints",
]

# One "segment" of code: everything up to the next comment, ';', executable-comment close or unterminated
# quote. Complete string literals and quoted identifiers are consumed whole, so a ';' or '--' inside them
# never stops the scan. Possessive (3.11+): no backtracking on long inputs.
_SEG = re.compile(
    r"""(?:
        [^'"`;\#/*\-]++
      | '(?:[^'\\]|\\.)*+'
      | "(?:[^"\\]|\\.)*+"
      | `[^`]*+`
      | /(?!\*)
      | \*(?!/)
      | -(?!-(?:[\s\x00-\x1f]|\Z))
    )*+""",
    re.S | re.X,
)
_EXEC_OPEN = re.compile(r"/\*M?![0-9]*")
# ``rwproxy:key[=value]``, case-insensitive. Spelled out rather than re.I (3x faster: a first-character
# set, no case folding); under re.I [A-Za-z] also matched U+0130 U+0131 U+017F U+212A, kept here.
_HINT_NAME = "A-Za-z_\u0130\u0131\u017f\u212a"
_HINT_DIRECTIVE = re.compile(
    rf"[Rr][Ww][Pp][Rr][Oo][Xx][Yy]\s*:\s*([{_HINT_NAME}][{_HINT_NAME}0-9]*)(?:\s*=\s*([^\s,*/]+))?"
)
# A first statement that opens a compound statement: its body contains ';' that do not end it.
_COMPOUND_HEAD = re.compile(
    r"""\s*(?:
        (?:CREATE|ALTER)\s+(?:OR\s+REPLACE\s+)?(?:DEFINER\s*=\s*\S+\s+)?(?:AGGREGATE\s+)?
            (?:PROCEDURE|FUNCTION|TRIGGER|EVENT|PACKAGE)\b
      | BEGIN\s+NOT\s+ATOMIC\b
      | (?:IF|CASE|LOOP|REPEAT|WHILE)\b
    )""",
    re.I | re.X,
)
_BEGIN_WORD = re.compile(r"\bBEGIN\b", re.I)

# Literals replaced by '?' in a digest: strings, hex / bit literals, numbers not glued to an identifier.
# Every pattern starts with a character class so sre can skip non-candidate positions in C; the
# lookbehinds after the first character check what precedes it. The most frequent false candidates - a
# digit or a dot glued to a name (t1, sbtest1, t.c) - fail at the first lookbehind; quotes pass it.
_LITERAL_BODY = r"""
    (?<![\w$.][0-9.])
    (?:
        (?<=\.)[0-9]++(?:[eE][-+]?[0-9]++)?(?![\w$])
      | (?<=0)(?:[xX][0-9a-fA-F]++|[bB][01]++)(?![\w$])
      | (?<=[0-9])[0-9]*+(?:\.[0-9]*+)?(?:[eE][-+]?[0-9]++)?(?![\w$])
      | (?<=')(?:[^'\\]|\\.|'')*+'
      | (?<=")(?:[^"\\]|\\.|"")*+"
    )
"""
_LITERAL = re.compile(rf"""['"0-9.]{_LITERAL_BODY}""", re.S | re.X)
_LITERAL_OR_BACKTICK = re.compile(rf"""[`'"0-9.](?:(?<=`)(?:[^`]|``)*+`|{_LITERAL_BODY})""", re.S | re.X)
# Every backquote pair encloses a name that cannot hold the start of a literal (a letter, '_' or '$',
# then word characters: a digit inside follows a word character, so _LITERAL cannot start there). A pair
# that spans a quote (backquotes inside a string literal) fails the test, so it is exact: when it
# passes, _LITERAL.sub gives what _LITERAL_OR_BACKTICK.sub gives, without a Python callback per match.
_PLAIN_BACKTICKS = re.compile(r"(?:[^`]*+`(?:[^\W\d]|\$)[\w$]*+`)*+[^`]*+")
# A '?' glued to a word: what is left of a charset introducer / N / X / B prefix (_utf8mb4'x', X'0F').
_GLUED = re.compile(r"\?(?<=[\w$]\?)")
_INTRODUCER = re.compile(r"(?<![\w$])(?:[xXbBnN]|_[A-Za-z0-9]+)\?")
_IN_LIST = re.compile(r"[Ii](?<![\w$][Ii])[Nn] ?\( ?\?(?: ?, ?\?)*+ ?\)")
_ROW = r"\( ?\?(?: ?, ?\?)*+ ?\)"
_VALUES_ROWS = re.compile(rf"[Vv](?<![\w$][Vv])[Aa][Ll][Uu][Ee][Ss]? ?{_ROW}(?: ?, ?{_ROW})*+")


class HintDirectives(NamedTuple):
    """The ``rwproxy:...`` directives found in the comments of one query.

    ``route`` is the routing hint (``rwproxy:primary`` wins over ``rwproxy:replica`` when both are
    present). ``params`` keeps every ``rwproxy:key=value`` directive (lower-cased key, raw value) in
    order, e.g. ``(("max_lag", "5"),)``: room for hints added later without changing this parser.
    """

    route: Hint | None = None
    params: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        """The value of the last ``rwproxy:key=value`` directive, or None."""
        for k, v in reversed(self.params):
            if k == key:
                return v
        return None

    def comment(self) -> str:
        """Canonical comment form, used in digests: ``/* rwproxy:primary rwproxy:max_lag=5 */``."""
        items = [f"rwproxy:{self.route.value}"] if self.route is not None else []
        items.extend(f"rwproxy:{k}={v}" for k, v in self.params)
        return "/* " + " ".join(items) + " */"


_ROUTE_ONLY = {"primary": HintDirectives(Hint.PRIMARY), "replica": HintDirectives(Hint.REPLICA)}


class Lexed(NamedTuple):
    """A query split into statements.

    Each statement is code: comments replaced by a space, executable comments (``/*! ... */``,
    ``/*!50700 ... */``, ``/*M!100100 ... */``) unwrapped so their content counts as code, string
    literals kept verbatim, surrounding whitespace stripped; empty statements (``;;``, a trailing
    ``;``) dropped. A compound statement (``CREATE PROCEDURE ... BEGIN ...; ... END``, ``BEGIN NOT
    ATOMIC``) is kept whole.
    """

    statements: tuple[str, ...]
    hints: HintDirectives | None


def _directives(comment: str, found: list[tuple[str, str | None]]) -> None:
    if "rwproxy" not in comment.lower():
        return
    # findall: C-level; a directive without "=value" gives "" (a value is never empty).
    found.extend((key.lower(), value or None) for key, value in _HINT_DIRECTIVE.findall(comment))


def _build_hints(found: list[tuple[str, str | None]]) -> HintDirectives | None:
    if len(found) == 1 and found[0][1] is None:  # the usual lone routing hint: shared instances
        shared = _ROUTE_ONLY.get(found[0][0])
        if shared is not None:
            return shared
    route: Hint | None = None
    params: list[tuple[str, str]] = []
    for key, value in found:
        if value is None:
            if key == "primary":
                route = Hint.PRIMARY
            elif key == "replica" and route is None:
                route = Hint.REPLICA
        else:
            params.append((key, value))
    if route is None and not params:
        return None
    return HintDirectives(route, tuple(params))


def _bare_end(sql: str) -> int:
    """End of the leading stretch of ``sql`` free of comments, ``;`` and unterminated quotes."""
    seg = _SEG.match(sql)
    return 0 if seg is None else seg.end()  # never None: the pattern can match the empty string


def lex(sql: str) -> Lexed:
    """Strip comments, collect ``rwproxy:`` hints and split ``sql`` at top-level ``;``."""
    end = _bare_end(sql)
    if end == len(sql):  # no comment, no ';': the common case
        code = sql.strip()
        return Lexed((code,) if code else (), None)
    return _lex_from(sql, end)


def _lex_from(sql: str, end: int) -> Lexed:
    """:func:`lex` of a query whose first comment, ``;`` or unterminated quote is at ``end``."""
    n = len(sql)
    pos = 0
    in_exec = False
    statements: list[str] = []
    current: list[str] = []
    found: list[tuple[str, str | None]] = []
    seg_match = _SEG.match
    while True:
        if end > pos:
            current.append(sql[pos:end])
        if end >= n:
            break
        c = sql[end]
        if c == ";":
            statements.append("".join(current))
            current = []
            pos = end + 1
        elif c == "#" or c == "-":
            nl = sql.find("\n", end)
            stop = n if nl < 0 else nl
            _directives(sql[end:stop], found)
            current.append(" ")
            pos = stop
        elif c == "/":  # '/*'
            m = _EXEC_OPEN.match(sql, end)
            if m is not None:
                in_exec = True
                current.append(" ")
                pos = m.end()
            else:
                close = sql.find("*/", end + 2)
                stop = n if close < 0 else close + 2
                _directives(sql[end:stop], found)
                current.append(" ")
                pos = stop
        elif c == "*":  # '*/' outside a comment: closes an executable comment
            current.append(" " if in_exec else "*/")
            in_exec = False
            pos = end + 2
        else:  # unterminated quote: the rest is one literal
            current.append(sql[end:])
            break
        seg = seg_match(sql, pos)  # never None: the pattern can match the empty string
        end = seg.end() if seg is not None else pos
    statements.append("".join(current))
    if len(statements) > 1 and _COMPOUND_HEAD.match(statements[0]):
        first = statements[0]
        if not first.lstrip()[:6].upper().startswith(("CREATE", "ALTER")) or _BEGIN_WORD.search(first):
            statements = [";".join(statements)]
    if len(statements) == 1:
        code = statements[0].strip()
        kept: tuple[str, ...] = (code,) if code else ()
    else:
        kept = tuple(s for s in (s.strip() for s in statements) if s)
    return Lexed(kept, _build_hints(found) if found else None)


def is_bare(sql: str) -> bool:
    """True when ``sql`` has no comment, no ``;`` and no unterminated quote outside string literals."""
    seg = _SEG.match(sql)  # inlined _bare_end: this is on the classifier's fast path
    return seg is not None and seg.end() == len(sql)


def parse_hints(sql: str) -> HintDirectives | None:
    """All ``rwproxy:`` directives written in comments of ``sql`` (never inside string literals)."""
    if "rwproxy" not in sql.lower():
        return None
    return lex(sql).hints


def parse_hint(sql: str) -> Hint | None:
    """The routing hint of ``sql``: ``/* rwproxy:primary */``, ``/*+ rwproxy:replica */``, ``#`` or ``--``."""
    hints = parse_hints(sql)
    return None if hints is None else hints.route


def _keep_backticks(m: re.Match[str]) -> str:
    text = m.group()
    return text if text[0] == "`" else "?"


def digest_code(code: str) -> str:
    """Digest of one statement already passed through :func:`lex` (no comments, no ``;``)."""
    # A constant replacement lets the whole substitution run in C. Backquoted names that could hold
    # something looking like a literal (`t 1`, `c'2`) need a callback that keeps them intact.
    if "`" not in code or _PLAIN_BACKTICKS.fullmatch(code) is not None:
        text = _LITERAL.sub("?", code)
    else:
        text = _LITERAL_OR_BACKTICK.sub(_keep_backticks, code)
    text = " ".join(text.split())
    if "?" in text:
        if _GLUED.search(text) is not None:
            text = _INTRODUCER.sub("?", text)
        if "(?" in text or "( ?" in text:
            # Plain substring tests first: scanning with a regex costs about 8 ns per character.
            lowered = text.lower()
            if "in (" in lowered or "in(" in lowered:
                text = _IN_LIST.sub("IN (...)", text)
            if "value" in lowered:
                text = _VALUES_ROWS.sub("VALUES (...)", text)
    return text


def digest_text(sql: str) -> str:
    """Literal-stripped, normalized text of a query, for the classification cache and digest tables.

    String, number, hex and bit literals become ``?``; ``IN (?, ?, ...)`` becomes ``IN (...)`` and
    ``VALUES (?, ?), (?, ?)`` becomes ``VALUES (...)``; whitespace is collapsed; comments are removed
    except ``rwproxy:`` hints, which are kept in a canonical leading comment; statements of a
    multi-statement query are joined with ``"; "``; a trailing ``;`` is dropped. Keyword case is kept.
    """
    end = _bare_end(sql)
    if end == len(sql):  # no comment, no ';': one statement (or none: "" digests to "")
        return digest_code(sql.strip())
    lexed = _lex_from(sql, end)
    statements = lexed.statements
    text = digest_code(statements[0]) if len(statements) == 1 else "; ".join(map(digest_code, statements))
    if lexed.hints is not None:
        return f"{lexed.hints.comment()} {text}" if text else lexed.hints.comment()
    return text


def digest_hash(text: str) -> int:
    """Stable unsigned 64-bit hash of a digest text (same value across processes and restarts)."""
    raw = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(raw, "big")
