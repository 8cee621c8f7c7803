"""An upstream's reply read in one pass: everything the cache decides on and serves from.

``scan`` walks the header, the question and every record once and keeps what validation, the caching
rules, TTL rendering and the reply to the client need: the rcode and flags, the question as the
upstream echoed it, the record sections with the OPT record cut out, where each TTL sits, the smallest
TTL, the first SOA of the authority section (its TTL and MINIMUM) and a CNAME ending the answer
section. Nothing later walks the bytes again.
"""

from __future__ import annotations

import struct

from dnslib import DNSRecord

from kubedns_py.dnswire.header import CNAME, HEADER_SIZE, OPT_TYPE, SOA
from kubedns_py.dnswire.walk import MAX_TTL, WireError, skip_name

_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_COUNTS = struct.Struct("!HHHH")
NO_TTL = MAX_TTL + 1  # ``min_ttl`` of a reply without records


class OptMisplaced(WireError):
    """The OPT record is not the last record: cutting it out would move names that compression
    pointers after it may point at, so the reply must be repacked first."""


class UpstreamReply:
    __slots__ = (
        "answer_types",
        "body",
        "cname_at",
        "counts",
        "flags",
        "min_ttl",
        "question",
        "question_end",
        "rcode",
        "soa_minimum",
        "soa_ttl",
        "ttl_offsets",
        "ttls",
        "wire",
    )

    wire: bytes  # the whole reply as received
    flags: int  # the header's flags word
    rcode: int  # the header's four rcode bits
    question: bytes  # the question section as received (name, type, class)
    question_end: int
    body: bytes  # the record sections without the OPT record
    counts: tuple[int, int, int]  # answer, authority, additional records in ``body``
    ttl_offsets: tuple[int, ...]  # of each record's TTL field within ``body``
    ttls: tuple[int, ...]
    min_ttl: int  # the smallest TTL of any record, NO_TTL when there is none
    answer_types: frozenset[int]
    cname_at: int  # offset in ``wire`` of the target name of a CNAME ending the answers, else 0
    soa_ttl: int  # of the authority section's first SOA, -1 without one
    soa_minimum: int


def scan(wire: bytes) -> UpstreamReply:
    """``wire`` read once; WireError when it is not a well-formed message with one question and at
    most one OPT record, in the additional section (OptMisplaced when it is there but not last)."""
    size = len(wire)
    if size < HEADER_SIZE:
        raise WireError("shorter than a DNS header")
    qdcount, ancount, nscount, arcount = _COUNTS.unpack_from(wire, 4)
    if qdcount != 1:
        raise WireError(f"{qdcount} questions")
    question_end = skip_name(wire, HEADER_SIZE) + 4
    if question_end > size:
        raise WireError("question runs past the end of the message")
    unpack = _RR_FIXED.unpack_from
    offsets: list[int] = []
    ttls: list[int] = []
    answer_types: set[int] = set()
    min_ttl = NO_TTL
    soa_ttl = soa_minimum = -1
    last_answer_type = cname_at = 0
    opt_start = opt_end = -1
    pos = question_end
    for section, count in ((0, ancount), (1, nscount), (2, arcount)):
        for _ in range(count):
            start = pos
            pos = skip_name(wire, pos)
            if pos + 10 > size:
                raise WireError("record header runs past the end of the message")
            rtype, _, ttl, rdlength = unpack(wire, pos)
            rdata = pos + 10
            end = rdata + rdlength
            if end > size:
                raise WireError("record data runs past the end of the message")
            if rtype == OPT_TYPE:
                if section != 2 or opt_start >= 0:
                    raise WireError("OPT record outside the additional section, or more than one")
                opt_start, opt_end = start, end
                pos = end
                continue
            if ttl > MAX_TTL:
                ttl = 0  # RFC 2181 8: a TTL with the top bit set means zero
            offsets.append(pos + 4)
            ttls.append(ttl)
            if ttl < min_ttl:
                min_ttl = ttl
            if section == 0:
                answer_types.add(rtype)
                last_answer_type, cname_at = rtype, rdata
            elif section == 1 and rtype == SOA and soa_ttl < 0 and rdlength >= 22:
                soa_ttl = ttl
                (soa_minimum,) = struct.unpack_from("!I", wire, end - 4)
            pos = end
    if opt_start >= 0 and opt_end != pos:
        raise OptMisplaced("OPT record before other additional records")
    reply = UpstreamReply()
    reply.wire = wire
    reply.flags = wire[2] << 8 | wire[3]
    reply.rcode = wire[3] & 0x0F
    reply.question = wire[HEADER_SIZE:question_end]
    reply.question_end = question_end
    body_end = opt_start if opt_start >= 0 else pos
    reply.body = wire[question_end:body_end]
    reply.counts = (ancount, nscount, arcount - (opt_start >= 0))
    reply.ttl_offsets = tuple(offset - question_end for offset in offsets)
    reply.ttls = tuple(ttls)
    reply.min_ttl = min_ttl
    reply.answer_types = frozenset(answer_types)
    reply.cname_at = cname_at if last_answer_type == CNAME else 0
    reply.soa_ttl = soa_ttl
    reply.soa_minimum = soa_minimum
    return reply


def read_reply(wire: bytes) -> UpstreamReply:
    """``scan``, repacking first the rare reply whose OPT record is not last (with dnslib: cutting it
    out in place could break compression pointers after it)."""
    try:
        return scan(wire)
    except OptMisplaced:
        pass
    try:
        record = DNSRecord.parse(wire)
    except Exception as err:  # dnslib raises several types on malformed input
        raise WireError(f"unreadable reply: {err}") from err
    record.ar = [rr for rr in record.ar if rr.rtype != OPT_TYPE] + [
        rr for rr in record.ar if rr.rtype == OPT_TYPE
    ]
    return scan(bytes(record.pack()))
