"""Two Handoffs over a real abstract unix socket, in-process: a node cache told to stop while its
successor is still starting (a DaemonSet update that counts the new pod as available before it
answers) waits for the successor to take over, and no longer than that; a successor learns how many
sockets (cache workers) its predecessor has in each port's group."""

from __future__ import annotations

import asyncio
import os
import time

from kubedns_py.nodelocal import handoff
from kubedns_py.nodelocal.handoff import Handoff
from tests.support.waiting import eventually


def interface(test: str) -> str:
    return f"test-{os.getpid()}-{test}"


async def nothing() -> None:
    pass


async def claimed(name: str, handed: list[str]) -> Handoff:
    async def hand_over() -> None:
        handed.append("handed over")

    old = Handoff(name, hand_over)
    assert not await old.take_over()  # no predecessor: it only takes the name
    return old


def test_a_stopping_predecessor_waits_for_its_successor_to_take_over() -> None:
    async def scenario() -> tuple[list[str], bool, float]:
        handed: list[str] = []
        old = await claimed(interface("ready"), handed)
        new = Handoff(interface("ready"), nothing)
        assert await new.find_predecessor()
        await eventually(lambda: old.successors, what="the successor connected")
        started = time.monotonic()
        waiting = asyncio.create_task(old.await_successor())
        done, _ = await asyncio.wait([waiting], timeout=0.2)
        assert not done, "the successor has not said ready yet"
        took_over = await new.take_over()
        await waiting
        old.close()
        new.close()
        return handed, took_over, time.monotonic() - started

    handed, took_over, waited = asyncio.run(scenario())
    assert handed == ["handed over"] and took_over
    assert waited < handoff.HANDOVER_WAIT


def test_it_stops_waiting_when_the_successor_goes_away() -> None:
    async def scenario() -> tuple[list[str], float, int]:
        handed: list[str] = []
        old = await claimed(interface("gone"), handed)
        new = Handoff(interface("gone"), nothing)
        assert await new.find_predecessor()
        await eventually(lambda: old.successors, what="the successor connected")
        started = time.monotonic()
        waiting = asyncio.create_task(old.await_successor())
        done, _ = await asyncio.wait([waiting], timeout=0.2)
        assert not done
        new.close()  # it died before answering
        await waiting
        old.close()
        return handed, time.monotonic() - started, old.successors

    handed, waited, successors = asyncio.run(scenario())
    assert handed == [] and successors == 0
    assert waited < handoff.HANDOVER_WAIT


def test_without_a_successor_it_does_not_wait() -> None:
    async def scenario() -> float:
        old = await claimed(interface("alone"), [])
        started = time.monotonic()
        await old.await_successor()
        old.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 0.5


def test_the_successor_learns_how_many_sockets_the_predecessor_has_in_each_group() -> None:
    """Its own come after them: the index its hand-over steers each port's group to."""

    async def scenario() -> int:
        old = Handoff(interface("sockets"), nothing, sockets=3)
        assert not await old.take_over()
        new = Handoff(interface("sockets"), nothing, sockets=2)
        assert await new.find_predecessor()
        old.close()
        new.close()
        return new.predecessor_sockets

    assert asyncio.run(scenario()) == 3
