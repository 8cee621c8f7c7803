"""Upstream replies as the cache's forwarder receives them, built with dnspython: a reply to a name, or
to a query the forwarder sent, with records given as text (``owner ttl class type rdata``)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset


def rrset(text: str) -> dns.rrset.RRset:
    """One record from ``owner ttl class type rdata``."""
    owner, ttl, rdclass, rdtype, rdata = text.split(None, 4)
    return dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata)


def soa(zone: str, ttl: int, minimum: int) -> str:
    """An SOA record's text with the given TTL and MINIMUM field."""
    return f"{zone} {ttl} IN SOA ns.{zone} host.{zone} 1 7200 900 1209600 {minimum}"


def question_wire(name: str, qtype: int | str = "A") -> bytes:
    """The question section the cache forwards: the name lower-cased, type, class IN."""
    wire = dns.name.from_text(name.lower()).to_wire()
    assert wire is not None
    return wire + struct.pack("!HH", dns.rdatatype.RdataType.make(qtype), 1)


def reply_to(
    query: bytes | dns.message.Message,
    *,
    rcode: int = dns.rcode.NOERROR,
    answer: Sequence[str] = (),
    authority: Sequence[str] = (),
    additional: Sequence[str] = (),
    flags: int = 0,
) -> bytes:
    """An upstream's reply to ``query`` (its ID, question and EDNS) carrying the given records."""
    if isinstance(query, bytes):
        query = dns.message.from_wire(query)
    reply = dns.message.make_response(query)
    reply.set_rcode(dns.rcode.Rcode(rcode))
    reply.flags |= flags
    for section, texts in (
        (reply.answer, answer),
        (reply.authority, authority),
        (reply.additional, additional),
    ):
        section.extend(rrset(text) for text in texts)
    return reply.to_wire()


def reply(
    name: str,
    qtype: int | str = "A",
    *,
    rcode: int = dns.rcode.NOERROR,
    answer: Sequence[str] = (),
    authority: Sequence[str] = (),
    additional: Sequence[str] = (),
    flags: int = 0,
    edns: bool = True,
) -> bytes:
    """An upstream's reply to the lower-cased question the cache forwards for ``name``."""
    rdtype = dns.rdatatype.RdataType.make(qtype)
    query = dns.message.make_query(name.lower(), rdtype, use_edns=0 if edns else -1, payload=1232)
    return reply_to(
        query, rcode=rcode, answer=answer, authority=authority, additional=additional, flags=flags
    )
