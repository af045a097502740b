"""Moved to :mod:`proxy.admin.http`; this name keeps old imports working."""

from __future__ import annotations

from proxy.admin.http import AdminHttp, readiness, start_admin_http, status

__all__ = ["AdminHttp", "readiness", "start_admin_http", "status"]
