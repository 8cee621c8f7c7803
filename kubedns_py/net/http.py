"""The small HTTP side of each component: health endpoints and Prometheus metrics (aiohttp, which
kubernetes-asyncio already brings).

A request aiohttp cannot parse (a header over 8 KiB, a malformed request line, plain garbage) gets its
400 from aiohttp; what reaches the log is one line without a traceback, rate-limited with every other
line network input causes (``ratelimit``), instead of aiohttp's traceback per request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from kubedns_py.net.exposition import merge
from kubedns_py.ratelimit import RateLimitedLog

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger(__name__)


class _ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log, which it gives every request it cannot read, with a traceback. A request
    that is not HTTP enough gets its 400 and a rate-limited line without one; a failure of our own
    handlers keeps its traceback, rate-limited too."""

    def __init__(self) -> None:
        super().__init__(log)
        self._limited = RateLimitedLog(log)

    def exception(self, msg: object, *args: object, exc_info: Any = True, **_: Any) -> None:
        text = str(msg) % args if args else str(msg)
        if isinstance(exc_info, HttpProcessingError):
            # The reason, not the client's bytes, which would let anyone write into the log.
            reason = (exc_info.message or type(exc_info).__name__).strip().partition(":")[0][:80]
            self._limited.warning("bad-request", "answered 400 to an unparsable HTTP request: %s", reason)
        else:
            self._limited.exception("handler", "%s", text, traceback=exc_info)

    def debug(self, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):  # how aiohttp reports bytes that are not HTTP at all
            self.exception(msg, *args, exc_info=exc_info)
        else:
            super().debug(msg, *args, exc_info=exc_info, **kwargs)


def metrics_handler(registry: CollectorRegistry) -> Handler:
    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return metrics


def merged_metrics_handler(
    registry: CollectorRegistry, workers: Callable[[], Awaitable[list[str]]]
) -> Handler:
    """/metrics of a component run as worker processes: this process's series and every worker's,
    merged into one exposition (``net.exposition``)."""

    async def metrics(_: web.Request) -> web.Response:
        texts = [generate_latest(registry).decode(), *await workers()]
        response = web.Response(body=merge(texts))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return metrics


def text_handler(check: Callable[[], tuple[bool, str]]) -> Handler:
    """200 with the text when the check passes, 503 otherwise."""

    async def handler(_: web.Request) -> web.Response:
        ok, text = check()
        return web.Response(status=200 if ok else 503, text=text + "\n")

    return handler


async def start_http(
    host: str, port: int, routes: dict[str, Handler], reuse_port: bool = False
) -> web.AppRunner:
    """``reuse_port``: beside another process of ours on the same port (``nodelocal.handoff``)."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None, logger=_ServerLog())
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True, reuse_port=reuse_port or None).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (useful when asked for port 0)."""
    server = runner.addresses[0]
    port: int = server[1]
    return port
