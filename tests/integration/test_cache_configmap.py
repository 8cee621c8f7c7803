"""The kube-dns ConfigMap as a directory (``--config-dir DIR --config-period 1s``): ``stubDomains`` and
``upstreamNameservers`` are picked up within 10 s while queries keep being answered; invalid content is
logged once, naming the key and the problem, and the last good configuration stays in force.

Files are replaced atomically (write, then rename), as the kubelet swaps a mounted ConfigMap. Every test
starts from, and restores, the baseline: upstreamNameservers = [default], stubDomains = {stub.test: [stub1]}.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.rcode
import pytest

from tests.support.dnsclient import ask
from tests.support.filereads import Reads
from tests.support.metrics import scrape
from tests.support.nameservers import TestNameserver, answer, run_in_thread, slow
from tests.support.processes import Running, cache
from tests.support.waiting import wait_until

DEFAULT, STUB1, STUB2, UP2, SLOW = "192.0.2.1", "192.0.2.50", "192.0.2.51", "192.0.2.60", "192.0.2.70"
STUB_DOMAINS, UPSTREAM_NAMESERVERS = "stubDomains", "upstreamNameservers"
CHANGED = r"config-dir \S+: configuration changed"
_fresh = itertools.count()


def fresh(domain: str) -> str:
    """A name never asked before, so the answer comes from the upstream the routes pick now."""
    return f"q{next(_fresh)}.{domain}."


def nameserver(address: str, delay: float = 0.0) -> TestNameserver:
    behaviour = answer("{qname} 300 IN A " + address)
    return TestNameserver(default=slow(delay, behaviour) if delay else behaviour)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, TestNameserver]]:
    named = {
        DEFAULT: nameserver(DEFAULT),
        STUB1: nameserver(STUB1),
        STUB2: nameserver(STUB2),
        UP2: nameserver(UP2),
        SLOW: nameserver(SLOW, delay=0.6),
    }
    with (
        run_in_thread(named[DEFAULT]),
        run_in_thread(named[STUB1]),
        run_in_thread(named[STUB2]),
        run_in_thread(named[UP2]),
        run_in_thread(named[SLOW]),
    ):
        yield named


def write(directory: Path, key: str, content: Any) -> None:
    """Replace a key's file at once; a str is written as is, anything else as JSON."""
    text = content if isinstance(content, str) else json.dumps(content)
    staging = directory / f".{key}.tmp"
    staging.write_text(text)
    os.replace(staging, directory / key)


class ConfigMap:
    def __init__(self, directory: Path, servers: dict[str, TestNameserver]) -> None:
        self.directory = directory
        self.servers = servers
        self.running: Running | None = None
        self.applied = False  # a test changed the configuration in force

    def baseline(self) -> dict[str, Any]:
        return {
            UPSTREAM_NAMESERVERS: [self.servers[DEFAULT].hostport],
            STUB_DOMAINS: {"stub.test": [self.servers[STUB1].hostport]},
        }

    def changes(self) -> int:
        assert self.running is not None
        return len(re.findall(CHANGED, self.running.log_text()))

    def apply(self, files: dict[str, Any], timeout: float = 10.0) -> float:
        """Write ``files`` and wait until the cache logs that it changed its configuration; the seconds."""
        before = self.changes()
        start = time.monotonic()
        for key, content in files.items():
            write(self.directory, key, content)
        wait_until(lambda: self.changes() > before, timeout)
        self.applied = True
        return time.monotonic() - start

    def restore(self) -> None:
        """Back to the baseline files. When only invalid content was written the baseline never stopped
        being in force, so there is nothing to wait for."""
        baseline = self.baseline()
        if self.applied:
            self.apply(baseline)
            self.applied = False
        else:
            for key, content in baseline.items():
                write(self.directory, key, content)


@pytest.fixture(scope="module")
def configmap(tmp_path_factory: pytest.TempPathFactory, servers: dict[str, TestNameserver]) -> ConfigMap:
    config = ConfigMap(tmp_path_factory.mktemp("kube-dns-config"), servers)
    for key, content in config.baseline().items():
        write(config.directory, key, content)
    return config


@pytest.fixture(scope="module")
def running(configmap: ConfigMap) -> Iterator[Running]:
    with cache("--no-resolv", f"--config-dir={configmap.directory}", "--config-period=1s") as c:
        c.wait_for_log(r"config-dir \S+: loaded")
        configmap.running = c
        yield c


@pytest.fixture
def config(configmap: ConfigMap, running: Running) -> Iterator[ConfigMap]:
    yield configmap
    configmap.restore()


def address(name: str, port: int) -> str:
    reply = ask(name, "A", port)
    assert reply.rcode() == dns.rcode.NOERROR, reply
    return str(reply.answer[0][0])


def reloads(running: Running) -> tuple[float, float]:
    samples = scrape(running.metrics_port)
    return (
        samples.get("kubedns_cache_config_reloads_total"),
        samples.get("kubedns_cache_config_reload_failures_total"),
    )


def test_the_initial_configuration_routes_queries(config: ConfigMap, running: Running) -> None:
    assert address(fresh("elsewhere.test"), running.dns_port) == DEFAULT
    assert address(fresh("stub.test"), running.dns_port) == STUB1
    assert address(fresh("deep.down.stub.test"), running.dns_port) == STUB1


def test_the_nanny_spelling_reads_the_same_configmap(config: ConfigMap) -> None:
    """The dnsmasq-nanny container's flags, its ConfigMap mount given as -configDir."""
    nanny = (
        "-v=2",
        "-logtostderr",
        f"-configDir={config.directory}",
        "-restartDnsmasq=true",
        "-syncInterval=1s",
    )
    with cache(*nanny, "--", "-k", "--no-resolv") as c:
        c.wait_for_log(rf"config-dir {re.escape(str(config.directory))}: loaded")
        assert address(fresh("elsewhere.test"), c.dns_port) == DEFAULT
        assert address(fresh("stub.test"), c.dns_port) == STUB1


class Background:
    """Fresh names asked back to back from a thread; every reply (or error) kept."""

    def __init__(self, port: int, domains: tuple[str, ...], threads: int = 1) -> None:
        self.port = port
        self.domains = domains
        self.results: list[tuple[str, object]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        for domain in itertools.cycle(self.domains):
            if self._stop.is_set():
                return
            name = fresh(domain)
            try:
                outcome: object = dns.rcode.to_text(ask(name, "A", self.port, timeout=3).rcode())
            except dns.exception.DNSException as err:
                outcome = repr(err)
            self.results.append((name, outcome))

    def __enter__(self) -> Background:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def failures(self) -> list[tuple[str, object]]:
        return [(name, outcome) for name, outcome in self.results if outcome != "NOERROR"]


def test_a_stub_domain_change_applies_within_10s_while_every_query_is_answered(
    config: ConfigMap, running: Running
) -> None:
    before = reloads(running)
    changed = {
        STUB_DOMAINS: {
            "stub.test": [config.servers[STUB2].hostport, config.servers[STUB1].hostport],
            "new.test": [config.servers[STUB1].hostport],
        }
    }
    with Background(running.dns_port, ("stub.test", "new.test", "elsewhere.test")) as background:
        assert config.apply(changed) < 10
        assert address(fresh("stub.test"), running.dns_port) == STUB2
        assert address(fresh("new.test"), running.dns_port) == STUB1
        wait_until(lambda: len(background.results) > 20, 5)
    assert background.failures() == []
    assert reloads(running)[0] - before[0] == 1


def test_upstream_nameservers_replace_the_default_upstreams_within_10s(
    config: ConfigMap, running: Running
) -> None:
    assert config.apply({UPSTREAM_NAMESERVERS: [config.servers[UP2].hostport]}) < 10
    assert address(fresh("stub.test"), running.dns_port) == STUB1
    name = fresh("elsewhere.test")
    assert address(name, running.dns_port) == UP2
    assert config.servers[DEFAULT].queries_for(name) == []


def test_queries_in_flight_to_a_replaced_upstream_are_still_answered(
    config: ConfigMap, running: Running
) -> None:
    """The old upstream takes 0.6 s and four clients keep asking, so questions are in flight to it when
    the change lands: they get its answer, not SERVFAIL (fixed in 5837d31: dropped clients retire)."""
    config.apply({UPSTREAM_NAMESERVERS: [config.servers[SLOW].hostport]})
    with Background(running.dns_port, ("elsewhere.test",), threads=4) as background:
        wait_until(lambda: len(background.results) >= 4, 5)
        config.apply({UPSTREAM_NAMESERVERS: [config.servers[UP2].hostport]})
        wait_until(lambda: address(fresh("elsewhere.test"), running.dns_port) == UP2, 3)
    assert len(background.results) >= 8
    assert background.failures() == []


def test_a_new_stub_domain_applies_to_names_already_cached(config: ConfigMap, running: Running) -> None:
    name = fresh("later.test")
    assert address(name, running.dns_port) == DEFAULT  # cached for 300 s
    stubs = config.baseline()[STUB_DOMAINS] | {"later.test": [config.servers[STUB2].hostport]}
    config.apply({STUB_DOMAINS: stubs})
    assert address(fresh("later.test"), running.dns_port) == STUB2
    assert address(name, running.dns_port) == STUB2


def test_a_change_keeps_the_answers_of_routes_it_did_not_touch(config: ConfigMap, running: Running) -> None:
    kept, moved = fresh("default.test"), fresh("moved.test")
    assert address(kept, running.dns_port) == DEFAULT and address(moved, running.dns_port) == DEFAULT
    stubs = config.baseline()[STUB_DOMAINS] | {"moved.test": [config.servers[STUB2].hostport]}
    config.apply({STUB_DOMAINS: stubs})
    assert address(moved, running.dns_port) == STUB2  # dropped, asked again on its new route
    assert address(kept, running.dns_port) == DEFAULT
    assert len(config.servers[DEFAULT].queries_for(kept)) == 1  # still cached
    running.wait_for_log("dropped 1 cached answers whose names the change routes elsewhere", 5)


@pytest.mark.parametrize(
    ("key", "content", "problem"),
    [
        (STUB_DOMAINS, '{"stub.test": ["127.0.0.1:1"', r"invalid JSON"),
        (STUB_DOMAINS, {"Bad_Domain.test": ["127.0.0.1"]}, r'"Bad_Domain\.test" is not a valid domain'),
        (STUB_DOMAINS, {"stub.test": ["dns.example.com"]}, r"is not an IP address"),
        (UPSTREAM_NAMESERVERS, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"], r"at most 3"),
        (UPSTREAM_NAMESERVERS, {"a": "127.0.0.1:99999"}, r"expected a list"),
    ],
)
def test_invalid_content_is_logged_and_the_last_good_configuration_stays(
    config: ConfigMap, running: Running, key: str, content: Any, problem: str
) -> None:
    failures = reloads(running)[1]
    write(config.directory, key, content)
    line = running.wait_for_log(rf"ERROR .*config-dir \S*{key}: .*{problem}.*previous configuration").string
    assert line.count("\n") == 1  # one line, no traceback
    assert reloads(running)[1] - failures == 1
    assert address(fresh("elsewhere.test"), running.dns_port) == DEFAULT
    assert address(fresh("stub.test"), running.dns_port) == STUB1


def test_the_same_invalid_content_is_logged_once(config: ConfigMap, running: Running) -> None:
    write(config.directory, UPSTREAM_NAMESERVERS, "[not json")
    pattern = rf"config-dir \S*{UPSTREAM_NAMESERVERS}: invalid JSON"
    running.wait_for_log(pattern)
    with Reads(config.directory) as reads:
        # Two more polls of the unchanged directory: the second has ended once a third reads the file.
        reads.wait(UPSTREAM_NAMESERVERS, 3, timeout=10)
    assert len(re.findall(pattern, running.log_text())) == 1
    assert address(fresh("elsewhere.test"), running.dns_port) == DEFAULT
