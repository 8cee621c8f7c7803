"""Zone rules that need odd data: CNAME chains inside the zone, and failures while answering."""

from __future__ import annotations

from types import SimpleNamespace

import dns.message
import dns.rcode
from dnslib import QTYPE, DNSLabel

from kubedns_py.cluster.answers import WireZone
from kubedns_py.cluster.objects import Kind, from_dict
from kubedns_py.cluster.store import Store, Synced, Upsert
from kubedns_py.cluster.zone import PodMode, Result, Zone
from kubedns_py.dnswire import encode
from kubedns_py.net.stats import DnsStats
from kubedns_py.serve.answerer import Answerer


def external(name: str, target: str) -> Upsert:
    return Upsert(
        from_dict(
            Kind.SERVICE,
            {
                "metadata": {"name": name, "namespace": "n"},
                "spec": {"type": "ExternalName", "externalName": target},
            },
        )
    )


def zone_with(*events: Upsert) -> Zone:
    store = Store()
    store.apply([*events, Synced(Kind.SERVICE)])
    return Zone(store, "cluster.local", 30, PodMode.INSECURE)


def zone_store(zone: Zone) -> Store:
    return zone.store


def lookup(zone: Zone, name: str, qtype: int) -> Result:
    return zone.lookup(zone.names.parse(encode.name(name)), DNSLabel(name), qtype)


def test_a_cname_loop_inside_the_zone_ends_where_it_closes() -> None:
    zone = zone_with(
        external("loop1", "loop2.n.svc.cluster.local"), external("loop2", "loop1.n.svc.cluster.local")
    )
    result = lookup(zone, "loop1.n.svc.cluster.local", QTYPE.A)
    owners = [str(rr.rname) for rr in result.answer]
    assert owners == ["loop1.n.svc.cluster.local.", "loop2.n.svc.cluster.local."]  # each CNAME once


def test_a_cname_to_the_apex_is_followed() -> None:
    zone = zone_with(external("apex", "cluster.local"))
    result = lookup(zone, "apex.n.svc.cluster.local", QTYPE.SOA)
    assert [QTYPE[rr.rtype] for rr in result.answer] == ["CNAME", "SOA"]


def broken(*_: object) -> None:
    raise RuntimeError("a bug")


def servfail_for(answerer: Answerer, name: str, qtype: str) -> None:
    query = dns.message.make_query(name, qtype)
    reply = answerer.answer(query.to_wire())
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.id == query.id and message.rcode() == dns.rcode.SERVFAIL


def test_a_failure_on_the_general_path_is_servfail_not_silence() -> None:
    zone = zone_with()
    zone.lookup = broken  # type: ignore[method-assign]
    answerer = Answerer(zone, WireZone(zone, zone_store(zone)), DnsStats("serve"))
    servfail_for(answerer, "cluster.local.", "SOA")


def test_a_failure_on_the_wire_path_is_servfail_not_silence() -> None:
    zone = zone_with()
    wire = SimpleNamespace(find=broken)  # the wire zone, failing
    servfail_for(Answerer(zone, wire, DnsStats("serve")), "x.n.svc.cluster.local.", "A")
