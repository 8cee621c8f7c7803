"""The cache under bad upstreams and floods: malformed replies, absurd TTLs, many waiters, many first
questions at once, memos that must stay bounded."""

from __future__ import annotations

import asyncio
import struct
import time

import dns.message
import pytest
from dnslib import EDNS0, RR, DNSRecord

from kubedns_py.cache.forward.forwarder import Forwarder
from kubedns_py.cache.forward.loopdetect import LoopDetector
from kubedns_py.cache.forward.routing import RouteTable
from kubedns_py.cache.front.chaos import Chaos
from kubedns_py.cache.front.frontend import Frontend
from kubedns_py.cache.resolve.resolver import Resolver
from kubedns_py.cache.servers import Upstream
from kubedns_py.cache.store.cache import CacheKey, ResponseCache
from kubedns_py.cache.store.rules import CacheRules
from kubedns_py.dnswire.response import read_reply, scan
from kubedns_py.dnswire.walk import WireError, walk
from kubedns_py.net.stats import DnsStats
from tests.support.nameservers import TestNameserver, answer, dead, slow

CLIENT = ("127.0.0.1", 5300)  # the address a query came from


def reply_wire(*answers: str, additional: tuple[RR, ...] = ()) -> bytes:
    record = DNSRecord.question("www.example.com", "A").reply()
    for text in answers:
        record.add_answer(*RR.fromZone(text))
    for rr in additional:
        record.add_ar(rr)
    return bytes(record.pack())


def test_opt_that_is_not_last_is_moved_last() -> None:
    wire = reply_wire(
        "www.example.com. 60 IN A 192.0.2.1",
        additional=(EDNS0(udp_len=1232), *RR.fromZone("ns.example.com. 60 IN A 192.0.2.53")),
    )
    reply = read_reply(wire)
    walked = walk(reply.wire)
    opt = walked.opt()
    assert opt is not None and opt.end == len(reply.wire)
    assert [r.rtype for r in walked.records] == [1, 1, 41]
    assert reply.counts == (1, 0, 1) and reply.body == reply.wire[reply.question_end : opt.start]


@pytest.mark.parametrize("where", ["answer", "twice"])
def test_misplaced_or_repeated_opt_is_a_malformed_reply(where: str) -> None:
    record = DNSRecord.question("www.example.com", "A").reply()
    record.add_answer(*RR.fromZone("www.example.com. 60 IN A 192.0.2.1"))
    if where == "answer":
        record.add_answer(EDNS0(udp_len=1232))
    else:
        record.add_ar(EDNS0(udp_len=1232))
        record.add_ar(EDNS0(udp_len=512))
    wire = bytes(record.pack())
    with pytest.raises(WireError):
        read_reply(wire)


def test_ttls_with_the_top_bit_set_count_as_zero() -> None:
    wire = bytearray(reply_wire("www.example.com. 60 IN A 192.0.2.1"))
    record = walk(bytes(wire)).records[0]
    struct.pack_into("!I", wire, record.ttl_offset, 2**31)
    assert walk(bytes(wire)).records[0].ttl == 0
    assert scan(bytes(wire)).ttls == (0,)
    cache = ResponseCache(10, CacheRules())
    key = CacheKey(b"k", 1, 1, False, False)
    assert cache.store(key, scan(bytes(wire)), time.monotonic()) is None  # lives 0 s


def frontend(
    upstreams: tuple[Upstream, ...], max_waiting: int = 2000, forward_max: int = 150, timeout: float = 2.0
) -> Frontend:
    cache = ResponseCache(1000, CacheRules())
    forwarder = Forwarder(RouteTable(domains={}, default=upstreams), forward_max, timeout, lambda *_: None)
    return Frontend(
        cache,
        Resolver(cache, forwarder),
        DnsStats("cache"),
        Chaos(dict, list),
        LoopDetector(False),
        max_waiting,
    )


async def test_waiters_beyond_the_cap_get_servfail_at_once() -> None:
    async with TestNameserver(dead()) as upstream:
        front = frontend((Upstream("127.0.0.1", upstream.port),), max_waiting=3)
        sent: list[bytes] = []
        immediate = []
        for ident in range(10):
            query = dns.message.make_query("slow.example.com.", "A")
            query.id = ident
            reply = front.udp_handler(lambda data, _: sent.append(data))(query.to_wire(), ("127.0.0.1", 1))
            immediate.append(reply)
        assert immediate[:3] == [None, None, None]  # three wait for the upstream
        assert all(r is not None and r[3] & 0x0F == 2 for r in immediate[3:])  # the rest: SERVFAIL now
        await front.close()


async def test_queries_upstream_leave_from_random_ports_with_random_ids() -> None:
    """RFC 5452: a forged reply must guess the source port as well as the ID."""
    async with TestNameserver(answer("{qname} 60 IN A 192.0.2.1")) as upstream:
        front = frontend((Upstream("127.0.0.1", upstream.port),))
        replies: list[bytes] = []
        batch_answered = asyncio.Event()

        def collect(reply: bytes, _: object) -> None:
            replies.append(reply)
            if len(replies) % 50 == 0:
                batch_answered.set()

        handler = front.udp_handler(collect)
        for batch in range(20):  # in batches, so that the test nameserver's socket buffer never overflows
            batch_answered.clear()
            for i in range(50 * batch, 50 * batch + 50):
                handler(dns.message.make_query(f"n{i}.example.com.", "A").to_wire(), ("127.0.0.1", 1))
            async with asyncio.timeout(10):
                await batch_answered.wait()
        assert all(reply[3] & 0x0F == 0 for reply in replies)
        sent = [q for q in upstream.queries if q.transport == "udp"]
        assert len(sent) == 1000
        assert len({q.source_port for q in sent}) >= 200
        assert len({q.id for q in sent}) >= 990
        await front.close()


async def test_every_spelling_is_answered_from_the_one_entry_and_nothing_grows_per_spelling() -> None:
    async with TestNameserver(answer("{qname} 300 IN A 192.0.2.1")) as upstream:
        front = frontend((Upstream("127.0.0.1", upstream.port),))
        name = "case.example.com."
        query = dns.message.make_query(name, "A")
        done = asyncio.Event()
        front.udp_handler(lambda *_: done.set())(query.to_wire(), CLIENT)
        await done.wait()
        # Every spelling of the name is a different query: a resolver randomising case sends many.
        handler = front.udp_handler(lambda *_: None)
        for i in range(5000):
            spelled = "".join(c.upper() if (i >> n) & 1 else c for n, c in enumerate(name))
            variant = dns.message.make_query(spelled, "A", id=i)
            reply = handler(variant.to_wire(), CLIENT)
            assert reply is not None and reply[:2] == struct.pack("!H", i)
            assert dns.message.from_wire(reply).question[0].name.to_text() == spelled
        assert len(upstream.queries_for(name)) == 1
        assert len(front._cache) == 1 and len(front._stats._tallies) == 1
        await front.close()


async def test_an_unresolvable_cname_target_is_servfail_and_never_cached() -> None:
    async with (
        TestNameserver(answer("{qname} 30 IN CNAME target.example.com.")) as cluster,
        TestNameserver(dead()) as internet,
    ):
        routes = RouteTable(
            domains={"cluster.local": (Upstream("127.0.0.1", cluster.port),)},
            default=(Upstream("127.0.0.1", internet.port),),
        )
        cache = ResponseCache(100, CacheRules(stale_ttl=0))
        forwarder = Forwarder(routes, 150, 0.3, lambda *_: None)
        front = Frontend(
            cache, Resolver(cache, forwarder), DnsStats("cache"), Chaos(dict, list), LoopDetector(False)
        )
        query = dns.message.make_query("ext.n.svc.cluster.local.", "A")
        first = await front.on_tcp(query.to_wire())
        assert first is not None and dns.message.from_wire(first).rcode() == 2  # SERVFAIL, not a bare CNAME
        internet.script("target.example.com.", "A", answer("target.example.com. 60 IN A 192.0.2.7"))
        second = await front.on_tcp(query.to_wire())
        assert second is not None
        assert [str(rrset[0]) for rrset in dns.message.from_wire(second).answer] == [
            "target.example.com.",
            "192.0.2.7",
        ]
        await front.close()
        forwarder.close()


async def test_an_expired_answer_is_served_when_upstreams_are_slow_and_refreshed_behind() -> None:
    name = "slow.example.com."
    async with TestNameserver(answer(f"{name} 1 IN A 192.0.2.1")) as upstream:
        front = frontend((Upstream("127.0.0.1", upstream.port),), timeout=5.0)  # slow, not dead
        query = dns.message.make_query(name, "A").to_wire()
        assert await front.on_tcp(query) is not None
        await asyncio.sleep(1.1)  # the TTL clock has to move: the entry expires
        upstream.script(name, "A", slow(3.0, answer(f"{name} 60 IN A 192.0.2.2")))
        started = time.monotonic()
        stale = dns.message.from_wire(await front.on_tcp(query) or b"")
        assert time.monotonic() - started < 2.5  # RFC 8767's client-response timer, not the 3 s upstream
        assert [(r.ttl, str(r[0])) for r in stale.answer] == [(30, "192.0.2.1")]
        await upstream.wait_for_queries_async(2, name=name)
        fresh = None
        async with asyncio.timeout(5):
            while fresh is None or str(fresh.answer[0][0]) != "192.0.2.2":  # the background refresh lands
                fresh = dns.message.from_wire(await front.on_tcp(query) or b"")
                await asyncio.sleep(0.1)
        await front.close()
