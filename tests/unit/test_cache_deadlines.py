"""The forwarder's one timer structure: items expire oldest first, each within its slack of its own
deadline, whatever is added meanwhile (the next server asked while others expire)."""

from __future__ import annotations

import pytest

from kubedns_py.cache.forward import timers
from kubedns_py.cache.forward.timers import SLACK, Deadlines


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_item_added_while_others_expire_does_not_put_off_those_not_yet_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(timers, "monotonic", clock)
    expired: list[str] = []

    def expire(item: str) -> None:
        expired.append(item)
        if item == "first":
            deadlines.add("retry")  # as an exchange asks its next server

    deadlines: Deadlines[str] = Deadlines(2.0, expire)
    deadlines.add("first")
    clock.now += 0.05
    deadlines.add("second")  # due 50 ms after the first
    clock.now = 1002.0 + SLACK  # when the callback for the first deadline runs
    deadlines._tick()
    assert expired == ["first"]
    handle = deadlines._handle
    assert handle is not None and handle.when() == pytest.approx(1002.05 + SLACK)  # the second's, not 1004
    deadlines.close()


async def test_items_expire_oldest_first_and_removed_ones_never(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(timers, "monotonic", clock)
    expired: list[str] = []
    deadlines: Deadlines[str] = Deadlines(1.0, expired.append)
    for name in ("a", "b", "c"):
        deadlines.add(name)
        clock.now += 0.1
    deadlines.remove("b")
    deadlines.expire_due(1001.15)
    assert expired == ["a"] and len(deadlines) == 1
    deadlines.expire_due(1010.0)
    assert expired == ["a", "c"] and len(deadlines) == 0
    deadlines.close()
