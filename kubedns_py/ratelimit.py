"""Logging what network input causes (queries, upstream replies, HTTP requests, API objects), without
letting whoever sends it flood the log.

Every such line goes through a ``RateLimitedLog`` under a key naming what happened: at most one line
per key per interval, the rest counted and their number reported with the key's next line. The count
of suppressed lines, by logger, is a metric in every component (``SuppressedLines``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

# Keys name kinds of events (a call site, an upstream, a resource), so they are few; past this many,
# further keys share one, and a flood of made-up keys cannot grow memory.
MAX_KEYS = 1000
OVERFLOW_KEY = "(other)"

_suppressed: dict[str, int] = {}  # by logger name, for the process: every component exports it


class RateLimitedLog:
    """At most one line per key per ``interval`` seconds; the rest are counted, and the count is
    reported with that key's next line."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._keys: dict[str, list[float | int]] = {}  # key -> [next allowed time, suppressed since]

    def warning(self, key: str, message: str, *args: object) -> None:
        self.log(logging.WARNING, key, message, *args)

    def exception(
        self, key: str, message: str, *args: object, traceback: bool | BaseException = True
    ) -> None:
        """With the traceback (the one being handled, or ``traceback``): only for failures that are
        our bug, never for input that is merely malformed."""
        self.log(logging.ERROR, key, message, *args, traceback=traceback)

    def log(
        self, level: int, key: str, message: str, *args: object, traceback: bool | BaseException = False
    ) -> None:
        if not self._logger.isEnabledFor(level):
            return
        state = self._keys.get(key)
        if state is None:
            if len(self._keys) >= MAX_KEYS:
                key = OVERFLOW_KEY
                state = self._keys.get(key)
            if state is None:
                state = self._keys[key] = [0.0, 0]
        now = time.monotonic()
        if now < state[0]:
            state[1] += 1
            name = self._logger.name
            _suppressed[name] = _suppressed.get(name, 0) + 1
            return
        if state[1]:
            message += f" (and {state[1]} more like it since the last report)"
        self._logger.log(level, message, *args, exc_info=traceback)
        state[0] = now + self._interval
        state[1] = 0


def suppressed_lines() -> dict[str, int]:
    """Lines held back so far in this process, by logger."""
    return dict(_suppressed)


class SuppressedLines(Collector):
    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "kubedns_log_lines_suppressed",
            "Log lines caused by network input and held back by rate limiting.",
            labels=["logger"],
        )
        for name, count in sorted(_suppressed.items()):
            family.add_metric([name], count)
        yield family
