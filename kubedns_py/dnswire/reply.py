"""Building reply packets: echo the question, add our OPT when the client used EDNS, and fit the
result into the client's size (RFC 2181 9: drop the additional section first, set TC only when
answer or authority data had to go)."""

from __future__ import annotations

from collections.abc import Sequence

from dnslib import EDNS0, RR, DNSHeader, DNSRecord

from kubedns_py.dnswire.query import Query

TCP_MAX = 65535
# What serve and the cache advertise, and the most serve sends over UDP: the DNS Flag Day 2020 size, which
# every path carries without IP fragmentation.
OUR_PAYLOAD = 1232


def opt_record() -> RR:
    return EDNS0(udp_len=OUR_PAYLOAD)


def build_reply(
    query: Query,
    rcode: int,
    answer: Sequence[RR],
    authority: Sequence[RR],
    additional: Sequence[RR],
    authoritative: bool,
    limit: int,
    recursion_available: bool = False,
) -> bytes:
    asked = query.record.header

    def pack(
        answer: Sequence[RR], authority: Sequence[RR], additional: Sequence[RR], truncated: bool
    ) -> bytes:
        header = DNSHeader(
            id=asked.id,
            qr=1,
            aa=int(authoritative),
            rd=asked.rd,
            ra=int(recursion_available),
            tc=int(truncated),
            rcode=rcode,
        )
        reply = DNSRecord(
            header, q=query.record.q, rr=list(answer), auth=list(authority), ar=list(additional)
        )
        if query.edns:
            reply.add_ar(opt_record())
        return bytes(reply.pack())  # dnslib packs into a bytearray

    wire = pack(answer, authority, additional, False)
    if len(wire) <= limit:
        return wire
    if additional:
        wire = pack(answer, authority, (), False)
        if len(wire) <= limit:
            return wire
    return pack((), (), (), True)
