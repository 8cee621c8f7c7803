"""Walking a DNS message's records without decoding them: where each starts and ends, its type and
TTL. Upstream replies the cache keeps are read by ``response.scan``; this walk serves the readers that
want the records themselves (autopath's record from serve), and ``question_key``/``skip_name`` serve
everyone who matches a question.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kubedns_py.dnswire.header import HEADER_SIZE, OPT_TYPE

_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
MAX_TTL = 0x7FFFFFFF


class WireError(ValueError):
    """The message is not well formed."""


@dataclass(frozen=True, slots=True)
class Record:
    section: int  # 0 answer, 1 authority, 2 additional
    start: int  # offset of the owner name
    ttl_offset: int
    rtype: int
    ttl: int
    rdata_start: int
    end: int


@dataclass(frozen=True, slots=True)
class Walk:
    question_end: int
    records: tuple[Record, ...]

    def opt(self) -> Record | None:
        return next((r for r in self.records if r.rtype == OPT_TYPE), None)


def skip_name(wire: bytes, offset: int) -> int:
    """The offset just past the (possibly compressed) name at ``offset``."""
    size = len(wire)
    for _ in range(128):  # a name has at most 127 labels; more means a malformed message
        if offset >= size:
            raise WireError("name runs past the end of the message")
        length = wire[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            if offset + 2 > size:
                raise WireError("truncated compression pointer")
            return offset + 2
        if length & 0xC0:
            raise WireError("unknown label type")
        offset += 1 + length
    raise WireError("name has too many labels")


def question_key(wire: bytes, start: int = HEADER_SIZE) -> bytes:
    """The question at ``start`` (name, type, class) with the name lower-cased for comparison.
    Only the name: lower-casing the type bytes too would turn type 65 (HTTPS, 0x0041) into 97."""
    name_end = skip_name(wire, start)
    if name_end + 4 > len(wire):
        raise WireError("question runs past the end of the message")
    return wire[start:name_end].lower() + wire[name_end : name_end + 4]


def walk(wire: bytes) -> Walk:
    if len(wire) < HEADER_SIZE:
        raise WireError("shorter than a DNS header")
    qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", wire, 4)
    offset = HEADER_SIZE
    for _ in range(qdcount):
        offset = skip_name(wire, offset) + 4
    if offset > len(wire):
        raise WireError("question runs past the end of the message")
    question_end = offset
    records = []
    for section, count in enumerate((ancount, nscount, arcount)):
        for _ in range(count):
            start = offset
            offset = skip_name(wire, offset)
            if offset + _RR_FIXED.size > len(wire):
                raise WireError("record header runs past the end of the message")
            rtype, _, ttl, rdlength = _RR_FIXED.unpack_from(wire, offset)
            if ttl > MAX_TTL:
                ttl = 0  # RFC 2181 8: a TTL with the top bit set means zero
            rdata_start = offset + _RR_FIXED.size
            end = rdata_start + rdlength
            if end > len(wire):
                raise WireError("record data runs past the end of the message")
            records.append(Record(section, start, offset + 4, rtype, ttl, rdata_start, end))
            offset = end
    return Walk(question_end, tuple(records))
