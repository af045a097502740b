"""``CONNECTION_ID()`` in a statement becomes the rwproxy session id, as a literal.

A client must see one id for its connection: the thread id of the greeting, ``CONNECTION_ID()``, the
``Id`` of SHOW PROCESSLIST and the argument of ``KILL``. The backend's ``CONNECTION_ID()`` is the thread
id of whichever pooled backend connection runs the statement (shared over time by several sessions),
so rwproxy writes the session's id into the text before it is sent:

- in a select-list item the call becomes ``CAST(0000000042 AS UNSIGNED)``, which has the column type
  of ``CONNECTION_ID()`` on MariaDB (LONG UNSIGNED NOT NULL, length 10); an item without an alias gets
  ``AS `<the item as written>``` so its column name stays what a server would name it
  (``CONNECTION_ID()``, ``connection_id( )``, ``CONCAT('c', CONNECTION_ID())``);
- anywhere else (WHERE, VALUES, SET, KILL, DO ...) it becomes the plain number.

Calls inside string literals, comments and quoted names are left alone; calls inside executable
comments (``/*! ... */``) are rewritten. A select-list item whose end may already be an alias
(``CONNECTION_ID() cid``) keeps its text and gets no alias. Pure code, no I/O.

:func:`may_mention` is the cheap pre-filter (one regex search for ``_id(``, case-insensitive); only a
statement that passes it is tokenized by :func:`rewrite_connection_id`.
"""

from __future__ import annotations

import re

__all__ = ["may_mention", "rewrite_connection_id"]

_PREFILTER = re.compile(r"_[Ii][Dd]\s*\(")
_NAMED = re.compile(r"CONNECTION_ID\s*\(", re.I)  # before tokenizing (``user_id(`` passes the pre-filter)

_TOKEN = re.compile(
    r"""(?P<str>'(?:[^'\\]|\\.|'')*'?|"(?:[^"\\]|\\.|"")*"?)
    |(?P<quoted>`(?:[^`]|``)*`?)
    |(?P<xopen>/\*M?![0-9]*)
    |(?P<comment>/\*.*?(?:\*/|\Z)|(?:--(?=[\s]|\Z)|\#)[^\n]*)
    |(?P<xclose>\*/)
    |(?P<word>[A-Za-z0-9_$]+)
    |(?P<space>\s+)
    |(?P<sym>.)""",
    re.S | re.X,
)

# Ends a select list at its own nesting level.
_LIST_END = frozenset(
    {
        "FROM", "INTO", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "WINDOW", "UNION", "EXCEPT",
        "INTERSECT", "FOR", "LOCK", "PROCEDURE", "RETURNING",
    }
)  # fmt: skip
# May open a select list (they are not part of the first item's name).
_SELECT_MODIFIERS = frozenset(
    {
        "ALL", "DISTINCT", "DISTINCTROW", "HIGH_PRIORITY", "STRAIGHT_JOIN", "SQL_SMALL_RESULT",
        "SQL_BIG_RESULT", "SQL_BUFFER_RESULT", "SQL_NO_CACHE", "SQL_CACHE", "SQL_CALC_FOUND_ROWS",
    }
)  # fmt: skip
_OPERATORS = frozenset("+-*/%=<>!|&^~")
_MAX_NAME = 256  # servers cut a column name there


def may_mention(sql: str) -> bool:
    """False when ``sql`` certainly has no ``CONNECTION_ID()`` call (no ``_id(`` in any case)."""
    return _PREFILTER.search(sql) is not None


class _Item:
    """One select-list item being read: its first and last significant token, and its calls."""

    __slots__ = ("first", "has_call", "last", "prev")

    def __init__(self) -> None:
        self.first = -1  # index into the significant tokens
        self.last = -1
        self.prev = -1  # the token before ``last``
        self.has_call = False


def rewrite_connection_id(sql: str, session_id: int) -> str | None:
    """``sql`` with every ``CONNECTION_ID()`` call replaced by ``session_id``; None when it has none."""
    if _NAMED.search(sql) is None:
        return None
    # Significant tokens: (kind, start, end, upper-cased word or the symbol).
    toks: list[tuple[str, int, int, str]] = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        assert kind is not None
        if kind in ("space", "comment", "xopen", "xclose"):
            continue
        text = m.group()
        toks.append((kind, m.start(), m.end(), text.upper() if kind == "word" else text))
    calls: list[int] = []  # index of the CONNECTION_ID word of each call
    for i, (kind, _, _, text) in enumerate(toks):
        if (
            kind == "word"
            and text == "CONNECTION_ID"
            and i + 2 < len(toks)
            and toks[i + 1][3] == "("
            and toks[i + 2][3] == ")"
            and (i == 0 or toks[i - 1][3] != ".")
        ):
            calls.append(i)
    if not calls:
        return None
    call_at = set(calls)
    in_select: set[int] = set()  # calls inside a select-list item (at any depth below it)
    aliases: list[tuple[int, str]] = []  # (insert after this offset, " AS `...`")
    # One frame per parenthesis level: the select-list item open at that level, if any.
    frames: list[_Item | None] = [None]
    open_items: list[_Item] = []

    def close(item: _Item | None) -> None:
        if item is None or item.first < 0:
            return
        if item in open_items:
            open_items.remove(item)
        if not item.has_call:
            return
        last_kind, _, last_end, last_text = toks[item.last]
        prev_text = toks[item.prev][3] if item.prev >= item.first else ""
        unaliased = last_text == ")" or (
            last_kind in ("word", "str") and len(prev_text) == 1 and prev_text in _OPERATORS
        )
        if unaliased:
            name = sql[toks[item.first][1] : last_end][:_MAX_NAME].replace("`", "``")
            aliases.append((last_end, f" AS `{name}`"))

    i = 0
    n = len(toks)
    while i < n:
        kind, _, _, text = toks[i]
        item = frames[-1]
        if kind == "word" and text == "SELECT":
            close(item)
            new = _Item()
            frames[-1] = new
            open_items.append(new)
            j = i + 1
            while j < n and toks[j][0] == "word" and toks[j][3] in _SELECT_MODIFIERS:
                j += 1
            i = j
            continue
        if text == "(":
            frames.append(None)
        elif text == ")":
            if len(frames) > 1:
                close(frames.pop())
            item = frames[-1]
        elif item is not None and (text == "," or text == ";" or (kind == "word" and text in _LIST_END)):
            close(item)
            if text == ",":
                frames[-1] = new = _Item()
                open_items.append(new)
            else:
                frames[-1] = None
            i += 1
            continue
        if i in call_at and open_items:
            for it in open_items:
                it.has_call = True
            in_select.add(i)
        for it in open_items:
            if it.first < 0:
                it.first = i
            it.prev, it.last = it.last, i
        if i in call_at:  # the call's "(" and ")" belong to the item too
            for it in open_items:
                it.prev, it.last = i + 1, i + 2
            i += 3
            continue
        i += 1
    for item in frames:
        close(item)
    edits: list[tuple[int, int, str]] = [(pos, pos, text) for pos, text in aliases]
    plain = str(session_id)
    typed = f"CAST({session_id:010d} AS UNSIGNED)"
    for c in calls:
        edits.append((toks[c][1], toks[c + 2][2], typed if c in in_select else plain))
    # Apply from the end; at one offset the replaced call comes before the alias inserted after it.
    edits.sort(key=lambda e: (e[0], e[1]), reverse=True)
    out = sql
    for start, end, text in edits:
        out = out[:start] + text + out[end:]
    return out
