"""Starting the real ``kubedns-py`` executables for tests and benchmarks.

Ports are asked for as 0 and read back from the startup log line, so parallel runs never collide and
no test guesses a free port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_CLUSTER = ROOT / "deploy" / "examples" / "demo-cluster.yaml"
_SERVE_READY = re.compile(r"port (\d+) \(udp\+tcp\); health on port (\d+), metrics on port (\d+)")
_CACHE_READY = re.compile(r"caching on \S+ port (\d+) \(udp\+tcp\); metrics on port (\d+)")


class Logged:
    """A child process whose stderr lines a thread collects, so tests can wait for a line to appear."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Block until a log line matches, or the process exits, or ``timeout`` passes."""
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            return next((m for line in self.lines if (m := regex.search(line))), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self.process.poll() is not None, timeout)
            match = found()
        if match is None:
            raise AssertionError(
                f"no log line matching {pattern!r} (exit status {self.process.poll()}):\n"
                + self.log_text()[-3000:]
            )
        return match

    def log_text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()


class Running(Logged):
    """A kubedns-py component and the ports it reported."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        super().__init__(process)
        self.dns_port = 0
        self.health_port = 0
        self.metrics_port = 0


def spawn(args: Sequence[str], env: dict[str, str] | None = None) -> Running:
    process = subprocess.Popen(
        [sys.executable, "-m", "kubedns_py", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    return Running(process)


def stop(running: Running, timeout: float = 10.0) -> int:
    if running.process.poll() is None:
        running.process.terminate()
        try:
            running.process.wait(timeout)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait(timeout)
    return running.process.returncode


def start_serve(
    *extra: str,
    manifests: Sequence[Path] = (DEMO_CLUSTER,),
    env: dict[str, str] | None = None,
    ready: bool = True,
) -> Running:
    """serve on free ports. With manifests and ``ready``, returns once /readiness says 200 (the files
    are read off the event loop, a moment after the ports open), as a kubelet would wait."""
    args = [
        "serve",
        "--dns-bind-address",
        "127.0.0.1",
        "--dns-port",
        "0",
        "--http-bind-address",
        "127.0.0.1",
        "--healthz-port",
        "0",
        "--metrics-port",
        "0",
    ]
    for path in manifests:
        args += ["--manifests", str(path)]
    running = spawn([*args, *extra], env)
    match = running.wait_for_log(_SERVE_READY.pattern)
    running.dns_port, running.health_port, running.metrics_port = (int(g) for g in match.groups())
    if manifests and ready:
        wait_ready(running)
    return running


def wait_ready(running: Running, timeout: float = 10.0) -> None:
    url = f"http://127.0.0.1:{running.health_port}/readiness"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if running.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"serve not ready within {timeout}s:\n" + "".join(running.lines[-30:]))
        time.sleep(0.02)


@contextmanager
def serve(
    *extra: str,
    manifests: Sequence[Path] = (DEMO_CLUSTER,),
    env: dict[str, str] | None = None,
    ready: bool = True,
) -> Iterator[Running]:
    running = start_serve(*extra, manifests=manifests, env=env, ready=ready)
    try:
        yield running
    finally:
        stop(running)


def start_cache(*args: str, env: dict[str, str] | None = None) -> Running:
    """``kubedns-py cache`` on 127.0.0.1 with free ports; ``args`` are its dnsmasq-style flags
    (give ``--server=...`` and usually ``--no-resolv``)."""
    base = [
        "cache",
        "--listen-address",
        "127.0.0.1",
        "--port",
        "0",
        "--http-bind-address",
        "127.0.0.1",
        "--metrics-port",
        "0",
    ]
    running = spawn([*base, *args], env)
    match = running.wait_for_log(_CACHE_READY.pattern)
    running.dns_port, running.metrics_port = (int(g) for g in match.groups())
    return running


@contextmanager
def cache(*args: str, env: dict[str, str] | None = None) -> Iterator[Running]:
    running = start_cache(*args, env=env)
    try:
        yield running
    finally:
        stop(running)
