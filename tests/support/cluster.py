"""Helpers for tests that use the replication cluster (``rwproxy.dev.cluster``)."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["unique_name", "wait_until"]

T = TypeVar("T")
_counter = itertools.count(1)


def unique_name(prefix: str = "t") -> str:
    """A table/schema name no other test (or xdist worker) of this session uses."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


def wait_until(
    probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Call ``probe`` until it returns something truthy, and return that; AssertionError (with the
    last value) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last: {value!r})")
        time.sleep(interval)
