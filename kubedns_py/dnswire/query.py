"""Reading a query from untrusted bytes.

``read_query`` never raises: it returns either a parsed ``Query`` or a ready-made error reply (bytes),
or None when the packet must be dropped (too short to carry a header, or itself a response — answering
responses invites reflection loops).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dnslib import DNSRecord

from kubedns_py.dnswire import header
from kubedns_py.dnswire.splice import header_only

HEADER = struct.Struct("!HHHHHH")


@dataclass(frozen=True, slots=True)
class Query:
    record: DNSRecord
    edns: bool
    payload: int  # what the client can take over UDP (512 without EDNS)
    dnssec_ok: bool
    edns_version: int = 0

    @property
    def qtype(self) -> int:
        qtype: int = self.record.q.qtype
        return qtype


def read_query(data: bytes) -> Query | bytes | None:
    if len(data) < HEADER.size:
        return None
    _, flags, qdcount, _, _, _ = HEADER.unpack_from(data)
    if flags & header.QR_BIT:
        return None
    if (flags & header.OPCODE_MASK) >> 11 != header.Opcode.QUERY:
        return header_only(data, header.NOTIMP)
    if qdcount != 1:
        return header_only(data, header.FORMERR)
    try:
        record = DNSRecord.parse(data)
    except Exception:  # dnslib raises several types on malformed input; all mean FORMERR here
        return header_only(data, header.FORMERR)
    opts = [rr for rr in record.ar if rr.rtype == header.OPT_TYPE]
    if len(opts) > 1 or any(rr.rtype == header.OPT_TYPE for rr in record.rr + record.auth):
        return header_only(data, header.FORMERR)
    if not opts:
        return Query(record, edns=False, payload=header.MIN_UDP_PAYLOAD, dnssec_ok=False)
    opt = opts[0]
    payload = min(max(opt.rclass, header.MIN_UDP_PAYLOAD), header.MAX_UDP_PAYLOAD)
    version = (opt.ttl >> 16) & 0xFF
    return Query(
        record, edns=True, payload=payload, dnssec_ok=bool(opt.ttl & header.DO_BIT), edns_version=version
    )
