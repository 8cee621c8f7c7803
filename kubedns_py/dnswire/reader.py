"""Reading a query from untrusted bytes, without dnslib, in a few microseconds.

``read`` never raises. It gives one of four outcomes:

- ``Question``: the one question, its lower-cased wire name as a lookup key, and the EDNS facts;
- ``Drop``: not worth an answer (shorter than a header, or itself a response: answering responses
  invites reflection loops);
- ``Rejected``: answer with a header-only FORMERR or NOTIMP;
- ``BadVersion``: a readable question with an EDNS version other than 0 (RFC 6891 6.1.3: BADVERS).

Every non-question outcome carries a short ``reason`` for counting malformed input by kind.
"""

from __future__ import annotations

from typing import NamedTuple

from kubedns_py.dnswire.header import (
    DO_BIT,
    FORMERR,
    HEADER_SIZE,
    MAX_UDP_PAYLOAD,
    MIN_UDP_PAYLOAD,
    NOTIMP,
    OPCODE_MASK,
    OPT_TYPE,
    QR_BIT,
)

MAX_NAME = 255  # RFC 1035 2.3.4, in wire bytes including the length bytes
MAX_LABEL = 63


class Question(NamedTuple):
    flags: int  # the query's header flags word
    name_end: int  # offset just past the name: qtype starts here
    end: int  # offset just past qclass: the question as asked is data[12:end]
    key: bytes  # the name in wire form (root label included), ASCII lower-cased
    qtype: int
    qclass: int
    edns: bool
    payload: int  # what the client takes over UDP: 512 without EDNS, else its size within 512..4096
    dnssec_ok: bool
    options: bool  # the OPT record carries options (cookies, ECS, ...)


class Drop(NamedTuple):
    reason: str


class Rejected(NamedTuple):
    rcode: int  # FORMERR or NOTIMP
    reason: str


class BadVersion(NamedTuple):
    question: Question
    version: int
    reason: str = "edns-version"


Outcome = Question | Drop | Rejected | BadVersion
_new = tuple.__new__  # builds a Question without NamedTuple's Python-level __new__: a third of the cost

SHORT = Drop("short")
RESPONSE = Drop("response")
OPCODE = Rejected(NOTIMP, "opcode")
QDCOUNT = Rejected(FORMERR, "qdcount")
LABEL_TYPE = Rejected(FORMERR, "label-type")
COMPRESSED_QUESTION = Rejected(FORMERR, "compressed-question")
NAME_TOO_LONG = Rejected(FORMERR, "name-too-long")
TRUNCATED = Rejected(FORMERR, "truncated")
BAD_POINTER = Rejected(FORMERR, "bad-pointer")
OPT_MISPLACED = Rejected(FORMERR, "opt-misplaced")
OPT_TWICE = Rejected(FORMERR, "opt-twice")
OPT_OWNER = Rejected(FORMERR, "opt-owner")
_NAME_ERRORS = {-1: TRUNCATED, -2: BAD_POINTER, -3: NAME_TOO_LONG, -4: LABEL_TYPE}


def asked_dnssec_ok(outcome: Outcome) -> bool:
    """The DO bit of what was read, for the statistics: False where no OPT record was read."""
    if type(outcome) is BadVersion:
        return outcome.question.dnssec_ok
    return type(outcome) is Question and outcome.dnssec_ok


def read(data: bytes) -> Outcome:
    size = len(data)
    if size < HEADER_SIZE:
        return SHORT
    flags = data[2] << 8 | data[3]
    if flags & QR_BIT:
        return RESPONSE
    if flags & OPCODE_MASK:
        return OPCODE
    if data[4] or data[5] != 1:
        return QDCOUNT
    # The question is the message's first name, so no earlier name exists for a pointer to reuse.
    pos = HEADER_SIZE
    try:
        while length := data[pos]:
            if length > MAX_LABEL:
                return COMPRESSED_QUESTION if length >= 0xC0 else LABEL_TYPE
            pos += length + 1
    except IndexError:
        return TRUNCATED
    name_end = pos + 1
    if name_end - HEADER_SIZE > MAX_NAME:
        return NAME_TOO_LONG
    end = name_end + 4
    if end > size:
        return TRUNCATED
    key = data[HEADER_SIZE:name_end].lower()
    qtype = data[name_end] << 8 | data[name_end + 1]
    qclass = data[name_end + 2] << 8 | data[name_end + 3]
    if data[6:12] == b"\0\0\0\0\0\0":
        fields = (flags, name_end, end, key, qtype, qclass, False, MIN_UDP_PAYLOAD, False, False)
        return _new(Question, fields)
    if data[6:12] == b"\0\0\0\0\0\1" and data[end : end + 3] == b"\0\0\x29" and size >= end + 11:
        # The usual EDNS query: one OPT record, owned by the root, right after the question.
        rdlength = data[end + 9] << 8 | data[end + 10]
        if end + 11 + rdlength == size:
            if data[end + 6]:
                return _with_records(data, flags, name_end, end, key, qtype, qclass)  # BADVERS
            payload = min(max(data[end + 3] << 8 | data[end + 4], MIN_UDP_PAYLOAD), MAX_UDP_PAYLOAD)
            dnssec_ok = bool(data[end + 7] & 0x80)
            fields = (flags, name_end, end, key, qtype, qclass, True, payload, dnssec_ok, rdlength > 0)
            return _new(Question, fields)
    return _with_records(data, flags, name_end, end, key, qtype, qclass)


def _with_records(
    data: bytes, flags: int, name_end: int, end: int, key: bytes, qtype: int, qclass: int
) -> Outcome:
    """The rarer shape: records after the question, usually just an OPT in the additional section."""
    counts = (data[6] << 8 | data[7], data[8] << 8 | data[9], data[10] << 8 | data[11])
    size = len(data)
    pos = end
    opt: tuple[int, int, int] | None = None  # class (payload), ttl, rdlength
    for section, count in enumerate(counts):
        for _ in range(count):
            owner = pos
            pos = _skip_name(data, pos)
            if pos < 0:
                return _NAME_ERRORS[pos]
            if pos + 10 > size:
                return TRUNCATED
            rtype = data[pos] << 8 | data[pos + 1]
            rdlength = data[pos + 8] << 8 | data[pos + 9]
            if rtype == OPT_TYPE:
                if section != 2:
                    return OPT_MISPLACED
                if opt is not None:
                    return OPT_TWICE
                if pos != owner + 1:
                    return OPT_OWNER
                rclass = data[pos + 2] << 8 | data[pos + 3]
                ttl = int.from_bytes(data[pos + 4 : pos + 8], "big")
                opt = (rclass, ttl, rdlength)
            pos += 10 + rdlength
            if pos > size:
                return TRUNCATED
    if opt is None:
        return Question(flags, name_end, end, key, qtype, qclass, False, MIN_UDP_PAYLOAD, False, False)
    rclass, ttl, rdlength = opt
    payload = min(max(rclass, MIN_UDP_PAYLOAD), MAX_UDP_PAYLOAD)
    question = Question(
        flags, name_end, end, key, qtype, qclass, True, payload, bool(ttl & DO_BIT), rdlength > 0
    )
    version = (ttl >> 16) & 0xFF
    if version:
        return BadVersion(question, version)
    return question


def _skip_name(data: bytes, pos: int) -> int:
    """The offset past the name at ``pos``, or a negative key of ``_NAME_ERRORS``.

    Compression pointers are followed to check the whole name: each must point before the previous
    one's target (so a chain always ends; a loop is a bad pointer) and past the header."""
    size = len(data)
    end = -1  # where the name ends in the message: after its first pointer, if it has one
    lowest = pos
    length_so_far = 0
    while True:
        if pos >= size:
            return -1
        length = data[pos]
        if not length:
            if length_so_far + 1 > MAX_NAME:
                return -3
            return end if end >= 0 else pos + 1
        if length >= 0xC0:
            if pos + 2 > size:
                return -1
            target = (length & 0x3F) << 8 | data[pos + 1]
            if target < HEADER_SIZE or target >= lowest:
                return -2
            if end < 0:
                end = pos + 2
            lowest = pos = target
            continue
        if length > MAX_LABEL:
            return -4
        length_so_far += length + 1
        pos += length + 1


def _char(byte: int) -> str:
    if byte in (0x2E, 0x5C):  # '.' and '\\' inside a label
        return "\\" + chr(byte)
    return chr(byte) if 0x21 <= byte <= 0x7E else f"\\{byte:03d}"


_CHARS = tuple(_char(b) for b in range(256))  # each byte of a label in presentation form


def presentation(key: bytes) -> str:
    """A question's ``key`` (a wire-form name without pointers) in presentation form, no final dot."""
    labels, pos = [], 0
    while length := key[pos]:
        labels.append("".join([_CHARS[b] for b in key[pos + 1 : pos + 1 + length]]))
        pos += length + 1
    return ".".join(labels)
