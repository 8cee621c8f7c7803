"""The wire zone: answers found by wire name, kept per service, and rebuilt only where the store changed."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from kubedns_py.cluster.answers import Section, Validity, WireZone
from kubedns_py.cluster.objects import Kind, from_dict
from kubedns_py.cluster.store import Delete, Store, Synced, Upsert
from kubedns_py.cluster.zone import PodMode, Zone
from kubedns_py.dnswire import encode
from kubedns_py.dnswire.header import A
from kubedns_py.net.stats import DnsStats
from kubedns_py.serve import answerer as answerer_module
from kubedns_py.serve.answerer import Answerer

ZONE = "cluster.local"


def service(name: str, ip: str, namespace: str = "n") -> Upsert:
    spec = {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    return Upsert(from_dict(Kind.SERVICE, {"metadata": {"name": name, "namespace": namespace}, "spec": spec}))


def synced_store(*events: Upsert) -> Store:
    store = Store()
    store.apply([*events, Synced(Kind.SERVICE)])
    return store


def ask(answerer: Answerer, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    reply = answerer.answer(query.to_wire())
    assert reply is not None
    return dns.message.from_wire(reply)


def records_of(wire: WireZone, name: str) -> bytes:
    found = wire.find(encode.name(name), A)
    assert found is not None
    return found[0][1]


def test_a_change_rebuilds_the_changed_service_and_keeps_the_others() -> None:
    store = synced_store(service("a", "10.0.0.1"), service("b", "10.0.0.2"))
    wire = WireZone(Zone(store, ZONE, 30, PodMode.INSECURE), store)
    # A section's records are one bytes object, built once and then found (the section's tuple itself
    # may be a new one each time, where the wire zone is compiled).
    a_before, b_before = records_of(wire, f"a.n.svc.{ZONE}"), records_of(wire, f"b.n.svc.{ZONE}")
    assert records_of(wire, f"a.n.svc.{ZONE}") is a_before

    store.apply([service("a", "10.0.0.9")])
    assert records_of(wire, f"a.n.svc.{ZONE}") is not a_before
    assert records_of(wire, f"b.n.svc.{ZONE}") is b_before


def test_a_remembered_reply_is_not_served_once_its_service_changed() -> None:
    store = synced_store(service("a", "10.0.0.1"))
    zone = Zone(store, ZONE, 30, PodMode.INSECURE)
    answerer = Answerer(zone, WireZone(zone, store), DnsStats("serve"))
    query = dns.message.make_query(f"a.n.svc.{ZONE}.", "A").to_wire()
    for _ in range(8):  # enough asks to be remembered
        answerer.answer(query)
    store.apply([service("a", "10.0.0.9")])
    reply = answerer.answer(query)
    assert reply is not None and dns.message.from_wire(reply).answer[0][0].address == "10.0.0.9"


def test_a_deleted_service_is_nxdomain_and_negative_answers_carry_the_new_serial() -> None:
    store = synced_store(service("a", "10.0.0.1"))
    zone = Zone(store, ZONE, 30, PodMode.INSECURE)
    answerer = Answerer(zone, WireZone(zone, store), DnsStats("serve"))
    assert ask(answerer, f"a.n.svc.{ZONE}.", "A").rcode() == dns.rcode.NOERROR
    missing = ask(answerer, f"gone.n.svc.{ZONE}.", "A")
    serial_before = missing.authority[0][0].serial

    store.apply([Delete(Kind.SERVICE, "n", "a")])
    reply = ask(answerer, f"a.n.svc.{ZONE}.", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.authority[0].rdtype == dns.rdatatype.SOA and reply.authority[0][0].serial > serial_before
    assert str(reply.authority[0].name) == f"{ZONE}."


def test_the_question_comes_back_in_the_case_it_was_asked() -> None:
    store = synced_store(service("a", "10.0.0.1"))
    zone = Zone(store, ZONE, 30, PodMode.INSECURE)
    answerer = Answerer(zone, WireZone(zone, store), DnsStats("serve"))
    for name in (f"a.n.svc.{ZONE}.", f"A.N.Svc.{ZONE.upper()}."):
        reply = ask(answerer, name, "A")
        assert reply.question[0].name.to_text() == name and reply.answer[0][0].address == "10.0.0.1"


def test_search_path_names_are_nxdomain_and_foreign_names_refused() -> None:
    store = synced_store(service("a", "10.0.0.1"))
    zone = Zone(store, ZONE, 30, PodMode.INSECURE)
    answerer = Answerer(zone, WireZone(zone, store), DnsStats("serve"))
    for suffix in ("n.svc.cluster.local.", "svc.cluster.local.", "cluster.local."):
        assert ask(answerer, f"a.n.svc.cluster.local.{suffix}", "A").rcode() == dns.rcode.NXDOMAIN
    assert ask(answerer, "example.com.", "A").rcode() == dns.rcode.REFUSED
    # The zone's name inside a label is not the zone: a 12-byte label ending in "\x07cluster".
    assert ask(answerer, "abcd\\007cluster.local.", "A").rcode() == dns.rcode.REFUSED


def test_a_store_that_has_not_synced_answers_servfail() -> None:
    store = Store(required=[Kind.SERVICE])
    zone = Zone(store, ZONE, 30, PodMode.INSECURE)
    answerer = Answerer(zone, WireZone(zone, store), DnsStats("serve"))
    assert ask(answerer, f"a.n.svc.{ZONE}.", "A").rcode() == dns.rcode.SERVFAIL
    store.apply([service("a", "10.0.0.1"), Synced(Kind.SERVICE)])
    assert ask(answerer, f"a.n.svc.{ZONE}.", "A").rcode() == dns.rcode.NOERROR


class CountingWireZone:
    """The wire zone, counting the questions put to it (a reply from the memo puts none)."""

    def __init__(self, zone: Zone, store: Store) -> None:
        self._wire = WireZone(zone, store)
        self.found = 0

    def find(self, key: bytes, qtype: int) -> tuple[Section, Validity] | None:
        self.found += 1
        return self._wire.find(key, qtype)


def test_the_memo_rests_while_it_finds_nothing_and_then_tries_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answerer_module, "MEMO_WINDOW", 8)
    monkeypatch.setattr(answerer_module, "MEMO_REST", 16)
    store = synced_store(service("a", "10.0.0.1"))
    zone = Zone(store, ZONE, 30, PodMode.INSECURE)
    wire = CountingWireZone(zone, store)
    answerer = Answerer(zone, wire, DnsStats("serve"))

    def from_memo(name: str) -> bool:
        before = wire.found
        assert ask(answerer, name, "A").rcode() == dns.rcode.NOERROR
        return wire.found == before

    for n in range(8):  # a window of distinct questions, none asked again: the memo rests
        assert ask(answerer, f"missing-{n}.n.svc.{ZONE}", "A").rcode() == dns.rcode.NXDOMAIN
    resting = [from_memo(f"a.n.svc.{ZONE}") for _ in range(16)]
    assert not any(resting)  # asked again and again, but the memo is resting
    awake = [from_memo(f"a.n.svc.{ZONE}") for _ in range(8)]
    assert awake[-1] and not awake[0]  # remembered again once the rest is over
