"""Starting the real ``kubedns-py`` and ``kubedns-probe`` executables for tests and benchmarks.

Ports are asked for as 0 and read back from the startup log line, so parallel runs never collide and
no test guesses a free port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

from tests.support.http import http_status
from tests.support.paths import DEMO_CLUSTER, ROOT
from tests.support.ports import HOST
from tests.support.waiting import wait_until

# Our entry points (pyproject's [project.scripts]) and how to run them from this checkout.
ENTRY_POINTS = {
    "kubedns-py": [sys.executable, "-m", "kubedns_py"],
    "kubedns-probe": [sys.executable, "-m", "probe"],
}
_SERVE_READY = re.compile(r"port (\d+) \(udp\+tcp\); health on port (\d+), metrics on port (\d+)")
_CACHE_READY = re.compile(r"caching on \S+ port (\d+) \(udp\+tcp\); metrics on port (\d+)")
_PROBE_READY = r"health and metrics on port (\d+)"


class Logged:
    """A child process whose stderr lines a thread collects, so tests can wait for a line to appear."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False  # every line the child wrote is in ``lines``
        threading.Thread(target=self._pump, daemon=True).start()

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Block until a log line matches, or the log ends (the process exited and its last lines are
        read), or ``timeout`` passes."""
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            return next((m for line in self.lines if (m := regex.search(line))), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self._eof, timeout)
            match = found()
        if match is None:
            if self._eof:  # it has exited or is about to: wait a moment for its status
                with suppress(subprocess.TimeoutExpired):
                    self.process.wait(2)
            raise AssertionError(
                f"no log line matching {pattern!r} (exit status {self.process.poll()}):\n"
                + self.log_text()[-3000:]
            )
        return match

    def wait_until(self, predicate: Callable[[], object], timeout: float, what: str) -> float:
        """``waiting.wait_until``, but failing at once if the process exits, and with its log's tail."""

        def check() -> object:
            assert self.process.poll() is None, f"exited with status {self.process.returncode}"
            return predicate()

        try:
            return wait_until(check, timeout, what, interval=0.02)
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n{self.log_text()[-3000:]}") from None

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
            self._eof = True
            self._changed.notify_all()


class Running(Logged):
    """One of our components and the ports it reported (``http_port``: the probe's, or up's probe
    port)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        super().__init__(process)
        self.dns_port = 0
        self.health_port = 0
        self.metrics_port = 0
        self.http_port = 0


def run_entry_point(
    program: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run one of ENTRY_POINTS to its end from the project root; ``env``, when given, is its whole
    environment."""
    return subprocess.run(
        [*ENTRY_POINTS[program], *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def start_module(
    module: str, args: Sequence[str], env: Mapping[str, str] | None = None, *, new_session: bool = False
) -> Running:
    """``python -m module args`` from the project root, ``env`` added to ours, stderr read into
    ``lines`` by a thread."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        start_new_session=new_session,
    )
    return Running(process)


def spawn(args: Sequence[str], env: Mapping[str, str] | None = None) -> Running:
    return start_module("kubedns_py", args, env)


def stop(running: Running, timeout: float = 10.0) -> int:
    if running.process.poll() is None:
        running.process.terminate()
        try:
            running.process.wait(timeout)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait(timeout)
    return running.process.returncode


def started(running: Running, ready: Callable[[Running], object]) -> Running:
    """``running`` once ``ready`` has returned (reading its ports, waiting for it to serve); stopped if
    ``ready`` fails, so a child that never came up is not left behind."""
    try:
        ready(running)
    except BaseException:
        stop(running)
        raise
    return running


@contextmanager
def stopped_after(start: Callable[[], Running]) -> Iterator[Running]:
    """What ``start`` started, for a ``with`` block, stopped however the block ends."""
    running = start()
    try:
        yield running
    finally:
        stop(running)


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
        HOST,
        "--dns-port",
        "0",
        "--http-bind-address",
        HOST,
        "--healthz-port",
        "0",
        "--metrics-port",
        "0",
    ]
    for path in manifests:
        args += ["--manifests", str(path)]

    def up(running: Running) -> None:
        match = running.wait_for_log(_SERVE_READY.pattern)
        running.dns_port, running.health_port, running.metrics_port = (int(g) for g in match.groups())
        if manifests and ready:
            wait_ready(running)

    return started(spawn([*args, *extra], env), up)


def wait_ready(running: Running, timeout: float = 10.0) -> None:
    def ready() -> bool:
        return http_status(running.health_port, "/readiness", timeout=2) == 200

    running.wait_until(ready, timeout, "serve's /readiness answering 200")


def serve(
    *extra: str,
    manifests: Sequence[Path] = (DEMO_CLUSTER,),
    env: dict[str, str] | None = None,
    ready: bool = True,
) -> AbstractContextManager[Running]:
    return stopped_after(lambda: start_serve(*extra, manifests=manifests, env=env, ready=ready))


def start_cache(*args: str, env: dict[str, str] | None = None, listen: str = HOST) -> Running:
    """``kubedns-py cache`` on ``listen`` (127.0.0.1) with free ports; ``args`` are its dnsmasq-style
    flags (give ``--server=...`` and usually ``--no-resolv``)."""
    base = [
        "cache",
        "--listen-address",
        listen,
        "--port",
        "0",
        "--http-bind-address",
        HOST,
        "--metrics-port",
        "0",
    ]

    def up(running: Running) -> None:
        match = running.wait_for_log(_CACHE_READY.pattern)
        running.dns_port, running.metrics_port = (int(g) for g in match.groups())

    return started(spawn([*base, *args], env), up)


def cache(
    *args: str, env: dict[str, str] | None = None, listen: str = HOST
) -> AbstractContextManager[Running]:
    return stopped_after(lambda: start_cache(*args, env=env, listen=listen))


def start_probe(*args: str) -> Running:
    """``kubedns-probe`` with its HTTP on HOST, a free port unless ``args`` name one."""

    def up(running: Running) -> None:
        running.http_port = running.metrics_port = int(running.wait_for_log(_PROBE_READY).group(1))

    return started(start_module("probe", ["--prometheus-addr", HOST, "--prometheus-port", "0", *args]), up)


def probe(*args: str) -> AbstractContextManager[Running]:
    return stopped_after(lambda: start_probe(*args))
