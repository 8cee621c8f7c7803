"""The one limiter every line caused by network input goes through."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from kubedns_py import ratelimit
from kubedns_py.ratelimit import RateLimitedLog, SuppressedLines, suppressed_lines


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    return now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_one_line_per_key_per_interval_then_the_count_of_the_rest(
    clock: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test.ratelimit.count")
    limited = RateLimitedLog(logger, interval=10.0)
    before = suppressed_lines().get(logger.name, 0)
    with caplog.at_level(logging.WARNING, logger.name):
        for n in range(5):
            limited.warning("a", "bad %d", n)
        limited.warning("b", "other")  # another key has its own allowance
        clock[0] += 10.0
        limited.warning("a", "bad %d", 5)
    assert messages(caplog) == ["bad 0", "other", "bad 5 (and 4 more like it since the last report)"]
    assert suppressed_lines()[logger.name] - before == 4


def test_no_traceback_unless_asked(clock: list[float], caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelimit.traceback")
    limited = RateLimitedLog(logger)
    with caplog.at_level(logging.WARNING, logger.name):
        try:
            raise ValueError("boom")
        except ValueError:
            limited.warning("input", "malformed")
            limited.exception("bug", "our fault")
    warning, error = caplog.records
    assert warning.exc_info is None or warning.exc_info is False
    assert error.exc_info is not None and error.exc_info[0] is ValueError


def test_made_up_keys_share_one_allowance_past_the_limit(
    clock: list[float], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 3)
    logger = logging.getLogger("test.ratelimit.keys")
    limited = RateLimitedLog(logger)
    with caplog.at_level(logging.WARNING, logger.name):
        for n in range(100):
            limited.warning(f"key {n}", "line %d", n)
    assert messages(caplog) == ["line 0", "line 1", "line 2", "line 3"]
    assert len(limited._keys) == 4


def test_suppressed_lines_are_a_metric(clock: list[float]) -> None:
    logger = logging.getLogger("test.ratelimit.metric")
    limited = RateLimitedLog(logger)
    for _ in range(3):
        limited.warning("k", "x")
    registry = CollectorRegistry()
    registry.register(SuppressedLines())
    text = generate_latest(registry).decode()
    assert 'kubedns_log_lines_suppressed_total{logger="test.ratelimit.metric"} 2.0' in text
