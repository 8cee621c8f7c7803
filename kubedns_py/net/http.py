"""The small HTTP side of each component: health endpoints and Prometheus metrics (aiohttp, which
kubernetes-asyncio already brings).

A request aiohttp cannot parse (a header over 8 KiB, a malformed request line, plain garbage) gets its
400 from aiohttp; what reaches the log is one line without a traceback, at most every ``QUIET_FOR``
seconds, instead of aiohttp's traceback per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QUIET_FOR = 60.0


class ServerLog(logging.Logger):
    """aiohttp's server logger: requests it rejected as unparsable are summarised, rate-limited and
    without a traceback; anything else (a failing handler) is logged as aiohttp logs it."""

    def __init__(self) -> None:
        super().__init__("kubedns_py.http")
        self.parent = logging.getLogger("kubedns_py")
        self._next = 0.0
        self._quiet = 0

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self._bad_request(exc_info)
        else:
            super().exception(msg, *args, exc_info=exc_info, **kwargs)

    def debug(self, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):  # aiohttp's way with non-HTTP bytes
            self._bad_request(exc_info)
        else:
            super().debug(msg, *args, exc_info=exc_info, **kwargs)

    def _bad_request(self, err: HttpProcessingError) -> None:
        now = time.monotonic()
        if now < self._next:
            self._quiet += 1
            return
        more = f" (and {self._quiet} more in the last {QUIET_FOR:.0f}s)" if self._quiet else ""
        reason = (err.message or type(err).__name__).strip().partition(":")[0][:80]  # not the client's bytes
        self.warning("answered 400 to an unparsable HTTP request: %s%s", reason, more)
        self._next, self._quiet = now + QUIET_FOR, 0


def metrics_handler(registry: CollectorRegistry) -> Handler:
    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return metrics


def text_handler(check: Callable[[], tuple[bool, str]]) -> Handler:
    """200 with the text when the check passes, 503 otherwise."""

    async def handler(_: web.Request) -> web.Response:
        ok, text = check()
        return web.Response(status=200 if ok else 503, text=text + "\n")

    return handler


async def start_http(host: str, port: int, routes: dict[str, Handler]) -> web.AppRunner:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None, logger=ServerLog())
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (useful when asked for port 0)."""
    server = runner.addresses[0]
    port: int = server[1]
    return port
