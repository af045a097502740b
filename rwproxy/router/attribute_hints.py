"""Routing hints given as MySQL 8 query attributes instead of comments.

``cursor.add_attribute("rwproxy_route", "primary")`` (mysql-connector-python),
``mysql_bind_param()`` (libmysqlclient), ``query_attributes`` in the ``mysql`` client: the same hints
as the comments, on the same :class:`StatementInfo` fields:

==========================  ==================================  ==========================
attribute                   value                               same as the comment
==========================  ==================================  ==========================
``rwproxy_route``           ``primary`` or ``replica``          ``/* rwproxy:primary */``
``rwproxy_max_lag``         seconds (a number >= 0)             ``/* rwproxy:max_lag=N */``
==========================  ==================================  ==========================

Names and route values are case-insensitive; a value that is not one of these is ignored, as an
unknown comment hint is. Precedence: an attribute wins over a comment hint of the same kind (the
attribute is set by the code that runs the statement, per execution; the comment belongs to the SQL
text, often shared); a kind the attributes do not give keeps the comment's value.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Final

from rwproxy.protocol.query_attributes import QueryAttribute
from rwproxy.router.classifications import PLAIN_SELECT
from rwproxy.router.statement import Hint, StatementInfo

__all__ = ["MAX_LAG_ATTRIBUTE", "ROUTE_ATTRIBUTE", "with_attribute_hints"]

ROUTE_ATTRIBUTE: Final = "rwproxy_route"
MAX_LAG_ATTRIBUTE: Final = "rwproxy_max_lag"
_ROUTES: Final = {"primary": Hint.PRIMARY, "replica": Hint.REPLICA}
# The usual case, a plain SELECT with a route: shared instances instead of a replace() each time.
_PLAIN_SELECT_ROUTED: Final = {h: replace(PLAIN_SELECT, hint=h) for h in Hint}


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None


def with_attribute_hints(info: StatementInfo, attributes: Iterable[QueryAttribute]) -> StatementInfo:
    """``info`` with the hints the attributes give (the last one of a name counts)."""
    hint: Hint | None = None
    max_lag: float | None = None
    for attribute in attributes:
        name = attribute.name.lower()
        if not name.startswith("rwproxy_"):
            continue
        if name == ROUTE_ATTRIBUTE:
            value = attribute.text()
            found = _ROUTES.get(value.strip().lower()) if value is not None else None
            if found is not None:
                hint = found
        elif name == MAX_LAG_ATTRIBUTE:
            seconds = _seconds(attribute.text())
            if seconds is not None:
                max_lag = seconds
    if hint is None and max_lag is None:
        return info
    if hint is not None and max_lag is not None:
        return replace(info, hint=hint, max_lag=max_lag)
    if hint is not None:
        if info is PLAIN_SELECT:
            return _PLAIN_SELECT_ROUTED[hint]
        return info if info.hint is hint else replace(info, hint=hint)
    return replace(info, max_lag=max_lag)
