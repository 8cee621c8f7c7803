"""Waiting for a condition: poll it, bounded by a deadline, never a fixed sleep. Failures say what was
awaited and what was last seen."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
POLL = 0.05  # seconds between two looks at a condition


def wait_for(
    fetch: Callable[[], T], accept: Callable[[T], bool], timeout: float, what: str, interval: float = POLL
) -> T:
    """Poll ``fetch`` until ``accept`` takes what it returned; return that. Fails after ``timeout``
    seconds, saying what was awaited and what ``fetch`` last returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what} (last: {value!r})")
        time.sleep(interval)


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str = "condition", interval: float = POLL
) -> float:
    """Poll ``predicate`` until it holds; the seconds it took."""
    start = time.monotonic()
    wait_for(predicate, bool, timeout, what, interval)
    return time.monotonic() - start


async def eventually(check: Callable[[], object], within: float = 5.0, what: str = "condition") -> float:
    """``wait_until`` for async tests: ``check`` returns a truth value or an awaitable of one (a
    coroutine function); polled without blocking the event loop. The seconds it took."""
    start = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.01)
