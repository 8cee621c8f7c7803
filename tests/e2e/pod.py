"""Helpers for tests of the whole pod: the probe sidecar and ``kubedns-py up`` as real processes, their
HTTP endpoints, ``dig`` output read into sections, and processes looked up in /proc.

    with probe("--probe=kubedns,127.0.0.1:10053,kubernetes.default.svc.cluster.local,1,SRV") as p:
        status, body = health(p.http_port, "kubedns")
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ROOT, Running, stop

HOST = "127.0.0.1"
CLUSTER = "cluster.local"
KUBERNETES = f"kubernetes.default.svc.{CLUSTER}"
_PROBE_READY = r"health and metrics on port (\d+)"
POLL = 0.05  # seconds between two looks at a condition
WAITING = "waiting for first probe"  # a health check's Err before the probe's first run

T = TypeVar("T")


# -- processes -----------------------------------------------------------------------------------------


class Process(Running):
    """A Running whose HTTP port (the probe's, or up's probe port) is known."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        super().__init__(process)
        self.http_port = 0


def start_module(module: str, args: Sequence[str], *, new_session: bool = False) -> Process:
    """``python -m module args`` from the project root, stderr read into ``lines`` by a thread."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=new_session,
    )
    return Process(process)


def start_probe(*args: str) -> Process:
    """``python -m probe`` with its HTTP on 127.0.0.1, a free port unless ``args`` name one."""
    running = start_module("probe", ["--prometheus-addr", HOST, "--prometheus-port", "0", *args])
    try:
        running.http_port = int(running.wait_for_log(_PROBE_READY).group(1))
    except BaseException:
        stop(running)
        raise
    return running


@contextmanager
def probe(*args: str) -> Iterator[Process]:
    running = start_probe(*args)
    try:
        yield running
    finally:
        stop(running)


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None and stat[1] == pid and stat[0] != "Z":
            children.append(int(entry.name))
    return sorted(children)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def pids_with_argument(argument: str) -> list[int]:
    """Live processes with ``argument`` among their command-line arguments (like ``pgrep -f``)."""
    found = []
    for entry in Path("/proc").iterdir():
        pid = int(entry.name) if entry.name.isdigit() else os.getpid()
        if pid != os.getpid() and argument in command_line(pid) and alive(pid):
            found.append(pid)
    return sorted(found)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) from /proc/PID/stat; None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1])


# -- waiting -------------------------------------------------------------------------------------------


def wait_for(fetch: Callable[[], T], accept: Callable[[T], bool], timeout: float, what: str) -> T:
    """Poll ``fetch`` until ``accept`` takes what it returned; return that. Fails after ``timeout``
    seconds, saying what was awaited and what ``fetch`` last returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what} (last: {value!r})")
        time.sleep(POLL)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    wait_for(check, bool, timeout, what)


# -- HTTP ----------------------------------------------------------------------------------------------


def http_get(port: int, path: str, timeout: float = 3.0) -> tuple[int, str]:
    """Status and body; error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


def health(port: int, label: str) -> tuple[int, dict[str, Any]]:
    status, body = http_get(port, f"/healthcheck/{label}")
    return status, json.loads(body)


def wait_for_health(port: int, label: str, status: int, timeout: float) -> dict[str, Any]:
    """The body of ``/healthcheck/label`` once it answers ``status`` (for 503: a failed run, not the
    wait for the first one)."""

    def reached(reply: tuple[int, dict[str, Any]]) -> bool:
        return reply[0] == status and (status != 503 or reply[1]["Err"] != WAITING)

    return wait_for(lambda: health(port, label), reached, timeout, f"{label} answering {status}")[1]


@dataclass
class Metrics:
    """One scrape: each family's type, and every sample keyed by (sample name, sorted labels)."""

    types: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``; KeyError when there is none."""
        wanted = set(labels.items())
        values = [v for (n, got), v in self.samples.items() if n == name and wanted <= set(got)]
        if not values:
            raise KeyError(f"no sample {name}{labels or ''} among {sorted({n for n, _ in self.samples})}")
        return sum(values)

    def get(self, name: str, default: float = -1.0, **labels: str) -> float:
        try:
            return self.value(name, **labels)
        except KeyError:
            return default

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def wait_for_metrics(
    port: int, accept: Callable[[Metrics], bool], timeout: float, what: str, path: str = "/metrics"
) -> Metrics:
    return wait_for(lambda: scrape(port, path), accept, timeout, what)


def scrape(port: int, path: str = "/metrics") -> Metrics:
    status, text = http_get(port, path)
    assert status == 200, f"GET {path}: {status} {text[:200]}"
    metrics = Metrics()
    for family in text_string_to_metric_families(text):
        metrics.types[family.name] = family.type
        for sample in family.samples:
            metrics.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return metrics


# -- dig -----------------------------------------------------------------------------------------------


@dataclass
class Dig:
    """dig's reply: the status and each section's records as (name, type, data), names lower-cased."""

    status: str
    flags: set[str]
    answer: list[tuple[str, str, str]]
    authority: list[tuple[str, str, str]]
    additional: list[tuple[str, str, str]]
    text: str

    def data(self, rtype: str, section: str = "answer") -> set[str]:
        return {data for _, t, data in getattr(self, section) if t == rtype}


_SECTIONS = {"ANSWER": "answer", "AUTHORITY": "authority", "ADDITIONAL": "additional"}


def dig(*args: str, port: int | None = None, timeout: float = 10.0) -> Dig:
    """Run dig (``@127.0.0.1 -p port`` added when ``port`` is given) and read its reply."""
    if shutil.which("dig") is None:
        pytest.skip("dig is not installed (Debian package bind9-dnsutils)")
    server = [f"@{HOST}", "-p", str(port)] if port is not None else []
    command = ["dig", *server, "+time=2", "+tries=1", "+noall", "+comments", "+answer", "+authority"]
    command += ["+additional", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    return parse_dig(done.stdout)


def dig_command(line: str, timeout: float = 10.0) -> Dig:
    """Run a dig command line as printed for a human (``dig @127.0.0.1 -p 1053 name``)."""
    words = shlex.split(line)
    assert words[0] == "dig", line
    return dig(*words[1:], timeout=timeout)


def parse_dig(text: str) -> Dig:
    status, flags = "", set()
    sections: dict[str, list[tuple[str, str, str]]] = {"answer": [], "authority": [], "additional": []}
    current: str | None = None
    for line in text.splitlines():
        if match := re.search(r"status: (\w+)", line):
            status = match.group(1)
        if match := re.match(r";; flags: ([\w ]*);", line):
            flags = set(match.group(1).split())
        if match := re.match(r";; (\w+) SECTION:", line):
            current = _SECTIONS.get(match.group(1))
            continue
        if not line.strip() or line.startswith(";"):
            continue
        if current is not None:
            name, _ttl, _class, rtype, *data = line.split()
            if rtype != "OPT":
                sections[current].append((name.lower(), rtype, " ".join(data)))
    if not status:
        raise AssertionError(f"dig gave no reply:\n{text}")
    return Dig(status, flags, sections["answer"], sections["authority"], sections["additional"], text)
