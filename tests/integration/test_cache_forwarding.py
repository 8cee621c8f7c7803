"""How ``kubedns-py cache`` talks to its upstreams: one upstream query per distinct miss, the
``--dns-forward-max`` limit, timeouts and failover, marking an upstream down and probing it back,
truncation and TCP (upstream side and client side), replies that must be ignored, ExternalName targets
and CNAME chains through serve, and ``--dns-loop-detect`` against a real dnsmasq that forwards back.

The per-upstream timeout is 2 s (``cache/app.py``), so tests that need a timeout send their questions
concurrently and pay it once.
"""

from __future__ import annotations

import itertools
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.dig import run_dig
from tests.support.dnsclient import answers, ask
from tests.support.dnsmasq import Dnsmasq
from tests.support.metrics import scrape
from tests.support.nameservers import (
    TestNameserver,
    answer,
    big_answer,
    dead,
    garbage,
    mismatched_question,
    partial,
    run_in_thread,
    slow,
    truncate,
    wrong_id,
)
from tests.support.ports import HOST
from tests.support.processes import Running, cache
from tests.support.waiting import wait_until

UPSTREAM_TIMEOUT = 2.0


def timed(
    port: int, names: Sequence[str], rdtype: str = "A", timeout: float = 5.0
) -> list[tuple[object, float]]:
    """Ask every name at once (one thread each); per name, the reply (or the exception) and the seconds."""

    def one(name: str) -> tuple[object, float]:
        start = time.monotonic()
        try:
            reply: object = ask(name, rdtype, port, timeout=timeout)
        except dns.exception.DNSException as err:
            reply = err
        return reply, time.monotonic() - start

    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(one, names))


def a_record(address: str, ttl: int = 300) -> str:
    return "{qname} " + f"{ttl} IN A {address}"


def no_tracebacks(running: Running) -> None:
    assert running.process.poll() is None, "the cache exited"
    assert "Traceback" not in running.log_text(), running.log_text()[-3000:]


# -- one upstream behind serve's cluster routes ------------------------------------------------------


@pytest.fixture(scope="module")
def good() -> Iterator[TestNameserver]:
    with run_in_thread(TestNameserver(default=answer(a_record("192.0.2.1")))) as ns:
        yield ns


@pytest.fixture(scope="module")
def main(cluster: Running, good: TestNameserver) -> Iterator[Running]:
    kubedns = f"127.0.0.1#{cluster.dns_port}"
    with cache(
        "--no-resolv",
        f"--server=/cluster.local/{kubedns}",
        f"--server=/in-addr.arpa/{kubedns}",
        f"--server={good.address}",
    ) as running:
        yield running


def test_identical_concurrent_misses_make_one_upstream_query(main: Running, good: TestNameserver) -> None:
    name = "dedupe.fwd.test."
    good.script(name, "A", slow(1.0, answer(a_record("192.0.2.11"))))
    before = scrape(main.metrics_port).get("kubedns_cache_deduplicated_total")
    results = timed(main.dns_port, [name] * 20)
    for reply, _ in results:
        assert isinstance(reply, dns.message.Message)
        assert answers(reply) == {f"{name} A 192.0.2.11"}
    assert len(good.queries_for(name)) == 1
    assert scrape(main.metrics_port).get("kubedns_cache_deduplicated_total") - before == 19


def test_truncated_upstream_answer_is_asked_again_over_tcp(main: Running, good: TestNameserver) -> None:
    name = "tc.fwd.test."
    good.script(name, "A", truncate(answer(a_record("192.0.2.12"))))
    reply = ask(name, "A", main.dns_port)
    assert answers(reply) == {f"{name} A 192.0.2.12"} and not reply.flags & dns.flags.TC
    assert [q.transport for q in good.queries_for(name)] == ["udp", "tcp"]


def test_tc_is_passed_to_udp_clients_and_tcp_gets_everything(main: Running, good: TestNameserver) -> None:
    name = "big.fwd.test."
    good.script(name, "A", big_answer(name, 200))
    small_udp = ask(name, "A", main.dns_port)  # no EDNS: 512 bytes
    assert small_udp.flags & dns.flags.TC and not small_udp.answer
    assert small_udp.id and small_udp.question[0].name.to_text() == name
    over_tcp = ask(name, "A", main.dns_port, tcp=True)
    assert not over_tcp.flags & dns.flags.TC and len(answers(over_tcp)) == 200
    # Never more than 1,232 bytes over UDP, whatever size the client says it takes (DNS Flag Day 2020).
    edns_udp = ask(name, "A", main.dns_port, use_edns=0, payload=4096)
    assert edns_udp.flags & dns.flags.TC and not edns_udp.answer and len(edns_udp.to_wire()) <= 1232
    # dig retries over TCP by itself when it sees TC.
    assert len(run_dig("+noedns", "+short", name, "A", port=main.dns_port).split()) == 200
    assert [q.transport for q in good.queries_for(name)] == ["udp", "tcp"]  # then all from the cache


def test_a_partial_answer_is_passed_on_marked_partial_and_never_kept(
    main: Running, good: TestNameserver
) -> None:
    name = "partial.fwd.test."
    good.script(name, "A", partial(big_answer(name, 200)))
    over_udp = ask(name, "A", main.dns_port, use_edns=0, payload=4096)
    assert over_udp.flags & dns.flags.TC and not over_udp.answer  # the client will ask over TCP
    over_tcp = ask(name, "A", main.dns_port, tcp=True)
    assert over_tcp.flags & dns.flags.TC and len(answers(over_tcp)) == 200  # never an empty NOERROR
    ask(name, "A", main.dns_port, tcp=True)
    assert [q.transport for q in good.queries_for(name)] == ["udp", "tcp"] * 3  # each time upstream


def test_tcp_clients_are_served_several_queries_per_connection(main: Running, good: TestNameserver) -> None:
    names = ["tcp1.fwd.test.", "tcp2.fwd.test.", "tcp1.fwd.test."]  # miss, miss, hit
    with socket.create_connection((HOST, main.dns_port), timeout=3) as conn:
        for ident, name in enumerate(names, start=100):
            wire = dns.message.make_query(name, "A", id=ident).to_wire()
            conn.sendall(struct.pack("!H", len(wire)) + wire)
            (size,) = struct.unpack("!H", conn.recv(2, socket.MSG_WAITALL))
            reply = dns.message.from_wire(conn.recv(size, socket.MSG_WAITALL))
            assert reply.id == ident and answers(reply) == {f"{name} A 192.0.2.1"}
    assert len(good.queries_for("tcp1.fwd.test.")) == 1


def test_externalname_target_is_resolved_through_the_default_upstream(
    main: Running, good: TestNameserver
) -> None:
    good.script("www.example.com", "A", answer("www.example.com. 120 IN A 192.0.2.80"))
    reply = ask("search.default.svc.cluster.local.", "A", main.dns_port)
    assert reply.rcode() == dns.rcode.NOERROR
    assert answers(reply) == {
        "search.default.svc.cluster.local. CNAME www.example.com.",
        "www.example.com. A 192.0.2.80",
    }
    assert len(good.queries_for("www.example.com.", "A")) == 1
    # A target inside the cluster is followed through serve.
    reply = ask("api-alias.default.svc.cluster.local.", "A", main.dns_port)
    assert answers(reply) == {
        "api-alias.default.svc.cluster.local. CNAME myservice.default.svc.cluster.local.",
        "myservice.default.svc.cluster.local. A 10.96.100.10",
    }


def cnames(reply: dns.message.Message) -> int:
    return sum(len(rrset) for rrset in reply.answer if rrset.rdtype == dns.rdatatype.CNAME)


def test_looping_cname_chains_terminate(main: Running, good: TestNameserver) -> None:
    """The reply is the chain up to the repeat, and no name is asked twice."""
    good.script("loop-a.fwd.test", None, answer("loop-a.fwd.test. 60 IN CNAME loop-b.fwd.test."))
    good.script("loop-b.fwd.test", None, answer("loop-b.fwd.test. 60 IN CNAME loop-a.fwd.test."))
    good.script("self.fwd.test", None, answer("self.fwd.test. 60 IN CNAME self.fwd.test."))
    for name, links in (("loop-a.fwd.test.", 2), ("self.fwd.test.", 1)):
        reply = ask(name, "A", main.dns_port, timeout=3)
        assert reply.rcode() == dns.rcode.NOERROR and cnames(reply) == links, reply
    for name in ("loop-a.fwd.test.", "loop-b.fwd.test.", "self.fwd.test."):
        assert len(good.queries_for(name)) <= 1
    assert main.process.poll() is None


def test_cname_chains_longer_than_eight_links_terminate(main: Running, good: TestNameserver) -> None:
    chain = [f"link{i}.fwd.test." for i in range(15)]
    for here, there in itertools.pairwise(chain):
        good.script(here, None, answer(f"{here} 60 IN CNAME {there}"))
    good.script(chain[-1], None, answer(f"{chain[-1]} 60 IN A 192.0.2.15"))
    reply = ask(chain[0], "A", main.dns_port, timeout=3)
    assert reply.rcode() == dns.rcode.NOERROR and 8 <= cnames(reply) <= 9, reply
    assert not any(rrset.rdtype == dns.rdatatype.A for rrset in reply.answer)  # the end is never reached
    asked = [name for name in chain if good.queries_for(name)]
    assert asked == chain[: len(asked)] and len(asked) <= 9  # the start and at most 8 links


def test_concurrent_questions_into_a_cname_loop_terminate(main: Running, good: TestNameserver) -> None:
    """Two clients asking both ends of a CNAME loop at once: neither chain may wait for the other's
    question in flight (that deadlocked every later question for either name, before 5837d31)."""
    good.script("ring-a.fwd.test", None, slow(0.3, answer("ring-a.fwd.test. 60 IN CNAME ring-b.fwd.test.")))
    good.script("ring-b.fwd.test", None, slow(0.3, answer("ring-b.fwd.test. 60 IN CNAME ring-a.fwd.test.")))
    names = ["ring-a.fwd.test.", "ring-b.fwd.test."]
    for reply, _ in timed(main.dns_port, names, timeout=3):
        assert isinstance(reply, dns.message.Message), reply
        assert reply.rcode() == dns.rcode.NOERROR and cnames(reply) == 2, reply


# -- --dns-forward-max -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(good: TestNameserver) -> Iterator[Running]:
    with cache("--no-resolv", f"--server={good.address}", "--dns-forward-max=2") as running:
        yield running


def test_misses_beyond_forward_max_get_servfail_at_once(limited: Running, good: TestNameserver) -> None:
    names = [f"max{i}.fwd.test." for i in range(10)]
    for name in names:
        good.script(name, "A", slow(1.0, answer(a_record("192.0.2.20"))))
    results = timed(limited.dns_port, names)
    quick_failures = [
        seconds
        for reply, seconds in results
        if isinstance(reply, dns.message.Message) and reply.rcode() == dns.rcode.SERVFAIL and seconds < 0.5
    ]
    answered = [
        r for r, _ in results if isinstance(r, dns.message.Message) and r.rcode() == dns.rcode.NOERROR
    ]
    assert len(quick_failures) >= 8
    assert len(quick_failures) + len(answered) == 10
    assert scrape(limited.metrics_port).get("kubedns_cache_forward_rejected_total", route=".") >= 8
    # The slots are free again afterwards; the rejected answers were not cached.
    rejected_name = next(
        name
        for name, (reply, _) in zip(names, results, strict=True)
        if isinstance(reply, dns.message.Message) and reply.rcode() == dns.rcode.SERVFAIL
    )
    good.script(rejected_name, "A", answer(a_record("192.0.2.21")))
    assert answers(ask(rejected_name, "A", limited.dns_port)) == {f"{rejected_name} A 192.0.2.21"}


# -- two upstreams, the first one misbehaving ----------------------------------------------------------


@pytest.fixture(scope="module")
def first() -> Iterator[TestNameserver]:
    with run_in_thread(TestNameserver(default=answer(a_record("192.0.2.31")))) as ns:
        yield ns


@pytest.fixture(scope="module")
def second() -> Iterator[TestNameserver]:
    with run_in_thread(TestNameserver(default=answer(a_record("192.0.2.32")))) as ns:
        yield ns


@pytest.fixture(scope="module")
def pair(first: TestNameserver, second: TestNameserver) -> Iterator[Running]:
    with cache("--no-resolv", f"--server={first.address}", f"--server={second.address}") as running:
        yield running


def up(running: Running, ns: TestNameserver) -> float:
    return scrape(running.metrics_port).get("kubedns_forward_upstream_up", to=ns.address)


def test_bad_replies_are_skipped_and_the_right_one_taken(
    pair: Running, first: TestNameserver, second: TestNameserver
) -> None:
    first.script("wid-then-right.fwd.test", "A", wrong_id(answer(a_record("192.0.2.31")), then_right=True))
    first.script("mm-then-right.fwd.test", "A", mismatched_question(answer(a_record("192.0.2.31")), True))
    names = ["wid-then-right.fwd.test.", "mm-then-right.fwd.test."]
    for name, (reply, seconds) in zip(names, timed(pair.dns_port, names), strict=True):
        assert isinstance(reply, dns.message.Message), reply
        assert answers(reply) == {f"{name} A 192.0.2.31"} and seconds < 1.0
        assert second.queries_for(name) == []


def test_wrong_id_mismatched_and_garbage_replies_are_ignored_until_the_timeout(
    pair: Running, first: TestNameserver, second: TestNameserver
) -> None:
    wait_until(lambda: up(pair, first) == 1, 6)
    first.script("wid.fwd.test", "A", wrong_id(answer(a_record("192.0.2.31"))))
    first.script("mm.fwd.test", "A", mismatched_question(answer(a_record("192.0.2.31"))))
    first.script("garbage.fwd.test", "A", garbage())
    names = ["wid.fwd.test.", "mm.fwd.test.", "garbage.fwd.test."]
    for name, (reply, seconds) in zip(names, timed(pair.dns_port, names), strict=True):
        assert isinstance(reply, dns.message.Message), (name, reply, pair.log_text()[-3000:])
        assert answers(reply) == {f"{name} A 192.0.2.32"}, name
        assert UPSTREAM_TIMEOUT - 0.2 <= seconds <= UPSTREAM_TIMEOUT + 1.5
        assert len(first.queries_for(name)) == 1
    no_tracebacks(pair)


def test_dead_upstream_fails_over_is_marked_down_and_probed_back(
    pair: Running, first: TestNameserver, second: TestNameserver
) -> None:
    wait_until(lambda: up(pair, first) == 1, 6)  # after the previous test's failures
    first.set_default(dead())
    names = ["dead1.fwd.test.", "dead2.fwd.test."]
    for name, (reply, seconds) in zip(names, timed(pair.dns_port, names), strict=True):
        assert isinstance(reply, dns.message.Message), reply
        assert answers(reply) == {f"{name} A 192.0.2.32"}
        assert seconds <= UPSTREAM_TIMEOUT + 1.0
    assert up(pair, first) == 0
    assert scrape(pair.metrics_port).get("kubedns_forward_failures_total", to=first.address) >= 2
    # Down: the next miss goes to the second server first, with no timeout.
    reply, seconds = timed(pair.dns_port, ["while-down.fwd.test."])[0]
    assert isinstance(reply, dns.message.Message) and seconds < 1.0
    assert answers(reply) == {"while-down.fwd.test. A 192.0.2.32"}
    first.set_default(answer(a_record("192.0.2.31")))
    wait_until(lambda: up(pair, first) == 1, 5)
    assert answers(ask("back-up.fwd.test.", "A", pair.dns_port)) == {"back-up.fwd.test. A 192.0.2.31"}


# -- --dns-loop-detect: a real dnsmasq upstream that forwards back to us ------------------------------


@pytest.fixture(scope="module")
def loop_detecting(looped_port: int, loop: Dnsmasq, good: TestNameserver) -> Iterator[Running]:
    with cache(
        "--no-resolv",
        "--dns-loop-detect",
        f"--server={loop.address}",
        f"--server={good.address}",
        f"--port={looped_port}",
    ) as running:
        yield running


def test_loop_detect_disables_an_upstream_that_forwards_back(
    loop_detecting: Running, loop: Dnsmasq, good: TestNameserver
) -> None:
    line = loop_detecting.wait_for_log(r"forwarding loop").string
    assert loop.address in line
    assert scrape(loop_detecting.metrics_port).get("kubedns_forward_upstream_up", to=loop.address) == 0
    names = [f"after-loop{i}.fwd.test." for i in range(3)]
    for name, (reply, seconds) in zip(names, timed(loop_detecting.dns_port, names), strict=True):
        assert isinstance(reply, dns.message.Message), reply
        assert answers(reply) == {f"{name} A 192.0.2.1"} and seconds < 1.0
        assert name.rstrip(".") not in loop.log_text()
    no_tracebacks(loop_detecting)
