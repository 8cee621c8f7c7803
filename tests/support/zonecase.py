"""The zone case table's vocabulary: a ``Case`` names a question and its whole expected reply;
``check_reply`` compares a dnspython reply against it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest
from _pytest.mark import ParameterSet

from tests.support.paths import DATA, DEMO_CLUSTER

EXTRA_CLUSTER = DATA / "extra-cluster.yaml"
MANIFESTS: tuple[Path, ...] = (DEMO_CLUSTER, EXTRA_CLUSTER)
TTL = 30
ZONE = "cluster.local."
SOA_DATA = f"ns.dns.{ZONE} hostmaster.{ZONE} <serial> 7200 1800 86400 {TTL}"
TRANSPORTS = ("udp", "tcp")


# -- expected replies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    rcode: str
    answer: frozenset[str]
    authority: frozenset[str] | None  # None: not checked
    additional: frozenset[str] | None  # None: not checked (the OPT record is never part of it)
    aa: bool
    rdclass: str = "IN"


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def svc(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{ZONE}"


def rev(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text()


def rr(owner: str, rdtype: str, data: str) -> str:
    """One record as ``answers()`` writes it: 'owner TYPE data', lower-cased, no TTL."""
    return f"{fqdn(owner).lower()} {rdtype} {data.lower()}"


def soa(owner: str = ZONE) -> str:
    return rr(owner, "SOA", SOA_DATA)


NEGATIVE = frozenset({soa()})


def case(
    qname: str,
    qtype: str,
    rcode: str = "NOERROR",
    answer: Iterable[str] = (),
    *,
    authority: Iterable[str] | None = None,
    additional: Iterable[str] | None = None,
    rdclass: str = "IN",
    case_id: str | None = None,
) -> ParameterSet:
    """A table row. Defaults follow the rules: REFUSED is not authoritative and empty; NXDOMAIN and
    NODATA carry exactly the zone's SOA and no additional records; all else is authoritative."""
    expected = frozenset(answer)
    refused = rcode == "REFUSED"
    negative = rcode == "NXDOMAIN" or (rcode == "NOERROR" and not expected)
    if authority is None and (refused or negative):
        authority = () if refused else NEGATIVE
    if additional is None and (refused or negative):
        additional = ()
    row = Case(
        qname=fqdn(qname),
        qtype=qtype,
        rcode=rcode,
        answer=expected,
        authority=None if authority is None else frozenset(authority),
        additional=None if additional is None else frozenset(additional),
        aa=not refused,
        rdclass=rdclass,
    )
    if case_id is None:
        short = fqdn(qname)[: -len(ZONE) - 1] if fqdn(qname).lower().endswith("." + ZONE) else qname
        case_id = f"{short.rstrip('.') or qname}:{qtype}" + ("" if rdclass == "IN" else f":{rdclass}")
    return pytest.param(row, id=case_id)


# -- checking a reply ----------------------------------------------------------------------------------


def section_texts(rrsets: Iterable[dns.rrset.RRset]) -> list[str]:
    """Records as 'owner TYPE data' (as ``answers()``), with an SOA's serial replaced by <serial>."""
    texts = []
    for rrset in rrsets:
        rdtype = dns.rdatatype.to_text(rrset.rdtype)
        for rdata in rrset:
            data = rdata.to_text()
            if rrset.rdtype == dns.rdatatype.SOA:
                fields = data.split()
                assert fields[2].isdigit() and int(fields[2]) > 0, f"bad SOA serial in {data!r}"
                fields[2] = "<serial>"
                data = " ".join(fields)
            texts.append(rr(rrset.name.to_text(), rdtype, data))
    return texts


def check_reply(row: Case, reply: dns.message.Message, ttl: int = TTL) -> None:
    got_rcode = dns.rcode.to_text(reply.rcode())
    got_answer = section_texts(reply.answer)
    got_authority = section_texts(reply.authority)
    got_additional = section_texts(reply.additional)
    summary = (
        f"{row.qname} {row.qtype}: rcode {got_rcode}, flags {dns.flags.to_text(reply.flags)}\n"
        f"  answer {got_answer}\n  authority {got_authority}\n  additional {got_additional}"
    )
    assert got_rcode == row.rcode, summary
    assert bool(reply.flags & dns.flags.AA) == row.aa, summary
    assert reply.question[0].name.to_text() == row.qname, "the question must be echoed as asked"
    assert set(got_answer) == row.answer, summary
    if reply.answer:
        # The owner echoes the question's spelling, byte for byte.
        assert reply.answer[0].name.to_text() == row.qname, summary
    if row.authority is not None:
        assert set(got_authority) == row.authority, summary
        assert len(got_authority) == len(row.authority), summary
    if row.additional is not None:
        assert set(got_additional) == row.additional, summary
    for rrset in [*reply.answer, *reply.authority, *reply.additional]:
        assert rrset.ttl == ttl, f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} TTL {rrset.ttl}"
        if rrset.rdtype == dns.rdatatype.SOA:
            assert rrset[0].minimum == ttl, summary
