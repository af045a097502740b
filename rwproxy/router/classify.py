"""Statement classification for read/write splitting: SQL text -> :class:`StatementInfo`.

Tiers, cheapest first (a sqlglot parse costs 50-150 us, more than relaying the result):

1. Scan, no allocation beyond one upper-cased copy: skip leading whitespace, read the first keyword.
   A plain ``SELECT`` with none of the risky tokens in :data:`~rwproxy.router.token_analysis.RISKY`
   returns the shared :data:`PLAIN_SELECT`. Other verbs are decided from their first keywords
   (:mod:`rwproxy.router.verb_scanners`) when the text holds no comment and no ``;`` outside string
   literals.
2. What the scan cannot decide is looked up by its exact text in a small LRU (texts up to
   :data:`TEXT_CACHE_MAX_CHARS`): the final answer, hints and lock names included.
3. Lexing (:func:`rwproxy.router.digest.lex`; skipped for comment-free single statements): comments
   removed (``rwproxy:`` hints collected), executable comments unwrapped, multi-statements split; each
   statement is scanned again.
4. What is still undecided is keyed by its literal-stripped digest in a bounded LRU. On a miss,
   SELECT-like statements (SELECT, VALUES, TABLE, parenthesised queries, DO) are decided by a token
   analysis of the digest (:mod:`rwproxy.router.token_analysis`) - strings and comments are gone, so
   every risky token left is real - and ``WITH ...`` or unknown statements are parsed with sqlglot.
   Unparseable -> primary.

Both caches are transparent: a statement classifies the same with or without them.
Pure code: no I/O, no clock; the only mutable state lives in :class:`Classifier` instances.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

import sqlglot
from sqlglot import exp

from rwproxy.router import classifications as c
from rwproxy.router import sql_scan, token_analysis, verb_scanners
from rwproxy.router.classifications import PLAIN_SELECT
from rwproxy.router.digest import (
    HintDirectives,
    digest_code,
    digest_hash,
    digest_text,
    is_bare,
    lex,
    parse_hint,
    parse_hints,
)
from rwproxy.router.sql_scan import Delegate
from rwproxy.router.statement import Effect, Hint, Kind, PrimaryReason, StatementInfo
from rwproxy.router.token_analysis import analyse_tokens, lock_names
from rwproxy.router.verb_scanners import as_show

__all__ = [
    "PLAIN_SELECT",
    "TEXT_CACHE_MAX_CHARS",
    "TEXT_CACHE_SIZE",
    "Classifier",
    "HintDirectives",
    "classify",
    "digest_hash",
    "digest_text",
    "parse_hint",
    "parse_hints",
]

_R = PrimaryReason
_E = Effect

#: Default entry count of the exact-text cache (never more than the digest cache's ``cache_size``).
TEXT_CACHE_SIZE = 1024
#: Longer texts bypass the exact-text cache, so it holds at most TEXT_CACHE_SIZE texts of this size
#: (about 2 MiB of ASCII SQL at the defaults).
TEXT_CACHE_MAX_CHARS = 2048

# Statements longer than this are not handed to sqlglot (it can take seconds on megabytes of SQL).
_MAX_PARSE_CHARS = 100_000

# Hot-path methods bound once. Not ``from ... import LEAD`` then ``LEAD.match(...)``: CPython 3.11
# compiles a method call on an imported name without LOAD_METHOD (it expects a module there), which
# allocates a bound method per call - measurable on a 1 us fast path.
_lead_match = sql_scan.LEAD.match
_paren_lead_match = sql_scan.PAREN_LEAD.match
_risky_search = token_analysis.RISKY.search
_scanner_for = verb_scanners.SCANNERS.get

# ``effects & LOCK_EFFECTS`` on the Flag costs ~0.5 us (enum machinery in Python); on ints ~0.04 us.
_LOCK_BITS: int = c.LOCK_EFFECTS._value_

_QUERY_VERBS = frozenset({"SELECT", "VALUES", "TABLE"})

_PLAIN_SELECT_HINTED = {h: StatementInfo(Kind.SELECT, hint=h) for h in Hint}


def _seconds(value: str | None) -> float | None:
    """A hint's number of seconds (>= 0), or None when absent or not a number (the hint is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds == seconds else None


def _with_hint(info: StatementInfo, hint: Hint) -> StatementInfo:
    if info is PLAIN_SELECT:
        return _PLAIN_SELECT_HINTED[hint]
    return replace(info, hint=hint)


def _combine(parts: list[StatementInfo]) -> StatementInfo:
    """One StatementInfo for a multi-statement query: primary, effects and names of all statements."""
    effects = _E.NONE
    names: list[str] = []
    autocommit: bool | None = None
    for p in parts:
        effects |= p.effects
        names.extend(n for n in p.names if n not in names)
        if p.autocommit is not None:
            autocommit = p.autocommit
    return StatementInfo(
        kind=parts[0].kind,
        primary_reason=_R.MULTI_STATEMENT,
        effects=effects,
        names=tuple(names),
        reads_user_vars=any(p.reads_user_vars for p in parts),
        read_only_txn=any(p.read_only_txn for p in parts),
        multi_statement=True,
        used_parser=any(p.used_parser for p in parts),
        unparseable=any(p.unparseable for p in parts),
        kill_query=any(p.kill_query for p in parts),
        autocommit=autocommit,
        parts=tuple(parts),
    )


class Classifier:
    """Classifies statements; owns the exact-text and digest LRU caches and the counters.

    ``cache_size`` bounds the digest cache (0 disables both caches); ``text_cache_size`` bounds the
    exact-text cache (default ``min(cache_size, TEXT_CACHE_SIZE)``, 0 disables it).

    Counters (plain ints, read them for metrics): ``fast_path`` statements decided by the keyword scan,
    ``cache_hits`` lookups answered by a cache - the exact-text cache (once per query) or the digest
    cache (once per statement) -, ``cache_misses`` digest-cache misses (statements computed),
    ``text_cache_hits`` / ``text_cache_misses`` exact-text cache lookups (a hit also counts in
    ``cache_hits``), ``parser_used`` sqlglot parses, ``unparseable`` classify() results flagged
    unparseable (a cached unparseable answer counts on every call), ``internal_errors`` classifier bugs
    caught by :meth:`classify` (answered as unparseable). For a multi-statement query ``fast_path``,
    digest-cache ``cache_hits`` and ``cache_misses`` count once per statement.
    """

    def __init__(self, cache_size: int = 10000, text_cache_size: int | None = None) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        if text_cache_size is None:
            text_cache_size = min(cache_size, TEXT_CACHE_SIZE)
        elif text_cache_size < 0:
            raise ValueError("text_cache_size must be >= 0")
        self._cache_size = cache_size
        self._cache: OrderedDict[str, StatementInfo] = OrderedDict()
        self._text_cache_size = text_cache_size if cache_size else 0
        self._text_cache: OrderedDict[str, StatementInfo] = OrderedDict()
        self.fast_path = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.text_cache_hits = 0
        self.text_cache_misses = 0
        self.parser_used = 0
        self.unparseable = 0
        self.internal_errors = 0

    @property
    def cache_len(self) -> int:
        """Number of digests currently cached (always <= cache_size)."""
        return len(self._cache)

    @property
    def text_cache_len(self) -> int:
        """Number of exact texts currently cached (always <= text_cache_size)."""
        return len(self._text_cache)

    def clear_cache(self) -> None:
        self._cache.clear()
        self._text_cache.clear()

    def classify(self, sql: str) -> StatementInfo:
        """Classify one COM_QUERY text. Never raises: an internal error answers "unparseable" (primary)."""
        try:
            return self._classify(sql)
        except Exception:
            self.internal_errors += 1
            self.unparseable += 1
            return c.UNPARSEABLE

    def _classify(self, sql: str) -> StatementInfo:
        m = _lead_match(sql)
        if m is None:
            verb = ""
            bare = False
        else:
            verb = m.group(1).upper()
            if verb == "SELECT":
                if _risky_search(sql.upper()) is None:
                    self.fast_path += 1
                    return PLAIN_SELECT
                bare = False  # not known yet: see below
            else:
                bare = is_bare(sql)
                if bare:
                    scanner = _scanner_for(verb)
                    if scanner is not None:
                        info = scanner(sql, m.end())
                        if isinstance(info, StatementInfo):
                            self.fast_path += 1
                            return info
        # The first keywords did not decide: the exact-text cache, then lexing and the digest cache.
        text_cache = self._text_cache
        cacheable = len(sql) <= TEXT_CACHE_MAX_CHARS and self._text_cache_size > 0
        if cacheable:
            found = text_cache.get(sql)
            if found is not None:
                text_cache.move_to_end(sql)
                self.cache_hits += 1
                self.text_cache_hits += 1
                if found.unparseable:
                    self.unparseable += 1
                return found
            self.text_cache_misses += 1
        if verb == "SELECT" and is_bare(sql):
            # RISKY matched and there is nothing for lex() to strip: straight to the digest cache.
            info = self._cached(sql.strip(), _compute_select)
        elif bare:  # lex() would return sql.strip() as the only statement, without hints
            info = self._one(sql.strip())
        else:
            info = self._lexed(sql)
        if cacheable:
            text_cache[sql] = info
            if len(text_cache) > self._text_cache_size:
                text_cache.popitem(last=False)
        if info.unparseable:
            self.unparseable += 1
        return info

    def _lexed(self, sql: str) -> StatementInfo:
        lexed = lex(sql)
        statements = lexed.statements
        if not statements:
            info = c.EMPTY
        elif len(statements) == 1:
            info = self._one(statements[0])
        else:
            info = _combine([self._one(s) for s in statements])
        hints = lexed.hints
        if hints is not None:
            if hints.route is not None:
                info = _with_hint(info, hints.route)
            max_lag = _seconds(hints.get("max_lag"))
            if max_lag is not None:
                info = replace(info, max_lag=max_lag)
        return info

    def _one(self, code: str) -> StatementInfo:
        """Classify one statement (no comments, no top-level ';')."""
        m = _lead_match(code)
        if m is None:
            p = _paren_lead_match(code)
            if p is not None and code.lstrip().startswith("(") and p.group(1).upper() in _QUERY_VERBS:
                return self._query(code)
            return self._cached(code, self._compute_parsed)
        verb = m.group(1).upper()
        if verb in _QUERY_VERBS:
            return self._query(code)
        if verb == "DO":
            return self._cached(code, _compute_do)
        scanner = _scanner_for(verb)
        if scanner is not None:
            info = scanner(code, m.end())
            if isinstance(info, StatementInfo):
                self.fast_path += 1
                return info
            if isinstance(info, Delegate):
                inner = self._one(code[info.pos :])
                return as_show(inner) if info.as_show else inner
        return self._cached(code, self._compute_parsed)

    def _query(self, code: str) -> StatementInfo:
        if _risky_search(code.upper()) is None:
            self.fast_path += 1
            return PLAIN_SELECT
        return self._cached(code, _compute_select)

    def _cached(self, code: str, compute: Callable[[str, str], StatementInfo]) -> StatementInfo:
        key = digest_code(code)
        cache = self._cache
        info = cache.get(key)
        if info is not None:
            cache.move_to_end(key)
            self.cache_hits += 1
        else:
            self.cache_misses += 1
            info = compute(code, key)
            if self._cache_size:
                cache[key] = info
                if len(cache) > self._cache_size:
                    cache.popitem(last=False)
        if info.effects._value_ & _LOCK_BITS:
            info = replace(info, names=lock_names(code))
        return info

    def _compute_parsed(self, code: str, digest: str) -> StatementInfo:
        """sqlglot decides the statement's verb (WITH ..., unknown statements)."""
        if len(code) > _MAX_PARSE_CHARS:
            return c.UNPARSEABLE
        self.parser_used += 1
        try:
            trees = [t for t in sqlglot.parse(code, read="mysql") if t is not None]
        except Exception:  # ParseError, TokenError, RecursionError on deep nesting, ...
            return c.UNPARSEABLE_PARSED
        if len(trees) != 1:
            return c.UNPARSEABLE_PARSED
        tree = trees[0]
        if isinstance(tree, (exp.Query, exp.Values)):
            info = analyse_tokens(digest, Kind.SELECT, None)
            if info.primary_reason is None:  # belt and braces: the AST agrees with the tokens
                if tree.find(exp.Into) is not None:
                    info = replace(info, primary_reason=_R.SELECT_INTO)
                elif tree.find(exp.Lock) is not None:
                    info = replace(info, primary_reason=_R.LOCKING_READ)
            return replace(info, used_parser=True)
        if isinstance(tree, exp.Insert):
            return replace(c.INSERT, used_parser=True)
        if isinstance(tree, exp.Update):
            return replace(c.UPDATE, used_parser=True)
        if isinstance(tree, exp.Delete):
            return replace(c.DELETE, used_parser=True)
        if isinstance(tree, (exp.Create, exp.Drop, exp.Alter)):
            return replace(c.DDL, used_parser=True)
        # exp.Command (sqlglot's "could not parse this"), a bare expression, or a statement the scan
        # should have recognised but did not (e.g. an odd SET form): its session effects are unknown.
        return c.UNPARSEABLE_PARSED


def _compute_select(code: str, digest: str) -> StatementInfo:
    return analyse_tokens(digest, Kind.SELECT, None)


def _compute_do(code: str, digest: str) -> StatementInfo:
    return analyse_tokens(digest, Kind.DO, _R.OTHER)


_default = Classifier()


def classify(sql: str) -> StatementInfo:
    """Classify with a module-level default :class:`Classifier` (tests, CLI, ``rwproxy explain``)."""
    return _default.classify(sql)
