"""Plain HTTP GETs of our components' ports, and the probe sidecar's health checks."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.support.ports import HOST
from tests.support.waiting import wait_for

WAITING = "waiting for first probe"  # a health check's Err before the probe's first run


def http_get(port: int, path: str, timeout: float = 3.0) -> tuple[int, str]:
    """Status and body; error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


def http_status(port: int, path: str, timeout: float = 3.0) -> int:
    """The status alone; 0 while nothing answers (not listening yet, or gone)."""
    try:
        return http_get(port, path, timeout)[0]
    except OSError:
        return 0


def readiness(port: int, timeout: float = 2.0) -> int:
    """The status of ``/readiness`` on a health port (serve's, or up's)."""
    return http_get(port, "/readiness", timeout)[0]


def health(port: int, label: str) -> tuple[int, dict[str, Any]]:
    status, body = http_get(port, f"/healthcheck/{label}")
    return status, json.loads(body)


def wait_for_health(port: int, label: str, status: int, timeout: float) -> dict[str, Any]:
    """The body of ``/healthcheck/label`` once it answers ``status`` (for 503: a failed run, not the
    wait for the first one)."""

    def reached(reply: tuple[int, dict[str, Any]]) -> bool:
        return reply[0] == status and (status != 503 or reply[1]["Err"] != WAITING)

    return wait_for(lambda: health(port, label), reached, timeout, f"{label} answering {status}")[1]
