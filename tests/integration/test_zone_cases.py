"""The cluster zone, question by question, against a real ``kubedns-py serve``.

One server (the demo cluster plus tests/data/extra-cluster.yaml) answers the table of cases
(``tests.support.zonetable``) over UDP and TCP with dnspython, and a subset of them with ``dig``. Each
case names the question and the whole expected reply: rcode, AA flag, the answer set, and (when it
matters) the authority and additional sections. Negative answers must carry exactly one SOA of the
zone; every TTL must be the default 30.
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest

from tests.support.dig import Dig, dig
from tests.support.dnsclient import ask
from tests.support.processes import Running, serve
from tests.support.zonecase import MANIFESTS, TRANSPORTS, TTL, ZONE, Case, check_reply, rev, rr, svc
from tests.support.zonetable import ALIAS, CASES, DB, MYSVC

DIG_CASE_IDS = (
    "cluster.local:SOA",
    "cluster.local:NS",
    "dns-version:TXT",
    "myservice.default.svc:A",
    "myservice.default.svc:AAAA",
    "_http._tcp.myservice.default.svc:SRV",
    "MyService.DEFAULT.svc:A",
    "dual.default.svc:AAAA",
    "db.shop.svc:A",
    "_postgres._tcp.db.shop.svc:SRV",
    "fd00-244-3--3.workers.shop.svc:AAAA",
    "cold.shop.svc:A",
    "legacy.shop.svc:A",
    "search.default.svc:A",
    "api-alias.default.svc:A",
    "ptr:kube-dns",
    "ptr:dual-v6",
    "ptr:unknown-v4",
    "example.com:A",
)


def dig_answer(reply: Dig) -> set[str]:
    """The answer as 'owner TYPE data', lower-cased, SOA serial masked."""
    found = set()
    for owner, rdtype, data in reply.answer:
        if rdtype == "SOA":
            fields = data.split()
            fields[2] = "<serial>"
            data = " ".join(fields)
        found.add(rr(owner, rdtype, data))
    return found


# -- the tests ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with serve(manifests=MANIFESTS) as running:
        yield running


def test_table_size() -> None:
    assert len(CASES) >= 90
    ids = [param.id for param in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("row", CASES)
def test_zone_case(server: Running, row: Case, transport: str) -> None:
    reply = ask(row.qname, row.qtype, server.dns_port, tcp=transport == "tcp", rdclass=row.rdclass)
    check_reply(row, reply)


DIG_CASES = [param for param in CASES if param.id in DIG_CASE_IDS]


@pytest.mark.needs_tool("dig")
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("row", DIG_CASES)
def test_zone_case_with_dig(server: Running, row: Case, transport: str) -> None:
    reply = dig(row.qname, row.qtype, "+tcp" if transport == "tcp" else "+notcp", port=server.dns_port)
    output = reply.text
    assert reply.status == row.rcode, output
    assert ("aa" in reply.flags) == row.aa, output
    assert dig_answer(reply) == row.answer, output
    assert reply.answer_count == len(row.answer) == len(reply.answer), output  # no duplicate records
    assert all(ttl == TTL for ttl in reply.ttls), output
    if reply.owners:
        assert reply.owners[0] == row.qname, output


def test_dig_subset_is_complete() -> None:
    assert len(DIG_CASES) == len(DIG_CASE_IDS) >= 15


# -- --ttl ------------------------------------------------------------------------------------------------

TTL5_QUESTIONS = [
    pytest.param(MYSVC, "SRV", id="srv-with-glue"),
    pytest.param(f"_postgres._tcp.{DB}", "SRV", id="headless-srv-with-glue"),
    pytest.param(ALIAS, "A", id="cname-chased"),
    pytest.param(ZONE, "NS", id="ns-with-glue"),
    pytest.param(ZONE, "SOA", id="soa"),
    pytest.param(svc("nosuch", "default"), "A", id="nxdomain"),
    pytest.param(MYSVC, "AAAA", id="nodata"),
    pytest.param(rev("10.96.0.10"), "PTR", id="ptr"),
    pytest.param(f"dns-version.{ZONE}", "TXT", id="txt"),
]


@pytest.fixture(scope="module")
def ttl5_server() -> Iterator[Running]:
    with serve("--ttl", "5", manifests=MANIFESTS) as running:
        yield running


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("qname", "qtype"), TTL5_QUESTIONS)
def test_ttl_flag_sets_every_ttl(ttl5_server: Running, qname: str, qtype: str, transport: str) -> None:
    reply = ask(qname, qtype, ttl5_server.dns_port, tcp=transport == "tcp")
    rrsets = [*reply.answer, *reply.authority, *reply.additional]
    assert rrsets, f"{qname} {qtype}: empty reply"
    for rrset in rrsets:
        assert rrset.ttl == 5, f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} TTL {rrset.ttl}"
        if rrset.rdtype == dns.rdatatype.SOA:
            assert rrset[0].minimum == 5, rrset.to_text()
