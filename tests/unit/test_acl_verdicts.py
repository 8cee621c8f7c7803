"""ClientAcl's verdicts, the interface subnets it can be given, and the REFUSED replies strangers get."""

from __future__ import annotations

import ipaddress

import dns.message
import dns.rcode

from kubedns_py.dnswire.splice import UNREADABLE, refusal
from kubedns_py.net import acl as acl_module
from kubedns_py.net.acl import ClientAcl, parse_networks
from kubedns_py.net.interfaces import local_networks


def test_verdicts_follow_the_networks() -> None:
    acl = ClientAcl(parse_networks(["10.0.0.0/8", "fd00::1/64"]))
    assert acl.allows("10.1.2.3") and acl.allows("fd00::99") and acl.allows("fd00::99%eth0")
    assert acl.allows("::ffff:10.0.0.1")  # IPv4-mapped, as a dual-stack socket reports it
    assert not acl.allows("192.0.2.1") and not acl.allows("not an address") and not acl.allows("")
    assert acl.verdicts["10.1.2.3"] is True and acl.verdicts["192.0.2.1"] is False


def test_verdicts_are_bounded_and_forgotten_when_the_networks_change() -> None:
    acl = ClientAcl(parse_networks(["10.0.0.0/8"]))
    for n in range(acl_module.VERDICTS_LIMIT + 10):
        acl.allows(str(ipaddress.IPv4Address(0x0A000000 + n)))
    assert len(acl.verdicts) <= acl_module.VERDICTS_LIMIT
    acl.set_networks(parse_networks(["192.0.2.0/24"]))
    assert not acl.verdicts
    assert acl.allows("192.0.2.1") and not acl.allows("10.0.0.1")


def test_local_networks_include_loopback() -> None:
    networks = local_networks()
    assert ipaddress.ip_network("127.0.0.0/8") in networks
    assert all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in networks)


def test_refusal_echoes_the_question_or_says_refused_in_the_header() -> None:
    query = dns.message.make_query("a.example.", "AAAA", use_edns=0)
    result = refusal(query.to_wire(), 0x80, 1232)
    assert result is not None
    reply = dns.message.from_wire(result[0])
    assert result[1] == 28 and reply.rcode() == dns.rcode.REFUSED and reply.id == query.id
    assert reply.question == query.question and reply.edns == 0
    mangled = query.to_wire()[:4] + b"\x00\x02" + query.to_wire()[6:]  # two questions: unreadable
    result = refusal(mangled, 0, 512)
    assert result is not None and result[1] == UNREADABLE and result[0][3] & 0x0F == dns.rcode.REFUSED
    assert refusal(b"\x00" * 5, 0, 512) is None  # a runt is never answered
