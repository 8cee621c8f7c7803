"""Logging a failure that any client can trigger at will, without letting them flood the log."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """At most one line, with its traceback, per ``interval`` seconds; the rest are counted and the
    count is reported with the next line."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._next = 0.0
        self._suppressed = 0

    def log(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        suffix = f" (and {self._suppressed} more since the last report)" if self._suppressed else ""
        self._logger.exception(message + suffix, *args)
        self._suppressed = 0
        self._next = now + self._interval
