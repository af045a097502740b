"""Statement classification for read/write splitting: SQL text -> :class:`StatementInfo`.

Three tiers, cheapest first (a sqlglot parse costs 50-150 us, more than relaying the result):

1. Scan, no allocation beyond one upper-cased copy: skip leading whitespace, read the first keyword.
   A plain ``SELECT`` with none of the risky tokens in :data:`_RISKY` returns the shared
   :data:`PLAIN_SELECT`. Other verbs are decided from their first keywords when the text holds no
   comment and no ``;`` outside string literals.
2. Lexing (:func:`proxy.router.digest.lex`): comments removed (``rwproxy:`` hints collected),
   executable comments unwrapped, multi-statements split; each statement is scanned again.
3. What the scan cannot decide is keyed by its literal-stripped digest in a bounded LRU. On a miss,
   SELECT-like statements (SELECT, VALUES, TABLE, parenthesised queries, DO) are decided by a token
   analysis of the digest - strings and comments are gone, so every risky token left is real - and
   ``WITH ...`` or unknown statements are parsed with sqlglot. Unparseable -> primary.

Pure code: no I/O, no clock; the only mutable state lives in :class:`Classifier` instances.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import sqlglot
from sqlglot import exp

from proxy.router.digest import (
    HintDirectives,
    digest_code,
    digest_hash,
    digest_text,
    is_bare,
    lex,
    parse_hint,
    parse_hints,
)
from proxy.router.statement import Effect, Hint, Kind, PrimaryReason, StatementInfo

__all__ = [
    "PLAIN_SELECT",
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

#: The shared result for every plain read. Never mutate it (it is frozen anyway).
PLAIN_SELECT = StatementInfo(kind=Kind.SELECT)

_SHOW = StatementInfo(Kind.SHOW)
_SHOW_SESSION = StatementInfo(Kind.SHOW, _R.SESSION_FUNCTION)
_SHOW_PRIMARY = StatementInfo(Kind.SHOW, _R.OTHER)
_EXPLAIN_INTO = StatementInfo(Kind.SHOW, _R.SELECT_INTO, _E.ASSIGNS_USER_VAR_IN_QUERY)
_INSERT = StatementInfo(Kind.INSERT, _R.WRITE)
_UPDATE = StatementInfo(Kind.UPDATE, _R.WRITE)
_DELETE = StatementInfo(Kind.DELETE, _R.WRITE)
_REPLACE = StatementInfo(Kind.REPLACE, _R.WRITE)
_LOAD = StatementInfo(Kind.LOAD, _R.WRITE)
_DDL = StatementInfo(Kind.DDL, _R.DDL, _E.ENDS_TXN)
_CALL = StatementInfo(Kind.CALL, _R.CALL)
_HANDLER = StatementInfo(Kind.HANDLER, _R.HANDLER)
_OTHER = StatementInfo(Kind.OTHER, _R.OTHER)
_EMPTY = _OTHER
_GET_DIAGNOSTICS = StatementInfo(Kind.OTHER, _R.SESSION_FUNCTION)
_UNPARSEABLE = StatementInfo(Kind.OTHER, _R.UNPARSEABLE, unparseable=True)
_UNPARSEABLE_PARSED = StatementInfo(Kind.OTHER, _R.UNPARSEABLE, used_parser=True, unparseable=True)
_BEGIN = StatementInfo(Kind.BEGIN, _R.TRANSACTION, _E.STARTS_TXN)
_BEGIN_READ_ONLY = StatementInfo(Kind.BEGIN, _R.TRANSACTION, _E.STARTS_TXN, read_only_txn=True)
_COMMIT = StatementInfo(Kind.COMMIT, _R.TRANSACTION, _E.ENDS_TXN)
_COMMIT_CHAIN = StatementInfo(Kind.COMMIT, _R.TRANSACTION, _E.ENDS_TXN | _E.STARTS_TXN)
_ROLLBACK = StatementInfo(Kind.ROLLBACK, _R.TRANSACTION, _E.ENDS_TXN)
_ROLLBACK_CHAIN = StatementInfo(Kind.ROLLBACK, _R.TRANSACTION, _E.ENDS_TXN | _E.STARTS_TXN)
_ROLLBACK_TO = StatementInfo(Kind.ROLLBACK, _R.TRANSACTION)
_SAVEPOINT = StatementInfo(Kind.SAVEPOINT, _R.TRANSACTION)
_XA_IDLE = StatementInfo(Kind.COMMIT, _R.TRANSACTION)  # XA END / XA PREPARE: transaction not over yet
_XA_RECOVER = StatementInfo(Kind.SHOW, _R.TRANSACTION)
_LOCK_TABLES = StatementInfo(Kind.LOCK_TABLES, _R.LOCK_TABLES, _E.LOCKS_TABLES | _E.ENDS_TXN)
_LOCK_INSTANCE = StatementInfo(Kind.LOCK_TABLES, _R.LOCK_TABLES, _E.LOCKS_TABLES)
_UNLOCK_TABLES = StatementInfo(Kind.UNLOCK_TABLES, _R.LOCK_TABLES, _E.UNLOCKS_TABLES)
_FLUSH_READ_LOCK = StatementInfo(Kind.DDL, _R.LOCK_TABLES, _E.LOCKS_TABLES | _E.ENDS_TXN)
_EXECUTE_IMMEDIATE = StatementInfo(Kind.EXECUTE, _R.SQL_PREPARE)
_SET_ACCOUNT = StatementInfo(Kind.SET, _R.DDL, _E.ENDS_TXN)  # SET PASSWORD, SET DEFAULT ROLE
_SET_GLOBAL = StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_GLOBAL)
_SET_NEXT_TXN = StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_SESSION_VAR, names=("transaction",))
_SET_AUTOCOMMIT_ON = StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_AUTOCOMMIT, autocommit=True)
_SET_AUTOCOMMIT_OFF = StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_AUTOCOMMIT, autocommit=False)
_SET_ROLE = StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_SESSION_VAR, names=("role",))

_LOCK_EFFECTS = _E.ACQUIRES_NAMED_LOCK | _E.RELEASES_NAMED_LOCK

# Statements longer than this are not handed to sqlglot (it can take seconds on megabytes of SQL).
_MAX_PARSE_CHARS = 100_000

# ---------------------------------------------------------------------------------------------------
# Tier 1: risky tokens of a SELECT, searched in the UPPER-CASED text. Every branch starts with a literal
# so that sre can skip positions with its first-character set (about 3x faster than re.I).
_RISKY = re.compile(
    r""";|\#|@|/\*|--|:=
    |I(?:NTO\b|S_(?:FREE|USED)_LOCK\s*\()
    |F(?:OR\s+(?:UPDATE|SHARE)\b|OUND_ROWS\s*\()
    |L(?:OCK\s+IN\s+SHARE\s+MODE\b|AST(?:_INSERT_ID\s*\(|VAL\b))
    |GET_LOCK\s*\(
    |R(?:ELEASE_(?:ALL_)?LOCKS?\s*\(|OW_COUNT\s*\()
    |S(?:QL_CALC_FOUND_ROWS\b|ETVAL\b)
    |C(?:ONNECTION_ID\s*\(|URRVAL\b)
    |NEXT(?:VAL\b|\s+VALUE\s+FOR\b)
    |PREVIOUS\s+VALUE\s+FOR\b""",
    re.X,
)
_LEAD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_$]*)")
_PAREN_LEAD = re.compile(r"[\s(]*([A-Za-z_][A-Za-z0-9_$]*)")
_WORD = _LEAD

# ---------------------------------------------------------------------------------------------------
# Tier 3 token analysis of a digest (no strings, no comments; backquoted names blanked).
_TOKENS = re.compile(
    r"""(?P<into>\bINTO\b(?P<vars>\s*@[^\s,()]*(?:\s*,\s*@[^\s,()]*)*)?)
    |(?P<lock>\bFOR\s+(?:UPDATE|SHARE)\b|\bLOCK\s+IN\s+SHARE\s+MODE\b)
    |\b(?P<fn>GET_LOCK|RELEASE_LOCK|RELEASE_ALL_LOCKS|IS_FREE_LOCK|IS_USED_LOCK|LAST_INSERT_ID|FOUND_ROWS
        |ROW_COUNT|CONNECTION_ID|NEXTVAL|SETVAL|LASTVAL|CURRVAL)\s*\(
    |\.\s*(?P<seqattr>NEXTVAL|CURRVAL)\b
    |\b(?P<valuefor>NEXT|PREVIOUS)\s+VALUE\s+FOR\b
    |(?P<calc>\bSQL_CALC_FOUND_ROWS\b)
    |@@(?:(?:GLOBAL|SESSION|LOCAL)\s*\.\s*)?(?P<sysvar>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<uservar>@(?:[A-Za-z0-9_$.]+|\?|``)?)(?P<uassign>\s*:=)?
    |(?P<walrus>:=)""",
    re.I | re.X,
)
_BACKTICKED = re.compile(r"`(?:[^`]|``)*`")
_FN_RULES: dict[str, tuple[PrimaryReason, Effect]] = {
    "GET_LOCK": (_R.NAMED_LOCK, _E.ACQUIRES_NAMED_LOCK),
    "RELEASE_LOCK": (_R.NAMED_LOCK, _E.RELEASES_NAMED_LOCK),
    "RELEASE_ALL_LOCKS": (_R.NAMED_LOCK, _E.RELEASES_NAMED_LOCK),
    "IS_FREE_LOCK": (_R.NAMED_LOCK, _E.NONE),
    "IS_USED_LOCK": (_R.NAMED_LOCK, _E.NONE),
    "LAST_INSERT_ID": (_R.SESSION_FUNCTION, _E.NONE),
    "FOUND_ROWS": (_R.SESSION_FUNCTION, _E.NONE),
    "ROW_COUNT": (_R.SESSION_FUNCTION, _E.NONE),
    "CONNECTION_ID": (_R.SESSION_FUNCTION, _E.NONE),
    "LASTVAL": (_R.SESSION_FUNCTION, _E.NONE),
    "CURRVAL": (_R.SESSION_FUNCTION, _E.NONE),
    "NEXTVAL": (_R.SEQUENCE, _E.NONE),
    "SETVAL": (_R.SEQUENCE, _E.NONE),
}
# @@variables whose value belongs to this connection's previous statements.
_SESSION_SYSVARS = frozenset(
    {"identity", "last_insert_id", "insert_id", "warning_count", "error_count", "last_gtid", "in_transaction"}
)
# @@variables that drivers read to find the writer: such a probe must see the primary. Others that
# name the server (server_id, hostname, gtid positions) are plain reads: a replica answers for itself.
_SERVER_SYSVARS = frozenset(
    {"read_only", "super_read_only", "innodb_read_only", "transaction_read_only", "tx_read_only"}
)
# Most important first: the reason reported when several apply.
_REASON_ORDER = (
    _R.SELECT_INTO,
    _R.LOCKING_READ,
    _R.NAMED_LOCK,
    _R.SEQUENCE,
    _R.SESSION_FUNCTION,
    _R.USER_VAR_ASSIGN,
    _R.OTHER,
)

_STR_SQ = r"'(?:[^'\\]|\\.|'')*'"
_STR_DQ = r'"(?:[^"\\]|\\.|"")*"'
_LOCK_CALL = re.compile(
    rf"""{_STR_SQ}|{_STR_DQ}|`(?:[^`]|``)*`
    |\b(?P<fn>GET_LOCK|RELEASE_LOCK|RELEASE_ALL_LOCKS)\s*\(\s*(?:(?P<name>{_STR_SQ}|{_STR_DQ})\s*[,)])?""",
    re.I | re.S | re.X,
)
_ESCAPE = re.compile(r"\\(.)", re.S)
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}

# Generic tokens for splitting at top-level commas / finding top-level words.
_TOK = re.compile(
    rf"""{_STR_SQ}|{_STR_DQ}|`(?:[^`]|``)*`|[A-Za-z0-9_$]+|[(),]|[^\sA-Za-z0-9_$'"`(),]+|\s+""",
    re.S | re.X,
)
_IDENT = r"`(?:[^`]|``)*`|[A-Za-z0-9_$\u0080-\U0010ffff]+"
_QIDENT = re.compile(rf"\s*({_IDENT})(?:\s*\.\s*({_IDENT}))?")
_COMMA = re.compile(r"\s*,")
_CREATE_TEMP = re.compile(r"\s+(?:OR\s+REPLACE\s+)?TEMPORARY\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?=\S)", re.I)
_DROP_TABLE = re.compile(r"\s+(TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?(?=\S)", re.I)
_FLUSH_LOCK = re.compile(r"\bWITH\s+READ\s+LOCK\b|\bFOR\s+EXPORT\b", re.I)
_CHAIN = re.compile(r"\bAND\s+CHAIN\b", re.I)
_READ_ONLY = re.compile(r"\bREAD\s+ONLY\b", re.I)
_READ_MODE = re.compile(r"\bREAD\s+(?:ONLY|WRITE)\b", re.I)
_ISOLATION = re.compile(r"\bISOLATION\b", re.I)
_FORMAT_VALUE = re.compile(r"\s*=\s*[A-Za-z_]+")
_SHOW_SESSION_RE = re.compile(
    r"""\s*(?:(?:SESSION|LOCAL)\s+STATUS|STATUS|WARNINGS|ERRORS|PROFILES?
    |COUNT\s*\(\s*\*\s*\)\s*(?:WARNINGS|ERRORS))\b""",
    re.I | re.X,
)
_SHOW_PRIMARY_RE = re.compile(
    r"\s*(?:MASTER\s+STATUS|BINARY\s+LOG\s+STATUS|(?:EXPLAIN|ANALYZE)\b(?:\s+FORMAT\s*=\s*\w+)?\s+FOR)\b",
    re.I,
)
_KILL = re.compile(r"\s*(?:(?:HARD|SOFT)\s+)?(?:(CONNECTION|QUERY)\s+)?(?:(ID)\s+)?([0-9]+)\s*\Z", re.I)
_USING_VAR = re.compile(r"\bUSING\s+@", re.I)
_ASSIGNMENT = re.compile(
    rf"""\s*(?:(?P<scope>GLOBAL|SESSION|LOCAL|PERSIST_ONLY|PERSIST)\b\s*)?
    (?:(?P<sys>@@(?:(?P<sysscope>GLOBAL|SESSION|LOCAL|PERSIST_ONLY|PERSIST)\s*\.\s*)?)|(?P<user>@))?
    (?P<name>`(?:[^`]|``)*`|{_STR_SQ}|{_STR_DQ}|[A-Za-z0-9_$]+(?:\s*\.\s*[A-Za-z0-9_$]+)?)
    \s*(?P<rest>.*)""",
    re.I | re.S | re.X,
)
_SET_AUTOCOMMIT = re.compile(
    r"""\s*(?:(?:SESSION|LOCAL)\s+|@@(?:(?:SESSION|LOCAL)\s*\.\s*)?)?AUTOCOMMIT\s*:?=\s*
    (?:(1|ON|TRUE|'ON'|"ON")|0|OFF|FALSE|'OFF'|"OFF")\s*\Z""",
    re.I | re.X,
)
_ASSIGN_OP = re.compile(r":?=\s*")
_SCOPES = {"GLOBAL": True, "PERSIST": True, "PERSIST_ONLY": True, "SESSION": False, "LOCAL": False}
_BOOL_VALUES = {"0": False, "1": True, "on": True, "off": False, "true": True, "false": False}

_EXPLAINABLE = frozenset({"SELECT", "WITH", "TABLE", "VALUES", "UPDATE", "DELETE", "INSERT", "REPLACE"})
_QUERY_VERBS = frozenset({"SELECT", "VALUES", "TABLE"})
_OTHER_VERBS = frozenset(
    {
        "CHECK",
        "CHECKSUM",
        "CACHE",
        "INSTALL",
        "UNINSTALL",
        "RESET",
        "PURGE",
        "CHANGE",
        "STOP",
        "SHUTDOWN",
        "RESTART",
        "BINLOG",
        "CLONE",
        "IMPORT",
        "SIGNAL",
        "RESIGNAL",
        "BACKUP",
    }
)


@dataclass(frozen=True, slots=True)
class _Delegate:
    """A handler's answer "classify the statement starting at ``pos``" (EXPLAIN ANALYZE, SET STATEMENT)."""

    pos: int
    as_show: bool


_Scan = StatementInfo | _Delegate | None


# ---------------------------------------------------------------------------------------------------
# Small scanning helpers


def _word(code: str, pos: int) -> tuple[str, int]:
    """The next keyword (upper-cased) after ``pos`` and the position after it; ``("", pos)`` if none."""
    m = _WORD.match(code, pos)
    if m is None:
        return "", pos
    return m.group(1).upper(), m.end()


def _unquote(ident: str) -> str:
    if ident.startswith("`"):
        return ident[1:-1].replace("``", "`")
    return ident


def _qualified_name(code: str, pos: int) -> tuple[str, int] | None:
    m = _QIDENT.match(code, pos)
    if m is None:
        return None
    name = _unquote(m.group(1))
    if m.group(2) is not None:
        name = f"{name}.{_unquote(m.group(2))}"
    return name, m.end()


def _name_list(code: str, pos: int) -> tuple[str, ...]:
    names: list[str] = []
    while True:
        item = _qualified_name(code, pos)
        if item is None:
            break
        names.append(item[0])
        comma = _COMMA.match(code, item[1])
        if comma is None:
            break
        pos = comma.end()
    return tuple(names)


def _split_top_level(code: str, pos: int) -> list[str]:
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


def _top_level_word(code: str, pos: int, word: str) -> int | None:
    """Position just after the first ``word`` outside parentheses and literals, or None."""
    depth = 0
    for m in _TOK.finditer(code, pos):
        t = m.group()
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0 and t.upper() == word:
            return m.end()
    return None


def _unescape(literal: str) -> str:
    body = literal[1:-1]
    quote = literal[0]
    body = body.replace(quote + quote, quote)
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _lock_names(code: str) -> tuple[str, ...]:
    """Names passed to GET_LOCK / RELEASE_LOCK (``"*"`` for RELEASE_ALL_LOCKS or a non-literal name)."""
    names: list[str] = []
    for m in _LOCK_CALL.finditer(code):
        fn = m.group("fn")
        if fn is None:
            continue
        literal = m.group("name")
        name = "*" if fn.upper() == "RELEASE_ALL_LOCKS" or literal is None else _unescape(literal)
        if name not in names:
            names.append(name)
    return tuple(names) or ("*",)


def _analyse_tokens(digest: str, kind: Kind, default_reason: PrimaryReason | None) -> StatementInfo:
    """Decide a SELECT-like statement from its digest (no strings, no comments: every token is real).
    Lock names are not filled in (they depend on literals): see :func:`_lock_names`."""
    if "`" in digest:
        digest = _BACKTICKED.sub("``", digest)
    reasons: set[PrimaryReason] = set()
    effects = _E.NONE
    reads_user_vars = False
    for m in _TOKENS.finditer(digest):
        if m.group("into") is not None:
            reasons.add(_R.SELECT_INTO)
            if m.group("vars") is not None:
                effects |= _E.ASSIGNS_USER_VAR_IN_QUERY
        elif m.group("lock") is not None:
            reasons.add(_R.LOCKING_READ)
        elif (fn := m.group("fn")) is not None:
            fn_reason, fn_effect = _FN_RULES[fn.upper()]
            reasons.add(fn_reason)
            effects |= fn_effect
        elif (attr := m.group("seqattr")) is not None:
            reasons.add(_FN_RULES[attr.upper()][0])
        elif (which := m.group("valuefor")) is not None:
            reasons.add(_R.SEQUENCE if which.upper() == "NEXT" else _R.SESSION_FUNCTION)
        elif m.group("calc") is not None:
            reasons.add(_R.SESSION_FUNCTION)
        elif (sysvar := m.group("sysvar")) is not None:
            name = sysvar.lower()
            if name in _SESSION_SYSVARS:
                reasons.add(_R.SESSION_FUNCTION)
            elif name in _SERVER_SYSVARS:
                reasons.add(_R.OTHER)
        elif m.group("uservar") is not None:
            if m.group("uassign") is not None:
                reasons.add(_R.USER_VAR_ASSIGN)
                effects |= _E.ASSIGNS_USER_VAR_IN_QUERY
            else:
                reads_user_vars = True
        elif m.group("walrus") is not None:
            reasons.add(_R.USER_VAR_ASSIGN)
            effects |= _E.ASSIGNS_USER_VAR_IN_QUERY
    reason = next((r for r in _REASON_ORDER if r in reasons), default_reason)
    if reason is None and not reads_user_vars and kind is Kind.SELECT:
        return PLAIN_SELECT
    return StatementInfo(kind, reason, effects, reads_user_vars=reads_user_vars)


def _as_show(inner: StatementInfo) -> StatementInfo:
    """EXPLAIN ANALYZE / ANALYZE <stmt>: runs the statement, reports a plan."""
    if inner.primary_reason is None and inner.effects == _E.NONE and not inner.reads_user_vars:
        return _SHOW
    return replace(inner, kind=Kind.SHOW)


# ---------------------------------------------------------------------------------------------------
# Verb handlers: (code, position after the verb) -> StatementInfo | _Delegate | None (undecided).


def _const(info: StatementInfo) -> Callable[[str, int], _Scan]:
    def handler(code: str, pos: int) -> _Scan:
        return info

    return handler


def _scan_create(code: str, pos: int) -> _Scan:
    m = _CREATE_TEMP.match(code, pos)
    if m is None:
        return _DDL
    item = _qualified_name(code, m.end())
    names = (item[0],) if item is not None else ()
    return StatementInfo(Kind.DDL, _R.DDL, _E.CREATES_TEMP_TABLE, names=names)


def _scan_drop(code: str, pos: int) -> _Scan:
    word, after = _word(code, pos)
    if word == "PREPARE":
        return _named(Kind.DEALLOCATE, _E.DEALLOCATES_SQL, code, after)
    m = _DROP_TABLE.match(code, pos)
    if m is None:
        return _DDL
    names = _name_list(code, m.end())
    if m.group(1) is not None:
        return StatementInfo(Kind.DDL, _R.DDL, _E.DROPS_TEMP_TABLE, names=names)
    # DROP TABLE also drops a temporary table of that name (and then does not commit): report the names
    # so session state can forget such temp tables.
    return StatementInfo(Kind.DDL, _R.DDL, _E.ENDS_TXN | _E.DROPS_TEMP_TABLE, names=names)


def _scan_analyze(code: str, pos: int) -> _Scan:
    word, after = _word(code, pos)
    if word in ("TABLE", "NO_WRITE_TO_BINLOG", "LOCAL"):
        return _DDL
    if word == "FORMAT":
        fmt = _FORMAT_VALUE.match(code, after)
        if fmt is None:
            return None
        pos = fmt.end()
        word, after = _word(code, pos)
    if word in _EXPLAINABLE or code[pos:].lstrip().startswith("("):
        return _Delegate(pos, as_show=True)  # MariaDB ANALYZE <stmt>: executes it
    return None


def _scan_explain(code: str, pos: int) -> _Scan:
    analyze = False
    while True:
        word, after = _word(code, pos)
        if word in ("EXTENDED", "PARTITIONS"):
            pos = after
        elif word == "ANALYZE":
            analyze = True
            pos = after
        elif word == "FORMAT":
            fmt = _FORMAT_VALUE.match(code, after)
            if fmt is None:
                return _SHOW
            pos = fmt.end()
        elif word == "INTO":  # EXPLAIN FORMAT=JSON INTO @var <stmt>
            return _EXPLAIN_INTO
        elif word == "FOR":  # EXPLAIN FOR CONNECTION n: a connection id of one backend
            return _SHOW_PRIMARY
        else:
            break
    if analyze and (word in _EXPLAINABLE or code[pos:].lstrip().startswith("(")):
        return _Delegate(pos, as_show=True)
    return _SHOW  # plain EXPLAIN never executes; DESCRIBE/DESC/EXPLAIN <table>


def _scan_show(code: str, pos: int) -> _Scan:
    if _SHOW_SESSION_RE.match(code, pos):
        return _SHOW_SESSION
    if _SHOW_PRIMARY_RE.match(code, pos):
        return _SHOW_PRIMARY
    return _SHOW


def _scan_begin(code: str, pos: int) -> _Scan:
    word, _ = _word(code, pos)
    if word in ("", "WORK"):
        return _BEGIN
    if word == "NOT":  # BEGIN NOT ATOMIC ... END (MariaDB compound statement)
        return _OTHER
    return None


def _scan_start(code: str, pos: int) -> _Scan:
    word, after = _word(code, pos)
    if word == "TRANSACTION":
        return _BEGIN_READ_ONLY if _READ_ONLY.search(code, after) else _BEGIN
    return _OTHER  # START SLAVE / REPLICA / GROUP_REPLICATION ...


def _scan_commit(code: str, pos: int) -> _Scan:
    return _COMMIT_CHAIN if _CHAIN.search(code, pos) else _COMMIT


def _scan_rollback(code: str, pos: int) -> _Scan:
    word, after = _word(code, pos)
    if word == "WORK":
        word, after = _word(code, after)
    if word == "TO":
        return _ROLLBACK_TO
    return _ROLLBACK_CHAIN if _CHAIN.search(code, pos) else _ROLLBACK


def _scan_release(code: str, pos: int) -> _Scan:
    word, _ = _word(code, pos)
    return _SAVEPOINT if word == "SAVEPOINT" else None


def _scan_xa(code: str, pos: int) -> _Scan:
    word, _ = _word(code, pos)
    if word in ("START", "BEGIN"):
        return _BEGIN
    if word in ("END", "PREPARE"):
        return _XA_IDLE
    if word == "COMMIT":
        return _COMMIT
    if word == "ROLLBACK":
        return _ROLLBACK
    if word == "RECOVER":
        return _XA_RECOVER
    return None


def _scan_use(code: str, pos: int) -> _Scan:
    m = _QIDENT.match(code, pos)
    if m is None or m.group(2) is not None or code[m.end() :].strip():
        return None
    return StatementInfo(Kind.USE, _R.SESSION_COMMAND, _E.CHANGES_DB, names=(_unquote(m.group(1)),))


def _scan_lock(code: str, pos: int) -> _Scan:
    word, _ = _word(code, pos)
    if word in ("TABLES", "TABLE"):
        return _LOCK_TABLES
    if word == "INSTANCE":
        return _LOCK_INSTANCE
    return None


def _scan_unlock(code: str, pos: int) -> _Scan:
    word, _ = _word(code, pos)
    return _UNLOCK_TABLES if word in ("TABLES", "TABLE", "INSTANCE") else None


def _scan_flush(code: str, pos: int) -> _Scan:
    return _FLUSH_READ_LOCK if _FLUSH_LOCK.search(code, pos) else _DDL


def _scan_load(code: str, pos: int) -> _Scan:
    word, _ = _word(code, pos)
    if word in ("DATA", "XML"):
        return _LOAD
    if word == "INDEX":
        return _OTHER
    return None


def _named(kind: Kind, effect: Effect, code: str, pos: int) -> _Scan:
    m = _QIDENT.match(code, pos)
    if m is None or m.group(2) is not None:
        return None
    # SQL-level prepared statement names are case-insensitive: lower-cased.
    return StatementInfo(kind, _R.SQL_PREPARE, effect, names=(_unquote(m.group(1)).lower(),))


def _scan_prepare(code: str, pos: int) -> _Scan:
    return _named(Kind.PREPARE, _E.PREPARES_SQL, code, pos)


def _scan_execute(code: str, pos: int) -> _Scan:
    word, _ = _word(code, pos)
    if word == "IMMEDIATE":
        return _EXECUTE_IMMEDIATE
    info = _named(Kind.EXECUTE, _E.NONE, code, pos)
    if isinstance(info, StatementInfo) and _USING_VAR.search(code, pos):
        return replace(info, reads_user_vars=True)
    return info


def _scan_deallocate(code: str, pos: int) -> _Scan:
    word, after = _word(code, pos)
    if word != "PREPARE":
        return None
    return _named(Kind.DEALLOCATE, _E.DEALLOCATES_SQL, code, after)


def _scan_kill(code: str, pos: int) -> _Scan:
    m = _KILL.match(code, pos)
    if m is None:  # KILL USER ..., KILL <expression>
        query = _word(code, pos)[0] == "QUERY"
        return StatementInfo(Kind.KILL, _R.KILL, kill_query=query)
    query = m.group(1) is not None and m.group(1).upper() == "QUERY"
    if m.group(2) is not None:  # MariaDB KILL QUERY ID <query id>: not a connection id
        return StatementInfo(Kind.KILL, _R.KILL, kill_query=True)
    return StatementInfo(Kind.KILL, _R.KILL, names=(str(int(m.group(3))),), kill_query=query)


def _scan_get(code: str, pos: int) -> _Scan:
    word, after = _word(code, pos)
    if word in ("CURRENT", "STACKED"):
        word, _ = _word(code, after)
    return _GET_DIAGNOSTICS if word == "DIAGNOSTICS" else None


def _scan_set(code: str, pos: int) -> _Scan:
    ac = _SET_AUTOCOMMIT.match(code, pos)
    if ac is not None:  # the most frequent SET of all, once or twice per transaction in many drivers
        return _SET_AUTOCOMMIT_ON if ac.group(1) is not None else _SET_AUTOCOMMIT_OFF
    word, after = _word(code, pos)
    if word == "TRANSACTION":
        return _SET_NEXT_TXN
    if word == "STATEMENT":  # MariaDB SET STATEMENT var=value [, ...] FOR <statement>
        inner = _top_level_word(code, after, "FOR")
        return None if inner is None else _Delegate(inner, as_show=False)
    if word == "PASSWORD":
        return _SET_ACCOUNT
    if word == "ROLE":
        return _SET_ROLE
    if word == "DEFAULT" and _word(code, after)[0] == "ROLE":
        return _SET_ACCOUNT
    if word in _SCOPES:
        word2, after2 = _word(code, after)
        if word2 == "TRANSACTION":
            if _SCOPES[word]:
                return _SET_GLOBAL
            names: list[str] = []
            if _ISOLATION.search(code, after2):
                names.append("transaction_isolation")
            if _READ_MODE.search(code, after2):
                names.append("transaction_read_only")
            return StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_SESSION_VAR, names=tuple(names))
    return _scan_set_assignments(code, pos)


def _scan_set_assignments(code: str, pos: int) -> _Scan:
    effects = _E.NONE
    names: list[str] = []
    autocommit: bool | None = None
    sticky_global = False
    for item in _split_top_level(code, pos):
        m = _ASSIGNMENT.match(item)
        if m is None:
            return None
        if m.group("scope") is not None:
            sticky_global = _SCOPES[m.group("scope").upper()]
        name_token = m.group("name")
        rest = m.group("rest")
        if m.group("user") is not None:
            if _ASSIGN_OP.match(rest) is None:
                return None
            effects |= _E.SETS_USER_VAR
            continue
        if name_token[0] in "'\"":
            return None
        name = "".join(_unquote(name_token).split()).lower()
        if m.group("sys") is None and name in ("names", "charset", "character"):
            if name == "character" and _word(rest, 0)[0] != "SET":
                return None
            effects |= _E.SETS_SESSION_VAR
            if "names" not in names:
                names.append("names")
            continue
        op = _ASSIGN_OP.match(rest)
        if op is None:
            return None
        # @@name without a scope is SESSION; a bare name takes the scope of the last scope keyword.
        scope = m.group("sysscope")
        is_global = _SCOPES[scope.upper()] if scope is not None else sticky_global and m.group("sys") is None
        if is_global:
            effects |= _E.SETS_GLOBAL
        elif name == "autocommit":
            effects |= _E.SETS_AUTOCOMMIT
            autocommit = _BOOL_VALUES.get(rest[op.end() :].strip().strip("'\"").lower())
        else:
            effects |= _E.SETS_SESSION_VAR
            if name not in names:
                names.append(name)
    reason = _R.SESSION_COMMAND
    lock_names: tuple[str, ...] = ()
    if _RISKY.search(code.upper()) is not None:  # e.g. SET @x = GET_LOCK('a', 0)
        info = _analyse_tokens(digest_code(code), Kind.SET, None)
        if info.effects & _LOCK_EFFECTS:
            effects |= info.effects & _LOCK_EFFECTS
            reason = _R.NAMED_LOCK
            lock_names = _lock_names(code)
    return StatementInfo(Kind.SET, reason, effects, names=tuple(names) + lock_names, autocommit=autocommit)


_HANDLERS: dict[str, Callable[[str, int], _Scan]] = {
    "INSERT": _const(_INSERT),
    "UPDATE": _const(_UPDATE),
    "DELETE": _const(_DELETE),
    "REPLACE": _const(_REPLACE),
    "LOAD": _scan_load,
    "CREATE": _scan_create,
    "DROP": _scan_drop,
    "ALTER": _const(_DDL),
    "TRUNCATE": _const(_DDL),
    "RENAME": _const(_DDL),
    "GRANT": _const(_DDL),
    "REVOKE": _const(_DDL),
    "OPTIMIZE": _const(_DDL),
    "REPAIR": _const(_DDL),
    "ANALYZE": _scan_analyze,
    "FLUSH": _scan_flush,
    "BEGIN": _scan_begin,
    "START": _scan_start,
    "COMMIT": _scan_commit,
    "ROLLBACK": _scan_rollback,
    "SAVEPOINT": _const(_SAVEPOINT),
    "RELEASE": _scan_release,
    "XA": _scan_xa,
    "SET": _scan_set,
    "USE": _scan_use,
    "SHOW": _scan_show,
    "DESCRIBE": _scan_explain,
    "DESC": _scan_explain,
    "EXPLAIN": _scan_explain,
    "HELP": _const(_SHOW),
    "CALL": _const(_CALL),
    "HANDLER": _const(_HANDLER),
    "LOCK": _scan_lock,
    "UNLOCK": _scan_unlock,
    "PREPARE": _scan_prepare,
    "EXECUTE": _scan_execute,
    "DEALLOCATE": _scan_deallocate,
    "KILL": _scan_kill,
    "GET": _scan_get,
    **{verb: _const(_OTHER) for verb in _OTHER_VERBS},
}


_PLAIN_SELECT_HINTED = {h: StatementInfo(Kind.SELECT, hint=h) for h in Hint}


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
    """Classifies statements; owns the digest -> StatementInfo LRU and the counters.

    Counters (plain ints, read them for metrics): ``fast_path`` statements decided by the keyword scan,
    ``cache_hits`` / ``cache_misses`` digest-cache lookups, ``parser_used`` sqlglot parses,
    ``unparseable`` classify() results flagged unparseable (a cached unparseable digest counts on every
    call), ``internal_errors`` classifier bugs caught by :meth:`classify` (answered as unparseable).
    For a multi-statement query the first three count once per statement.
    """

    def __init__(self, cache_size: int = 10000) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self._cache_size = cache_size
        self._cache: OrderedDict[str, StatementInfo] = OrderedDict()
        self.fast_path = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.parser_used = 0
        self.unparseable = 0
        self.internal_errors = 0

    @property
    def cache_len(self) -> int:
        """Number of digests currently cached (always <= cache_size)."""
        return len(self._cache)

    def clear_cache(self) -> None:
        self._cache.clear()

    def classify(self, sql: str) -> StatementInfo:
        """Classify one COM_QUERY text. Never raises: an internal error answers "unparseable" (primary)."""
        try:
            return self._classify(sql)
        except Exception:
            self.internal_errors += 1
            self.unparseable += 1
            return _UNPARSEABLE

    def _classify(self, sql: str) -> StatementInfo:
        m = _LEAD.match(sql)
        if m is not None:
            verb = m.group(1).upper()
            if verb == "SELECT":
                if _RISKY.search(sql.upper()) is None:
                    self.fast_path += 1
                    return PLAIN_SELECT
            elif is_bare(sql):
                handler = _HANDLERS.get(verb)
                if handler is not None:
                    info = handler(sql, m.end())
                    if isinstance(info, StatementInfo):
                        self.fast_path += 1
                        return info
        return self._lexed(sql)

    def _lexed(self, sql: str) -> StatementInfo:
        lexed = lex(sql)
        statements = lexed.statements
        if not statements:
            info = _EMPTY
        elif len(statements) == 1:
            info = self._one(statements[0])
        else:
            info = _combine([self._one(s) for s in statements])
        hints = lexed.hints
        if hints is not None and hints.route is not None:
            info = _with_hint(info, hints.route)
        if info.unparseable:
            self.unparseable += 1
        return info

    def _one(self, code: str) -> StatementInfo:
        """Classify one statement (no comments, no top-level ';')."""
        m = _LEAD.match(code)
        if m is None:
            p = _PAREN_LEAD.match(code)
            if p is not None and code.lstrip().startswith("(") and p.group(1).upper() in _QUERY_VERBS:
                return self._query(code)
            return self._cached(code, self._compute_parsed)
        verb = m.group(1).upper()
        if verb in _QUERY_VERBS:
            return self._query(code)
        if verb == "DO":
            return self._cached(code, _compute_do)
        handler = _HANDLERS.get(verb)
        if handler is not None:
            info = handler(code, m.end())
            if isinstance(info, StatementInfo):
                self.fast_path += 1
                return info
            if isinstance(info, _Delegate):
                inner = self._one(code[info.pos :])
                return _as_show(inner) if info.as_show else inner
        return self._cached(code, self._compute_parsed)

    def _query(self, code: str) -> StatementInfo:
        if _RISKY.search(code.upper()) is None:
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
        if info.effects & _LOCK_EFFECTS:
            info = replace(info, names=_lock_names(code))
        return info

    def _compute_parsed(self, code: str, digest: str) -> StatementInfo:
        """sqlglot decides the statement's verb (WITH ..., unknown statements)."""
        if len(code) > _MAX_PARSE_CHARS:
            return _UNPARSEABLE
        self.parser_used += 1
        try:
            trees = [t for t in sqlglot.parse(code, read="mysql") if t is not None]
        except Exception:  # ParseError, TokenError, RecursionError on deep nesting, ...
            return _UNPARSEABLE_PARSED
        if len(trees) != 1:
            return _UNPARSEABLE_PARSED
        tree = trees[0]
        if isinstance(tree, (exp.Query, exp.Values)):
            info = _analyse_tokens(digest, Kind.SELECT, None)
            if info.primary_reason is None:  # belt and braces: the AST agrees with the tokens
                if tree.find(exp.Into) is not None:
                    info = replace(info, primary_reason=_R.SELECT_INTO)
                elif tree.find(exp.Lock) is not None:
                    info = replace(info, primary_reason=_R.LOCKING_READ)
            return replace(info, used_parser=True)
        if isinstance(tree, exp.Insert):
            return replace(_INSERT, used_parser=True)
        if isinstance(tree, exp.Update):
            return replace(_UPDATE, used_parser=True)
        if isinstance(tree, exp.Delete):
            return replace(_DELETE, used_parser=True)
        if isinstance(tree, (exp.Create, exp.Drop, exp.Alter)):
            return replace(_DDL, used_parser=True)
        # exp.Command (sqlglot's "could not parse this"), a bare expression, or a statement the scan
        # should have recognised but did not (e.g. an odd SET form): its session effects are unknown.
        return _UNPARSEABLE_PARSED


def _compute_select(code: str, digest: str) -> StatementInfo:
    return _analyse_tokens(digest, Kind.SELECT, None)


def _compute_do(code: str, digest: str) -> StatementInfo:
    return _analyse_tokens(digest, Kind.DO, _R.OTHER)


_default = Classifier()


def classify(sql: str) -> StatementInfo:
    """Classify with a module-level default :class:`Classifier` (tests, CLI, ``rwproxy explain``)."""
    return _default.classify(sql)
