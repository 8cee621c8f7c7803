"""The zone case table: questions to the cluster zone, each with its whole expected reply (``zonecase``).

``CASES`` is asked of serve on the demo cluster plus tests/data/extra-cluster.yaml (``MANIFESTS``) with
the default flags; ``POD_CASES`` of serve on the demo cluster alone under each ``--pods`` mode, as
``(mode, row)``. Integration tests ask a real server (test_zone_cases, test_zone_pods); a unit test asks
both of serve's paths in-process (test_zone_paths).
"""

from __future__ import annotations

import pytest
from _pytest.mark import ParameterSet

from tests.support.zonecase import NEGATIVE, ZONE, case, rev, rr, soa, svc

# Frequently used owners.
MYSVC = svc("myservice", "default")
KUBE_DNS = svc("kube-dns", "kube-system")
DUAL = svc("dual", "default")
CART = svc("cart", "shop")
DB = svc("db", "shop")
WORKERS = svc("workers", "shop")
LEGACY = svc("legacy", "shop")
EAGER = svc("eager", "shop")
EDGE = svc("edge", "shop")
MULTI = svc("multi", "shop")
SEARCH = svc("search", "default")
ALIAS = svc("api-alias", "default")


def srv(owner: str, weight: int, port: int, target: str) -> str:
    return rr(owner, "SRV", f"0 {weight} {port} {target}")


# fmt: off
CASES: list[ParameterSet] = [
    # -- apex and the DNS service's own names ------------------------------------------------------------
    case(ZONE, "SOA", answer=[soa()]),
    case(ZONE, "NS", answer=[rr(ZONE, "NS", f"ns.dns.{ZONE}")],
         additional=[rr(f"ns.dns.{ZONE}", "A", "10.96.0.10")]),
    case(ZONE, "A"),
    case(ZONE, "ANY", answer=[soa()]),
    case(f"ns.dns.{ZONE}", "A", answer=[rr(f"ns.dns.{ZONE}", "A", "10.96.0.10")]),
    case(f"ns.dns.{ZONE}", "AAAA"),
    case(f"x.ns.dns.{ZONE}", "A", "NXDOMAIN"),
    case(f"dns.{ZONE}", "A"),
    case(f"dns-version.{ZONE}", "TXT", answer=[rr(f"dns-version.{ZONE}", "TXT", '"1.1.0"')]),
    case(f"dns-version.{ZONE}", "A"),
    case(f"dns-version.{ZONE}", "ANY", answer=[rr(f"dns-version.{ZONE}", "TXT", '"1.1.0"')]),
    # -- empty non-terminals and names that do not exist ----------------------------------------------
    case(f"svc.{ZONE}", "A"),
    case(f"pod.{ZONE}", "A"),
    case(f"default.svc.{ZONE}", "A"),
    case(f"shop.svc.{ZONE}", "SRV"),
    case(f"empty.svc.{ZONE}", "A"),
    case(f"nosuchns.svc.{ZONE}", "A", "NXDOMAIN"),
    case(f"foo.{ZONE}", "A", "NXDOMAIN"),
    case(svc("nosuch", "default"), "A", "NXDOMAIN"),
    case(svc("myservice", "nosuchns"), "A", "NXDOMAIN"),
    case(f"a.b.c.d.e.{MYSVC}", "A", "NXDOMAIN"),
    # -- ClusterIP services ------------------------------------------------------------------------------
    case(MYSVC, "A", answer=[rr(MYSVC, "A", "10.96.100.10")]),
    case(MYSVC, "AAAA"),
    case(MYSVC, "TXT"),
    case(MYSVC, "ANY", answer=[rr(MYSVC, "A", "10.96.100.10")]),
    case(MYSVC, "SRV", answer=[srv(MYSVC, 50, 80, MYSVC), srv(MYSVC, 50, 9090, MYSVC)],
         additional=[rr(MYSVC, "A", "10.96.100.10")]),
    case(f"_http._tcp.{MYSVC}", "SRV", answer=[srv(f"_http._tcp.{MYSVC}", 100, 80, MYSVC)],
         additional=[rr(MYSVC, "A", "10.96.100.10")]),
    case(f"_metrics._tcp.{MYSVC}", "SRV", answer=[srv(f"_metrics._tcp.{MYSVC}", 100, 9090, MYSVC)],
         additional=[rr(MYSVC, "A", "10.96.100.10")]),
    case(f"_http._tcp.{MYSVC}", "A"),
    case(f"_http._tcp.{MYSVC}", "ANY", answer=[srv(f"_http._tcp.{MYSVC}", 100, 80, MYSVC)]),
    case(f"_https._tcp.{MYSVC}", "SRV", "NXDOMAIN"),
    case(f"_8443._tcp.{MYSVC}", "SRV", "NXDOMAIN"),
    case(f"_http._udp.{MYSVC}", "SRV", "NXDOMAIN"),
    case(f"_tcp.{MYSVC}", "SRV"),
    case(f"_udp.{MYSVC}", "SRV", "NXDOMAIN"),
    case(f"x.{MYSVC}", "A", "NXDOMAIN"),
    case("MyService.DEFAULT.svc.Cluster.Local.", "A", answer=[rr(MYSVC, "A", "10.96.100.10")]),
    case("_HTTP._Tcp.myservice.default.SVC.cluster.local.", "SRV",
         answer=[srv(f"_http._tcp.{MYSVC}", 100, 80, MYSVC)], additional=[rr(MYSVC, "A", "10.96.100.10")]),
    case(svc("kubernetes", "default"), "A", answer=[rr(svc("kubernetes", "default"), "A", "10.96.0.1")]),
    case(f"_https._tcp.{svc('kubernetes', 'default')}", "SRV",
         answer=[srv(f"_https._tcp.{svc('kubernetes', 'default')}", 100, 443, svc("kubernetes", "default"))],
         additional=[rr(svc("kubernetes", "default"), "A", "10.96.0.1")]),
    case(KUBE_DNS, "A", answer=[rr(KUBE_DNS, "A", "10.96.0.10")]),
    # dns/UDP and dns-tcp/TCP share port 53: one record, never the same SRV twice in an RRset.
    case(KUBE_DNS, "SRV",
         answer=[srv(KUBE_DNS, 50, 53, KUBE_DNS), srv(KUBE_DNS, 50, 9153, KUBE_DNS)],
         additional=[rr(KUBE_DNS, "A", "10.96.0.10")]),
    case(f"_dns._udp.{KUBE_DNS}", "SRV", answer=[srv(f"_dns._udp.{KUBE_DNS}", 100, 53, KUBE_DNS)],
         additional=[rr(KUBE_DNS, "A", "10.96.0.10")]),
    case(f"_dns-tcp._tcp.{KUBE_DNS}", "SRV", answer=[srv(f"_dns-tcp._tcp.{KUBE_DNS}", 100, 53, KUBE_DNS)],
         additional=[rr(KUBE_DNS, "A", "10.96.0.10")]),
    case(f"_dns._tcp.{KUBE_DNS}", "SRV", "NXDOMAIN"),
    case(DUAL, "A", answer=[rr(DUAL, "A", "10.96.100.20")]),
    case(DUAL, "AAAA", answer=[rr(DUAL, "AAAA", "fd00:10:96::20")]),
    case(DUAL, "ANY", answer=[rr(DUAL, "A", "10.96.100.20")]),
    case(f"_http._tcp.{DUAL}", "SRV", answer=[srv(f"_http._tcp.{DUAL}", 100, 80, DUAL)],
         additional=[rr(DUAL, "A", "10.96.100.20"), rr(DUAL, "AAAA", "fd00:10:96::20")]),
    case(CART, "A", answer=[rr(CART, "A", "10.96.200.5")]),
    case(CART, "SRV", answer=[srv(CART, 50, 80, CART), srv(CART, 50, 53, CART)],
         additional=[rr(CART, "A", "10.96.200.5")]),
    case(f"_dns._udp.{CART}", "SRV", answer=[srv(f"_dns._udp.{CART}", 100, 53, CART)],
         additional=[rr(CART, "A", "10.96.200.5")]),
    case(f"_udp.{CART}", "SRV"),
    case(svc("v6only", "default"), "A"),
    case(svc("v6only", "default"), "AAAA", answer=[rr(svc("v6only", "default"), "AAAA", "fd00:10:96::30")]),
    case(svc("v6only", "default"), "ANY", answer=[rr(svc("v6only", "default"), "AAAA", "fd00:10:96::30")]),
    case(svc("plain", "default"), "A", answer=[rr(svc("plain", "default"), "A", "10.96.100.30")]),
    case(svc("plain", "default"), "SRV"),
    case(f"_tcp.{svc('plain', 'default')}", "SRV", "NXDOMAIN"),
    # -- headless services ---------------------------------------------------------------------------------
    case(DB, "A", answer=[rr(DB, "A", "10.244.2.10"), rr(DB, "A", "10.244.2.11")]),
    case(DB, "AAAA"),
    case(DB, "TXT"),
    case(DB, "ANY", answer=[rr(DB, "A", "10.244.2.10"), rr(DB, "A", "10.244.2.11")]),
    case(f"db-0.{DB}", "A", answer=[rr(f"db-0.{DB}", "A", "10.244.2.10")]),
    case(f"db-1.{DB}", "A", answer=[rr(f"db-1.{DB}", "A", "10.244.2.11")]),
    case(f"db-0.{DB}", "AAAA"),
    case(f"db-2.{DB}", "A", "NXDOMAIN"),
    case(f"x.db-0.{DB}", "A", "NXDOMAIN"),
    case("DB-0.Db.SHOP.svc.cluster.local.", "A", answer=[rr(f"db-0.{DB}", "A", "10.244.2.10")]),
    case(f"_postgres._tcp.{DB}", "SRV",
         answer=[srv(f"_postgres._tcp.{DB}", 50, 5432, f"db-0.{DB}"),
                 srv(f"_postgres._tcp.{DB}", 50, 5432, f"db-1.{DB}")],
         additional=[rr(f"db-0.{DB}", "A", "10.244.2.10"), rr(f"db-1.{DB}", "A", "10.244.2.11")]),
    case(DB, "SRV", answer=[srv(DB, 50, 5432, f"db-0.{DB}"), srv(DB, 50, 5432, f"db-1.{DB}")],
         additional=[rr(f"db-0.{DB}", "A", "10.244.2.10"), rr(f"db-1.{DB}", "A", "10.244.2.11")]),
    case(f"_tcp.{DB}", "SRV"),
    case(f"_udp.{DB}", "SRV", "NXDOMAIN"),
    case(WORKERS, "A", answer=[rr(WORKERS, "A", "10.244.3.1"), rr(WORKERS, "A", "10.244.3.2")]),
    case(WORKERS, "AAAA", answer=[rr(WORKERS, "AAAA", "fd00:244:3::3")]),
    case(WORKERS, "ANY", answer=[rr(WORKERS, "A", "10.244.3.1"), rr(WORKERS, "A", "10.244.3.2")]),
    case(f"10-244-3-1.{WORKERS}", "A", answer=[rr(f"10-244-3-1.{WORKERS}", "A", "10.244.3.1")]),
    case(f"10-244-3-2.{WORKERS}", "A", answer=[rr(f"10-244-3-2.{WORKERS}", "A", "10.244.3.2")]),
    case(f"10-244-3-9.{WORKERS}", "A", "NXDOMAIN"),
    case(f"fd00-244-3--3.{WORKERS}", "AAAA",
         answer=[rr(f"fd00-244-3--3.{WORKERS}", "AAAA", "fd00:244:3::3")]),
    case(f"fd00-244-3--3.{WORKERS}", "A"),
    case(f"_grpc._tcp.{WORKERS}", "SRV",
         answer=[srv(f"_grpc._tcp.{WORKERS}", 33, 9000, f"10-244-3-1.{WORKERS}"),
                 srv(f"_grpc._tcp.{WORKERS}", 33, 9000, f"10-244-3-2.{WORKERS}"),
                 srv(f"_grpc._tcp.{WORKERS}", 33, 9000, f"fd00-244-3--3.{WORKERS}")],
         additional=[rr(f"10-244-3-1.{WORKERS}", "A", "10.244.3.1"),
                     rr(f"10-244-3-2.{WORKERS}", "A", "10.244.3.2"),
                     rr(f"fd00-244-3--3.{WORKERS}", "AAAA", "fd00:244:3::3")]),
    case(svc("cold", "shop"), "A", "NXDOMAIN"),
    case(svc("cold", "shop"), "SRV", "NXDOMAIN"),
    case(f"_http._tcp.{svc('cold', 'shop')}", "SRV", "NXDOMAIN"),
    case(LEGACY, "A", answer=[rr(LEGACY, "A", "10.244.5.1")]),
    case(f"legacy-0.{LEGACY}", "A", answer=[rr(f"legacy-0.{LEGACY}", "A", "10.244.5.1")]),
    case(f"legacy-1.{LEGACY}", "A", "NXDOMAIN"),
    case(f"_http._tcp.{LEGACY}", "SRV", answer=[srv(f"_http._tcp.{LEGACY}", 100, 8080, f"legacy-0.{LEGACY}")],
         additional=[rr(f"legacy-0.{LEGACY}", "A", "10.244.5.1")]),
    case(EAGER, "A", answer=[rr(EAGER, "A", "10.244.6.1"), rr(EAGER, "A", "10.244.6.2")]),
    case(f"eager-0.{EAGER}", "A", answer=[rr(f"eager-0.{EAGER}", "A", "10.244.6.1")]),
    case(f"_http._tcp.{EAGER}", "SRV",
         answer=[srv(f"_http._tcp.{EAGER}", 50, 8080, f"eager-0.{EAGER}"),
                 srv(f"_http._tcp.{EAGER}", 50, 8080, f"eager-1.{EAGER}")],
         additional=[rr(f"eager-0.{EAGER}", "A", "10.244.6.1"), rr(f"eager-1.{EAGER}", "A", "10.244.6.2")]),
    case(svc("tolerant", "shop"), "A", answer=[rr(svc("tolerant", "shop"), "A", "10.244.7.1")]),
    case(f"10-244-7-1.{svc('tolerant', 'shop')}", "A",
         answer=[rr(f"10-244-7-1.{svc('tolerant', 'shop')}", "A", "10.244.7.1")]),
    case(EDGE, "AAAA", answer=[rr(EDGE, "AAAA", "::5"), rr(EDGE, "AAAA", "fd00:1::")]),
    case(f"0--5.{EDGE}", "AAAA", answer=[rr(f"0--5.{EDGE}", "AAAA", "::5")]),
    case(f"fd00-1--0.{EDGE}", "AAAA", answer=[rr(f"fd00-1--0.{EDGE}", "AAAA", "fd00:1::")]),
    case(f"_grpc._tcp.{EDGE}", "SRV",
         answer=[srv(f"_grpc._tcp.{EDGE}", 50, 9000, f"0--5.{EDGE}"),
                 srv(f"_grpc._tcp.{EDGE}", 50, 9000, f"fd00-1--0.{EDGE}")],
         additional=[rr(f"0--5.{EDGE}", "AAAA", "::5"), rr(f"fd00-1--0.{EDGE}", "AAAA", "fd00:1::")]),
    case(MULTI, "A", answer=[rr(MULTI, "A", f"10.244.8.{i}") for i in (1, 2, 3)]),
    case(MULTI, "AAAA", answer=[rr(MULTI, "AAAA", "fd00:244:8::1")]),
    case(f"m-0.{MULTI}", "A", answer=[rr(f"m-0.{MULTI}", "A", "10.244.8.1")]),
    case(f"m-0.{MULTI}", "AAAA", answer=[rr(f"m-0.{MULTI}", "AAAA", "fd00:244:8::1")]),
    case(f"m-1.{MULTI}", "A",
         answer=[rr(f"m-1.{MULTI}", "A", "10.244.8.2"), rr(f"m-1.{MULTI}", "A", "10.244.8.3")]),
    case(f"_web._tcp.{MULTI}", "SRV",
         answer=[srv(f"_web._tcp.{MULTI}", 50, 8080, f"m-0.{MULTI}"),
                 srv(f"_web._tcp.{MULTI}", 50, 8080, f"m-1.{MULTI}")],
         additional=[rr(f"m-0.{MULTI}", "A", "10.244.8.1"), rr(f"m-0.{MULTI}", "AAAA", "fd00:244:8::1"),
                     rr(f"m-1.{MULTI}", "A", "10.244.8.2"), rr(f"m-1.{MULTI}", "A", "10.244.8.3")]),
    # -- ExternalName --------------------------------------------------------------------------------------
    case(SEARCH, "A", answer=[rr(SEARCH, "CNAME", "www.example.com.")]),
    case(SEARCH, "AAAA", answer=[rr(SEARCH, "CNAME", "www.example.com.")]),
    case(SEARCH, "SRV", answer=[rr(SEARCH, "CNAME", "www.example.com.")]),
    case(SEARCH, "TXT", answer=[rr(SEARCH, "CNAME", "www.example.com.")]),
    case(SEARCH, "CNAME", answer=[rr(SEARCH, "CNAME", "www.example.com.")]),
    case(SEARCH, "ANY", answer=[rr(SEARCH, "CNAME", "www.example.com.")]),
    case("Search.Default.svc.cluster.local.", "A", answer=[rr(SEARCH, "CNAME", "www.example.com.")]),
    case(f"x.{SEARCH}", "A", "NXDOMAIN"),
    case(f"_http._tcp.{SEARCH}", "SRV", "NXDOMAIN"),
    case(ALIAS, "A", answer=[rr(ALIAS, "CNAME", MYSVC), rr(MYSVC, "A", "10.96.100.10")]),
    case(ALIAS, "CNAME", answer=[rr(ALIAS, "CNAME", MYSVC)]),
    case(ALIAS, "AAAA", answer=[rr(ALIAS, "CNAME", MYSVC)], authority=NEGATIVE, additional=()),
    case(svc("chain", "default"), "A",
         answer=[rr(svc("chain", "default"), "CNAME", ALIAS), rr(ALIAS, "CNAME", MYSVC),
                 rr(MYSVC, "A", "10.96.100.10")]),
    case(svc("dangling", "default"), "A", "NXDOMAIN",
         answer=[rr(svc("dangling", "default"), "CNAME", svc("ghost", "default"))]),
    # -- reverse ---------------------------------------------------------------------------------------------
    case(rev("10.96.0.10"), "PTR", answer=[rr(rev("10.96.0.10"), "PTR", KUBE_DNS)], case_id="ptr:kube-dns"),
    case(rev("10.96.0.1"), "PTR", answer=[rr(rev("10.96.0.1"), "PTR", svc("kubernetes", "default"))],
         case_id="ptr:kubernetes"),
    case(rev("10.96.100.10"), "PTR", answer=[rr(rev("10.96.100.10"), "PTR", MYSVC)], case_id="ptr:myservice"),
    case(rev("10.96.100.20"), "PTR", answer=[rr(rev("10.96.100.20"), "PTR", DUAL)], case_id="ptr:dual-v4"),
    case(rev("fd00:10:96::20"), "PTR", answer=[rr(rev("fd00:10:96::20"), "PTR", DUAL)],
         case_id="ptr:dual-v6"),
    case(rev("fd00:10:96::30"), "PTR", answer=[rr(rev("fd00:10:96::30"), "PTR", svc("v6only", "default"))],
         case_id="ptr:v6only"),
    case(rev("10.96.200.5"), "PTR", answer=[rr(rev("10.96.200.5"), "PTR", CART)], case_id="ptr:cart"),
    case(rev("10.244.2.10"), "PTR", answer=[rr(rev("10.244.2.10"), "PTR", f"db-0.{DB}")], case_id="ptr:db-0"),
    case(rev("10.244.2.12"), "PTR", "REFUSED", case_id="ptr:db-2-not-ready"),
    case(rev("10.244.3.1"), "PTR", answer=[rr(rev("10.244.3.1"), "PTR", f"10-244-3-1.{WORKERS}")],
         case_id="ptr:workers-v4"),
    case(rev("fd00:244:3::3"), "PTR", answer=[rr(rev("fd00:244:3::3"), "PTR", f"fd00-244-3--3.{WORKERS}")],
         case_id="ptr:workers-v6"),
    case(rev("10.244.5.1"), "PTR", answer=[rr(rev("10.244.5.1"), "PTR", f"legacy-0.{LEGACY}")],
         case_id="ptr:legacy-0"),
    case(rev("10.244.5.2"), "PTR", "REFUSED", case_id="ptr:legacy-1-not-ready"),
    case(rev("10.244.4.1"), "PTR", "REFUSED", case_id="ptr:cold-not-ready"),
    case(rev("10.244.6.1"), "PTR", answer=[rr(rev("10.244.6.1"), "PTR", f"eager-0.{EAGER}")],
         case_id="ptr:eager-0-published"),
    case(rev("::5"), "PTR", answer=[rr(rev("::5"), "PTR", f"0--5.{EDGE}")], case_id="ptr:edge-leading-dash"),
    case(rev("10.244.8.3"), "PTR", answer=[rr(rev("10.244.8.3"), "PTR", f"m-1.{MULTI}")],
         case_id="ptr:multi-second-ip"),
    case("10.0.96.10.IN-ADDR.Arpa.", "PTR", answer=[rr(rev("10.96.0.10"), "PTR", KUBE_DNS)],
         case_id="ptr:mixed-case"),
    case(rev("10.96.0.10"), "ANY", answer=[rr(rev("10.96.0.10"), "PTR", KUBE_DNS)], case_id="ptr:any"),
    # A known address asked for another type: NODATA with the SOA of the reverse zone it lives in.
    case(rev("10.96.0.10"), "A", authority=[soa("in-addr.arpa.")], case_id="ptr:known-v4-nodata"),
    case(rev("fd00:10:96::20"), "AAAA", authority=[soa("ip6.arpa.")], case_id="ptr:known-v6-nodata"),
    case(rev("8.8.8.8"), "PTR", "REFUSED", case_id="ptr:unknown-v4"),
    case(rev("2001:db8::1"), "PTR", "REFUSED", case_id="ptr:unknown-v6"),
    case("10.in-addr.arpa.", "PTR", "REFUSED", case_id="ptr:partial-v4"),
    case("96.10.in-addr.arpa.", "SOA", "REFUSED", case_id="ptr:partial-v4-soa"),
    case("0.2.0.0.0.0.d.f.ip6.arpa.", "PTR", "REFUSED", case_id="ptr:partial-v6"),
    # -- outside the zones, other classes ----------------------------------------------------------------
    case("example.com.", "A", "REFUSED"),
    case(f"{MYSVC}example.com.", "A", "REFUSED", case_id="zone-name-as-prefix:A"),
    case("local.", "SOA", "REFUSED"),
    case(MYSVC, "A", "REFUSED", rdclass="CH"),
    case(f"dns-version.{ZONE}", "TXT", "REFUSED", rdclass="CH"),
]
# fmt: on


# -- pod records under each --pods mode --------------------------------------------------------------


def pod(label: str, namespace: str) -> str:
    return f"{label}.{namespace}.pod.{ZONE}"


def a(owner: str, ip: str) -> list[str]:
    return [rr(owner, "AAAA" if ":" in ip else "A", ip)]


def mode_cases(mode: str, rows: list[ParameterSet]) -> list[ParameterSet]:
    """Tag each row with its mode, so one test runs all modes with ids like ``verified-<row>``."""
    return [pytest.param(mode, *row.values, id=f"{mode}-{row.id}", marks=row.marks) for row in rows]


# fmt: off
# Rows every mode shares: the rest of the zone is untouched by --pods.
POD_COMMON: list[ParameterSet] = [
    case(MYSVC, "A", answer=[rr(MYSVC, "A", "10.96.100.10")]),
    case(pod("1-2-3-4", "nosuchns"), "A", "NXDOMAIN"),
    case(pod("web-1", "default"), "A", "NXDOMAIN"),
    case(pod("1-2-3", "default"), "A", "NXDOMAIN"),
    case(pod("256-1-1-1", "default"), "A", "NXDOMAIN"),
    case(f"x.{pod('10-244-1-5', 'default')}", "A", "NXDOMAIN"),
    case(f"nosuchns.pod.{ZONE}", "A", "NXDOMAIN"),
    case(f"default.svc.{ZONE}", "A"),
]

POD_INSECURE: list[ParameterSet] = [
    case(pod("10-244-1-5", "default"), "A", answer=a(pod("10-244-1-5", "default"), "10.244.1.5")),
    case(pod("1-2-3-4", "default"), "A", answer=a(pod("1-2-3-4", "default"), "1.2.3.4")),
    case(pod("1-2-3-4", "kube-system"), "A", answer=a(pod("1-2-3-4", "kube-system"), "1.2.3.4")),
    case(pod("10-244-2-10", "default"), "A", answer=a(pod("10-244-2-10", "default"), "10.244.2.10"),
         case_id="pod-of-other-namespace:A"),
    case(pod("10-244-1-5", "default"), "AAAA"),
    case(pod("10-244-1-5", "default"), "ANY", answer=a(pod("10-244-1-5", "default"), "10.244.1.5")),
    case(pod("fd00-244-1--5", "default"), "AAAA", answer=a(pod("fd00-244-1--5", "default"), "fd00:244:1::5")),
    case(pod("fd00-244-1--5", "default"), "A"),
    case(pod("0--1", "default"), "AAAA", answer=a(pod("0--1", "default"), "::1")),
    case(pod("fd00--1-5", "default"), "AAAA", answer=a(pod("fd00--1-5", "default"), "fd00::1:5")),
    case("10-244-1-5.DEFAULT.Pod.cluster.local.", "A", answer=a(pod("10-244-1-5", "default"), "10.244.1.5")),
    case(f"default.pod.{ZONE}", "A"),
    case(f"pod.{ZONE}", "A"),
]

POD_VERIFIED: list[ParameterSet] = [
    case(pod("10-244-1-5", "default"), "A", answer=a(pod("10-244-1-5", "default"), "10.244.1.5")),
    case(pod("fd00-244-1--5", "default"), "AAAA", answer=a(pod("fd00-244-1--5", "default"), "fd00:244:1::5")),
    case(pod("10-244-2-10", "shop"), "A", answer=a(pod("10-244-2-10", "shop"), "10.244.2.10")),
    case(pod("10-244-1-5", "default"), "AAAA"),
    case("10-244-2-10.SHOP.pod.cluster.local.", "A", answer=a(pod("10-244-2-10", "shop"), "10.244.2.10")),
    case(pod("10-244-2-10", "default"), "A", "NXDOMAIN", case_id="pod-of-other-namespace:A"),
    case(pod("10-244-1-5", "shop"), "A", "NXDOMAIN"),
    case(pod("fd00-244-1--5", "shop"), "AAAA", "NXDOMAIN"),
    case(pod("10-244-2-11", "shop"), "A", "NXDOMAIN", case_id="endpoint-without-pod:A"),
    case(pod("1-2-3-4", "default"), "A", "NXDOMAIN"),
    case(f"default.pod.{ZONE}", "A"),
]

POD_DISABLED: list[ParameterSet] = [
    case(pod("10-244-1-5", "default"), "A", "NXDOMAIN"),
    case(pod("fd00-244-1--5", "default"), "AAAA", "NXDOMAIN"),
    case(pod("10-244-2-10", "shop"), "A", "NXDOMAIN"),
    case(pod("1-2-3-4", "default"), "A", "NXDOMAIN"),
    case(f"default.pod.{ZONE}", "A", "NXDOMAIN"),
    case(svc("kubernetes", "default"), "A", answer=[rr(svc("kubernetes", "default"), "A", "10.96.0.1")]),
]
# fmt: on

POD_CASES = [
    *mode_cases("insecure", POD_COMMON + POD_INSECURE),
    *mode_cases("verified", POD_COMMON + POD_VERIFIED),
    *mode_cases("disabled", POD_COMMON + POD_DISABLED),
]
