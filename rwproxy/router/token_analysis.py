"""Is a SELECT-like statement a plain read? The tokens that say otherwise, and the tables behind them.

* :data:`RISKY`: the tier-1 pre-filter, searched in the upper-cased raw text. No match means a plain
  read; a match may be a false alarm (inside a string or comment) and sends the statement further.
* :func:`analyse_tokens`: the decision on a digest (strings and comments gone, so every token is real),
  driven by the tables of session-bound functions (:data:`FN_RULES`) and system variables
  (:data:`SESSION_SYSVARS`, :data:`SERVER_SYSVARS`).
* :func:`lock_names`: the names passed to GET_LOCK / RELEASE_LOCK, read from the raw text (they are
  literals, so not in the digest).

Adding a session-bound function means adding it to :data:`RISKY`, ``_TOKENS`` and :data:`FN_RULES`.
"""

from __future__ import annotations

import re

from rwproxy.router.classifications import PLAIN_SELECT
from rwproxy.router.sql_scan import STR_DQ, STR_SQ
from rwproxy.router.statement import Effect, Kind, PrimaryReason, StatementInfo

__all__ = [
    "FN_RULES",
    "REASON_ORDER",
    "RISKY",
    "SERVER_SYSVARS",
    "SESSION_SYSVARS",
    "analyse_tokens",
    "lock_names",
]

_R = PrimaryReason
_E = Effect

#: Risky tokens of a SELECT, searched in the UPPER-CASED text. Every branch starts with a literal so
#: that sre can skip positions with its first-character set (about 3x faster than re.I).
RISKY = re.compile(
    r""";|\#|@|/\*|--|:=
    |I(?:NTO\b|S_(?:FREE|USED)_LOCK\s*\()
    |F(?:OR\s+(?:UPDATE|SHARE)\b|OUND_ROWS\s*\()
    |L(?:OCK\s+IN\s+SHARE\s+MODE\b|AST(?:_INSERT_ID\s*\(|VAL\b))
    |GET_LOCK\s*\(
    |R(?:ELEASE_(?:ALL_)?LOCKS?\s*\(|OW_COUNT\s*\()
    |S(?:QL_CALC_FOUND_ROWS\b|ETVAL\b)
    |C(?:ONNECTION_ID\s*\(|URRVAL\b)
    |NEXT(?:VAL\b|\s+VALUE\s+FOR\b)
    |P(?:REVIOUS\s+VALUE\s+FOR\b|ROCESSLIST\b)""",
    re.X,
)

#: Functions whose result belongs to this connection or changes server state: reason and effect.
FN_RULES: dict[str, tuple[PrimaryReason, Effect]] = {
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
#: @@variables whose value belongs to this connection's previous statements.
SESSION_SYSVARS = frozenset(
    {"identity", "last_insert_id", "insert_id", "warning_count", "error_count", "last_gtid", "in_transaction"}
)
#: @@variables that drivers read to find the writer: such a probe must see the primary. Others that
#: name the server (server_id, hostname, gtid positions) are plain reads: a replica answers for itself.
SERVER_SYSVARS = frozenset(
    {"read_only", "super_read_only", "innodb_read_only", "transaction_read_only", "tx_read_only"}
)
#: Most important first: the reason reported when several apply.
REASON_ORDER = (
    _R.PROCESSLIST,
    _R.SELECT_INTO,
    _R.LOCKING_READ,
    _R.NAMED_LOCK,
    _R.SEQUENCE,
    _R.SESSION_FUNCTION,
    _R.USER_VAR_ASSIGN,
    _R.OTHER,
)

# Token analysis of a digest (no strings, no comments; backquoted names blanked).
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
    |(?P<walrus>:=)
    |(?P<plist>\bPROCESSLIST\b)""",
    re.I | re.X,
)
_BACKTICKED = re.compile(r"`(?:[^`]|``)*`")
_QUOTED_PROCESSLIST = re.compile(r"`PROCESSLIST`", re.I)

_LOCK_CALL = re.compile(
    rf"""{STR_SQ}|{STR_DQ}|`(?:[^`]|``)*`
    |\b(?P<fn>GET_LOCK|RELEASE_LOCK|RELEASE_ALL_LOCKS)\s*\(\s*(?:(?P<name>{STR_SQ}|{STR_DQ})\s*[,)])?""",
    re.I | re.S | re.X,
)
_ESCAPE = re.compile(r"\\(.)", re.S)
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def analyse_tokens(digest: str, kind: Kind, default_reason: PrimaryReason | None) -> StatementInfo:
    """Decide a SELECT-like statement from its digest (no strings, no comments: every token is real).

    Lock names are not filled in (they depend on literals): see :func:`lock_names`. A plain
    ``Kind.SELECT`` answers the shared :data:`~rwproxy.router.classifications.PLAIN_SELECT`.
    """
    reasons: set[PrimaryReason] = set()
    if "`" in digest:
        if _QUOTED_PROCESSLIST.search(digest) is not None:
            reasons.add(_R.PROCESSLIST)
        digest = _BACKTICKED.sub("``", digest)
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
            fn_reason, fn_effect = FN_RULES[fn.upper()]
            reasons.add(fn_reason)
            effects |= fn_effect
        elif (attr := m.group("seqattr")) is not None:
            reasons.add(FN_RULES[attr.upper()][0])
        elif (which := m.group("valuefor")) is not None:
            reasons.add(_R.SEQUENCE if which.upper() == "NEXT" else _R.SESSION_FUNCTION)
        elif m.group("calc") is not None:
            reasons.add(_R.SESSION_FUNCTION)
        elif (sysvar := m.group("sysvar")) is not None:
            name = sysvar.lower()
            if name in SESSION_SYSVARS:
                reasons.add(_R.SESSION_FUNCTION)
            elif name in SERVER_SYSVARS:
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
        elif m.group("plist") is not None:
            reasons.add(_R.PROCESSLIST)
    reason = next((r for r in REASON_ORDER if r in reasons), default_reason)
    if reason is None and not reads_user_vars and kind is Kind.SELECT:
        return PLAIN_SELECT
    return StatementInfo(kind, reason, effects, reads_user_vars=reads_user_vars)


def _unescape(literal: str) -> str:
    body = literal[1:-1]
    quote = literal[0]
    body = body.replace(quote + quote, quote)
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def lock_names(code: str) -> tuple[str, ...]:
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
