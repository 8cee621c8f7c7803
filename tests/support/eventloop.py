"""An asyncio event loop in a daemon thread, for async test doubles (the API server double, scripted
upstreams) driven from blocking tests."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any


class Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def call(self, function: Any, *args: Any) -> Any:
        """``function(*args)`` run on the loop's thread (doubles that are not thread-safe), its result."""

        async def call() -> Any:
            return function(*args)

        return self.run(call())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()
