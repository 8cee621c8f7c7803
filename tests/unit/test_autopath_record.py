"""serve's autopath record: which Pods get the standard search list, what the record says about an
address, and who may read it."""

from __future__ import annotations

from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from kubedns_py.cluster.answers import WireZone
from kubedns_py.cluster.objects import Kind, Pod, from_dict, search_ndots
from kubedns_py.cluster.store import Delete, Replace, Store, Synced, Upsert
from kubedns_py.cluster.zone import PodMode, Zone
from kubedns_py.net.acl import ClientAcl, parse_networks
from kubedns_py.net.stats import DnsStats
from kubedns_py.serve.answerer import Answerer

CACHE = ("127.0.0.1", 40000)
POD_CLIENT = ("10.244.0.9", 40000)


@pytest.mark.parametrize(
    ("spec", "ndots"),
    [
        ({}, 5),
        ({"dnsPolicy": "ClusterFirst"}, 5),
        ({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True}, 5),
        ({"dnsPolicy": "ClusterFirstWithHostNet"}, 5),
        ({"dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}}, 2),
        ({"dnsConfig": {"options": [{"name": "ndots", "value": "99"}]}}, 15),
        ({"dnsConfig": {"options": [{"name": "timeout", "value": "1"}], "nameservers": ["1.1.1.1"]}}, 5),
        ({"hostNetwork": True}, 0),  # ClusterFirst on the host network: the node's resolv.conf
        ({"dnsPolicy": "Default"}, 0),
        ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.96.0.10"]}}, 0),
        ({"dnsConfig": {"searches": ["corp.example"]}}, 0),
        ({"dnsConfig": {"options": [{"name": "ndots", "value": "0"}]}}, 0),
        ({"dnsConfig": {"options": [{"name": "ndots", "value": "five"}]}}, 0),
        ({"dnsConfig": {"options": [{"name": "ndots"}]}}, 0),
        ({"dnsConfig": {"options": "ndots:2"}}, 0),
        ({"dnsConfig": "junk"}, 0),
    ],
)
def test_only_the_standard_search_list_has_an_ndots(spec: dict[str, Any], ndots: int) -> None:
    assert search_ndots(spec) == ndots


def pod(name: str, namespace: str, ip: str, **spec: Any) -> Pod:
    raw = {"metadata": {"name": name, "namespace": namespace}, "spec": spec, "status": {"podIP": ip}}
    found = from_dict(Kind.POD, raw)
    assert isinstance(found, Pod)
    return found


def served(*pods: Pod, mode: PodMode = PodMode.VERIFIED) -> tuple[Store, Answerer]:
    store = Store()
    store.apply([*(Upsert(p) for p in pods), Synced(Kind.SERVICE)])
    zone = Zone(store, "cluster.local", 30, mode)
    readers = ClientAcl(parse_networks(["127.0.0.0/8"]))
    return store, Answerer(zone, WireZone(zone, store), DnsStats("serve"), None, readers)


def ask(
    answerer: Answerer, name: str, client: tuple[str, int] | None = CACHE, tcp: bool = False
) -> dns.message.Message:
    wire = answerer.answer(dns.message.make_query(name, "TXT").to_wire(), client, tcp)
    assert wire is not None
    return dns.message.from_wire(bytes(wire))


def record(answerer: Answerer, ip_label: str) -> list[str]:
    reply = ask(answerer, f"_autopath-{ip_label}.cluster.local")
    assert reply.rcode() == dns.rcode.NOERROR
    (rrset,) = reply.answer
    assert rrset.ttl == 5
    return [s.decode() for rdata in rrset for s in rdata.strings]


def test_the_record_gives_a_standard_pods_namespace_and_ndots() -> None:
    _, answerer = served(pod("web", "shop", "10.244.1.5"), pod("v6", "shop", "fd00::5", dnsPolicy="Default"))
    assert record(answerer, "10-244-1-5") == ["search=cluster", "namespace=shop", "ndots=5"]
    assert record(answerer, "fd00--5") == ["search=custom"]
    assert record(answerer, "10-244-1-6") == ["search=none"]


def test_pods_sharing_an_address_must_agree() -> None:
    node = "192.168.1.10"
    agent = pod("agent", "kube-system", node, hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    store, answerer = served(agent)
    assert record(answerer, "192-168-1-10") == ["search=cluster", "namespace=kube-system", "ndots=5"]
    store.apply([Upsert(pod("proxy", "kube-system", node, hostNetwork=True))])
    assert record(answerer, "192-168-1-10") == ["search=custom"]
    store.apply([Delete(Kind.POD, "kube-system", "proxy")])
    assert record(answerer, "192-168-1-10") == ["search=cluster", "namespace=kube-system", "ndots=5"]
    assert store.pod_ip_exists("kube-system", node) and not store.pod_ip_exists("default", node)


def test_without_verified_pods_the_record_says_so() -> None:
    _, answerer = served(mode=PodMode.INSECURE)
    assert record(answerer, "10-244-1-5") == ["search=unverified"]


def test_the_record_is_refused_to_untrusted_clients_and_invisible_elsewhere() -> None:
    _, answerer = served(pod("web", "shop", "10.244.1.5"))
    assert ask(answerer, "_autopath-10-244-1-5.cluster.local", POD_CLIENT).rcode() == dns.rcode.REFUSED
    assert ask(answerer, "_autopath-10-244-1-5.cluster.local", POD_CLIENT, tcp=True).rcode() == (
        dns.rcode.REFUSED
    )
    assert ask(answerer, "_autopath-10-244-1-5.cluster.local", None).rcode() == dns.rcode.REFUSED
    assert ask(answerer, "_autopath-10-244-1-5.cluster.local", CACHE, tcp=True).rcode() == dns.rcode.NOERROR
    # Not a name of its own elsewhere: no empty non-terminal, nothing under it, and junk is NXDOMAIN.
    for name in ("x._autopath-10-244-1-5.cluster.local", "_autopath-junk.cluster.local"):
        assert ask(answerer, name).rcode() == dns.rcode.NXDOMAIN
    a_query = dns.message.make_query("_autopath-10-244-1-5.cluster.local", "A").to_wire()
    nodata = dns.message.from_wire(bytes(answerer.answer(a_query, CACHE) or b""))
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer


def test_the_pod_index_follows_updates_deletes_and_relists() -> None:
    store, _ = served(pod("web", "shop", "10.244.1.5"), pod("dual", "shop", "10.244.1.6"))
    assert store.pods_at("10.244.1.5") == [("shop", 5)]
    # An update moving a Pod: the old address is free again, the new one is its.
    dual = from_dict(
        Kind.POD,
        {
            "metadata": {"name": "dual", "namespace": "shop"},
            "status": {"podIPs": [{"ip": "10.0.0.6"}, {"ip": "::6"}]},
        },
    )
    assert store.apply([Upsert(dual)])
    assert not store.apply([Upsert(dual)])  # the same Pod again changes nothing
    assert store.pods_at("10.244.1.6") == [] and store.pods_at("10.0.0.6") == store.pods_at("::6") == [
        ("shop", 5)
    ]
    assert store.pods_at("::a00:6") == []  # IPv6 addresses never meet IPv4 ones
    assert store.apply([Replace(Kind.POD, (pod("web", "shop", "10.244.1.5", dnsPolicy="Default"),))])
    assert store.pods_at("10.244.1.5") == [("shop", 0)] and store.pods_at("10.0.0.6") == []
    assert store.counts()["Pod"] == 1
    assert store.apply([Delete(Kind.POD, "shop", "web")]) and store.counts()["Pod"] == 0
    assert not store.apply([Delete(Kind.POD, "shop", "web")])
