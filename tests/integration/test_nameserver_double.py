"""The scriptable test nameserver: answers, faults, query log, runtime changes, sync and async use."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.dnsclient import answers, ttls
from tests.support.nameservers import (
    HOST,
    Behaviour,
    TestNameserver,
    answer,
    big_answer,
    cname_chain,
    dead,
    drop_first,
    garbage,
    mismatched_question,
    nodata,
    nxdomain,
    refused,
    run_in_thread,
    servfail,
    slow,
    truncate,
    wrong_id,
)

pytestmark = pytest.mark.timeout(20)

WWW = "www.example.com. 300 IN A 192.0.2.1"
SHORT = 0.5  # client timeout where no reply is the expected outcome


@pytest.fixture
def ns() -> Iterator[TestNameserver]:
    with run_in_thread(TestNameserver().script("www.example.com", "A", answer(WWW))) as server:
        yield server


def udp(ns: TestNameserver, q: dns.message.Message, timeout: float = 3.0, **kw: bool) -> dns.message.Message:
    return dns.query.udp(q, HOST, port=ns.port, timeout=timeout, **kw)  # type: ignore[arg-type]


def tcp(ns: TestNameserver, q: dns.message.Message, timeout: float = 3.0) -> dns.message.Message:
    return dns.query.tcp(q, HOST, port=ns.port, timeout=timeout)


def raw_udp(ns: TestNameserver, q: dns.message.Message, replies: int) -> list[bytes]:
    """Send q and collect exactly `replies` datagrams, whatever they hold."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3.0)
        sock.sendto(q.to_wire(), (HOST, ns.port))
        return [sock.recv(65535) for _ in range(replies)]


# -- answers ---------------------------------------------------------------------------------------


def test_answer_echoes_id_case_rd_and_keeps_ttl(ns: TestNameserver) -> None:
    q = dns.message.make_query("WwW.ExAmPle.COM", "A")
    for reply in (udp(ns, q), tcp(ns, q)):
        assert reply.id == q.id
        assert reply.question[0].name.to_text() == "WwW.ExAmPle.COM."  # the asker's case
        assert reply.flags & dns.flags.RD and reply.flags & dns.flags.RA
        assert not reply.flags & dns.flags.AA
        assert answers(reply) == {"www.example.com. A 192.0.2.1"}
        assert ttls(reply) == [300]
    no_rd = dns.message.make_query("www.example.com", "A")
    no_rd.flags &= ~dns.flags.RD
    assert not udp(ns, no_rd).flags & dns.flags.RD


def test_same_port_for_udp_and_tcp_and_address_formats(ns: TestNameserver) -> None:
    assert ns.port > 0
    assert ns.address == f"127.0.0.1#{ns.port}"
    assert ns.hostport == f"127.0.0.1:{ns.port}"
    assert [q.transport for q in ns.queries] == []
    udp(ns, dns.message.make_query("www.example.com", "A"))
    tcp(ns, dns.message.make_query("www.example.com", "A"))
    assert [q.transport for q in ns.queries_for("www.example.com")] == ["udp", "tcp"]


def test_aa_is_optional(ns: TestNameserver) -> None:
    ns.script("auth.example.com", "A", answer("auth.example.com. 60 IN A 192.0.2.9", aa=True))
    assert udp(ns, dns.message.make_query("auth.example.com", "A")).flags & dns.flags.AA


def test_nxdomain_and_nodata_carry_soa_with_minimum(ns: TestNameserver) -> None:
    ns.script("gone.example.com", None, nxdomain("example.com.", minimum=30))
    ns.script("www.example.com", "AAAA", nodata("example.com.", minimum=45, soa_ttl=600))
    nx = udp(ns, dns.message.make_query("gone.example.com", "A"))
    assert nx.rcode() == dns.rcode.NXDOMAIN and not nx.answer
    (soa,) = nx.authority
    assert soa.name.to_text() == "example.com." and soa.rdtype == dns.rdatatype.SOA
    assert soa[0].minimum == 30 and soa.ttl == 30
    empty = udp(ns, dns.message.make_query("www.example.com", "AAAA"))
    assert empty.rcode() == dns.rcode.NOERROR and not empty.answer
    assert empty.authority[0][0].minimum == 45 and empty.authority[0].ttl == 600
    # The A record of the same name is untouched by the AAAA script.
    assert udp(ns, dns.message.make_query("www.example.com", "A")).answer


@pytest.mark.parametrize(
    ("behaviour", "rcode"), [(servfail(), dns.rcode.SERVFAIL), (refused(), dns.rcode.REFUSED)]
)
def test_error_rcodes(ns: TestNameserver, behaviour: Behaviour, rcode: dns.rcode.Rcode) -> None:
    ns.script("err.example.com", None, behaviour)
    reply = udp(ns, dns.message.make_query("err.example.com", "TXT"))
    assert reply.rcode() == rcode and not reply.answer


def test_unscripted_names_get_the_default_with_placeholders() -> None:
    default = nxdomain(minimum=10)  # SOA owner "{zone}": the asked name's parent
    with run_in_thread(TestNameserver(default)) as ns:
        reply = udp(ns, dns.message.make_query("nothing.here.example", "A"))
        assert reply.rcode() == dns.rcode.NXDOMAIN
        assert reply.authority[0].name.to_text() == "here.example."
        assert ns.queries_for(None)[0].name == "nothing.here.example."
        ns.set_default(answer("{qname} 7 IN A 192.0.2.7"))
        reply = udp(ns, dns.message.make_query("Any.Name.example", "A"))
        assert answers(reply) == {"any.name.example. A 192.0.2.7"} and ttls(reply) == [7]
    with run_in_thread(TestNameserver()) as ns:  # the default default is REFUSED
        assert udp(ns, dns.message.make_query("x.example", "A")).rcode() == dns.rcode.REFUSED


def test_cname_chain(ns: TestNameserver) -> None:
    ns.script("a.example.com", "A", cname_chain("a.example.com.", "b.example.net.", "c.example.org.", ttl=42))
    reply = udp(ns, dns.message.make_query("a.example.com", "A"))
    assert answers(reply) == {
        "a.example.com. CNAME b.example.net.",
        "b.example.net. CNAME c.example.org.",
        "c.example.org. A 192.0.2.1",
    }
    assert set(ttls(reply)) == {42}


def test_bad_record_line_fails_when_scripted() -> None:
    with pytest.raises(ValueError, match="unparseable"):
        answer("this is not a record")


# -- truncation and TCP fallback -------------------------------------------------------------------


def test_big_answer_truncates_over_udp_and_is_whole_over_tcp(ns: TestNameserver) -> None:
    ns.script("big.example.com", "A", big_answer("big.example.com.", 200))
    q = dns.message.make_query("big.example.com", "A")
    over_udp = udp(ns, q)
    assert over_udp.flags & dns.flags.TC and not over_udp.answer
    assert over_udp.question[0].name == q.question[0].name
    assert len(answers(tcp(ns, q))) == 200
    # A client advertising a big enough EDNS buffer gets it all over UDP.
    roomy = dns.message.make_query("big.example.com", "A", use_edns=0, payload=8192)
    assert len(answers(udp(ns, roomy))) == 200
    reply, used_tcp = dns.query.udp_with_fallback(q, HOST, port=ns.port, timeout=3.0)
    assert used_tcp and len(answers(reply)) == 200
    assert [x.transport for x in ns.queries_for("big.example.com")] == ["udp", "tcp", "udp", "udp", "tcp"]


def test_truncate_sets_tc_over_udp_only(ns: TestNameserver) -> None:
    ns.script("tc.example.com", "A", truncate(answer("tc.example.com. 60 IN A 192.0.2.3")))
    q = dns.message.make_query("tc.example.com", "A")
    over_udp = udp(ns, q)
    assert over_udp.flags & dns.flags.TC and not over_udp.answer
    over_tcp = tcp(ns, q)
    assert not over_tcp.flags & dns.flags.TC and answers(over_tcp) == {"tc.example.com. A 192.0.2.3"}


# -- faults ----------------------------------------------------------------------------------------


def test_dead_never_answers_over_udp_or_tcp(ns: TestNameserver) -> None:
    ns.script("dead.example.com", None, dead())
    q = dns.message.make_query("dead.example.com", "A")
    with pytest.raises(dns.exception.Timeout):
        udp(ns, q, timeout=SHORT)
    with pytest.raises(dns.exception.Timeout):
        tcp(ns, q, timeout=SHORT)
    assert len(ns.queries_for("dead.example.com", "A")) == 2
    assert udp(ns, dns.message.make_query("www.example.com", "A")).answer  # others still served


def test_wrong_id_then_optionally_right(ns: TestNameserver) -> None:
    ns.script("id.example.com", "A", wrong_id(answer("id.example.com. 60 IN A 192.0.2.4")))
    q = dns.message.make_query("id.example.com", "A")
    with pytest.raises(dns.query.BadResponse):
        udp(ns, q)
    ns.script("id.example.com", "A", wrong_id(answer("id.example.com. 60 IN A 192.0.2.4"), then_right=True))
    first, second = (dns.message.from_wire(w) for w in raw_udp(ns, q, replies=2))
    assert first.id == (q.id + 1) & 0xFFFF and second.id == q.id
    # A client that skips unrelated replies gets the right one.
    assert answers(udp(ns, q, ignore_errors=True)) == {"id.example.com. A 192.0.2.4"}


def test_mismatched_question_keeps_id(ns: TestNameserver) -> None:
    ns.script("mm.example.com", "A", mismatched_question(answer("mm.example.com. 60 IN A 192.0.2.5")))
    q = dns.message.make_query("mm.example.com", "A")
    (wire,) = raw_udp(ns, q, replies=1)
    reply = dns.message.from_wire(wire)
    assert reply.id == q.id and reply.question[0].name.to_text() == "mismatch.mm.example.com."
    with pytest.raises(dns.query.BadResponse):
        udp(ns, q)
    ns.script("mm.example.com", "A", mismatched_question(answer("mm.example.com. 60 IN A 192.0.2.5"), True))
    assert answers(udp(ns, q, ignore_errors=True)) == {"mm.example.com. A 192.0.2.5"}


def test_garbage_carries_the_id_but_does_not_parse(ns: TestNameserver) -> None:
    ns.script("junk.example.com", None, garbage())
    q = dns.message.make_query("junk.example.com", "A")
    (wire,) = raw_udp(ns, q, replies=1)
    assert int.from_bytes(wire[:2], "big") == q.id
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(wire)
    with pytest.raises(dns.exception.DNSException):
        tcp(ns, q)


def test_drop_first_ignores_n_queries_then_answers(ns: TestNameserver) -> None:
    ns.script("flaky.example.com", "A", drop_first(2, answer("flaky.example.com. 60 IN A 192.0.2.6")))
    q = dns.message.make_query("flaky.example.com", "A")
    for _ in range(2):
        with pytest.raises(dns.exception.Timeout):
            udp(ns, q, timeout=SHORT)
    assert answers(udp(ns, q)) == {"flaky.example.com. A 192.0.2.6"}
    assert len(ns.queries_for("flaky.example.com")) == 3


def test_slow_answers_late_without_blocking_others(ns: TestNameserver) -> None:
    ns.script("slow.example.com", "A", slow(1.0, answer("slow.example.com. 60 IN A 192.0.2.8")))
    done: dict[str, float] = {}

    def ask_slow() -> None:
        udp(ns, dns.message.make_query("slow.example.com", "A"))
        done["slow"] = time.monotonic()

    start = time.monotonic()
    worker = threading.Thread(target=ask_slow)
    worker.start()
    ns.wait_for_queries(1, "slow.example.com")  # the slow query is in flight
    assert udp(ns, dns.message.make_query("www.example.com", "A")).answer
    fast = time.monotonic()
    worker.join(5)
    assert "slow" in done and fast < done["slow"]
    assert done["slow"] - start >= 1.0


# -- the query log ---------------------------------------------------------------------------------


def test_query_log_records_flags_and_transport(ns: TestNameserver) -> None:
    q = dns.message.make_query("www.example.com", "A", want_dnssec=True, payload=1400)
    q.flags |= dns.flags.CD
    udp(ns, q)
    tcp(ns, dns.message.make_query("WWW.example.com.", "MX", use_edns=False))
    first, second = ns.queries_for("www.EXAMPLE.com")
    assert (first.rtype, first.transport, first.id) == ("A", "udp", q.id)
    assert first.rd and first.cd and first.edns and first.do and first.payload == 1400
    assert (second.name, second.rtype, second.transport) == ("WWW.example.com.", "MX", "tcp")
    assert not second.edns and not second.do and second.payload is None and not second.cd
    assert ns.queries_for("www.example.com", "mx") == [second]
    assert first.time <= second.time
    ns.clear_queries()
    assert ns.queries == []


def test_wait_for_queries_wakes_on_arrival_and_times_out(ns: TestNameserver) -> None:
    def fire() -> None:
        for _ in range(3):
            udp(ns, dns.message.make_query("www.example.com", "A"))

    worker = threading.Thread(target=fire)
    worker.start()
    assert len(ns.wait_for_queries(3, "www.example.com", "A", timeout=5)) >= 3
    worker.join(5)
    with pytest.raises(TimeoutError, match=r"other\.example"):
        ns.wait_for_queries(1, "other.example", timeout=0.1)


def test_script_changes_at_runtime(ns: TestNameserver) -> None:
    q = dns.message.make_query("www.example.com", "A")
    assert ttls(udp(ns, q)) == [300]
    ns.script("www.example.com", "A", answer("www.example.com. 5 IN A 192.0.2.1"))
    assert ttls(udp(ns, q)) == [5]
    ns.script("www.example.com", None, dead())  # the exact-type entry still wins
    assert ttls(udp(ns, q)) == [5]
    ns.unscript("www.example.com", "A")
    with pytest.raises(dns.exception.Timeout):
        udp(ns, q, timeout=SHORT)


# -- async use in the test's own event loop --------------------------------------------------------


async def test_async_answers_udp_tcp_and_fallback() -> None:
    async with TestNameserver().script("www.example.com", "A", answer(WWW)) as ns:
        ns.script("big.example.com", "A", big_answer("big.example.com.", 200))
        q = dns.message.make_query("www.example.com", "A")
        assert answers(await dns.asyncquery.udp(q, HOST, port=ns.port, timeout=3)) == {
            "www.example.com. A 192.0.2.1"
        }
        assert (await dns.asyncquery.tcp(q, HOST, port=ns.port, timeout=3)).id == q.id
        big = dns.message.make_query("big.example.com", "A")
        reply, used_tcp = await dns.asyncquery.udp_with_fallback(big, HOST, port=ns.port, timeout=3)
        assert used_tcp and len(answers(reply)) == 200


async def test_async_concurrent_queries_are_all_logged_and_slow_does_not_block() -> None:
    async with TestNameserver(slow(1.0, answer("{qname} 60 IN A 192.0.2.8"))) as ns:
        ns.script("fast.example.com", "A", answer("fast.example.com. 60 IN A 192.0.2.9"))
        slow_queries = [dns.message.make_query(f"s{i}.example.com", "A") for i in range(5)]
        pending = [
            asyncio.create_task(dns.asyncquery.udp(q, HOST, port=ns.port, timeout=5)) for q in slow_queries
        ]
        assert len(await ns.wait_for_queries_async(5, timeout=5)) == 5
        fast = await dns.asyncquery.udp(
            dns.message.make_query("fast.example.com", "A"), HOST, port=ns.port, timeout=3
        )
        assert fast.answer and not any(task.done() for task in pending)
        replies = await asyncio.gather(*pending)
        assert [r.id for r in replies] == [q.id for q in slow_queries]
        with pytest.raises(RuntimeError, match="wait_for_queries_async"):
            ns.wait_for_queries(1)  # blocking here would freeze the server
        with pytest.raises(TimeoutError):
            await ns.wait_for_queries_async(1, "never.example", timeout=0.1)


async def test_async_wait_works_against_a_threaded_server() -> None:
    with run_in_thread(TestNameserver(answer("{qname} 60 IN A 192.0.2.1"))) as ns:
        q = dns.message.make_query("t.example.com", "A")
        waiter = asyncio.create_task(ns.wait_for_queries_async(1, "t.example.com", timeout=5))
        await dns.asyncquery.udp(q, HOST, port=ns.port, timeout=3)
        assert [x.id for x in await waiter] == [q.id]
