"""Running a component until SIGTERM or SIGINT, then stopping it cleanly.

A component with a lame-duck period (CoreDNS's ``lameduck``) is told at once that it is going, so its
readiness turns 503 and endpoints stop sending it clients, and goes on answering for that long before
it stops; a second signal cuts the wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger("kubedns_py")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Component(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class Draining(Protocol):
    """A component that answers on for a while after it was told to go."""

    lameduck: float

    def drain(self) -> None:
        """Say not ready from now on; keep answering."""


async def cancelled(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_until_signalled(component: Component) -> None:
    await component.start()
    signalled = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, signalled.set)
    try:
        await signalled.wait()
        if isinstance(component, Draining) and component.lameduck > 0:
            component.drain()
            log.info("not ready; answering for %gs more before stopping", component.lameduck)
            signalled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signalled.wait(), component.lameduck)
        log.info("stopping")
    finally:
        for sig in SIGNALS:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await component.stop()
