"""Malformed DNS input, generated from a seed, and the verdict each packet must get.

``packets`` makes queries that are broken in the ways a fuzzer or a confused client breaks them:
header words (opcodes, QR, counts), compression pointers (forward, looping, into the header), label
types and lengths, names past 255 bytes, OPT records (misplaced, twice, owned by a name, other EDNS
versions, bad lengths), truncation, bit flips of valid queries, random bytes, oversized datagrams.

``expected`` is the verdict: dnspython's, except where the reader is stricter on purpose (the
reasons ``tests/unit/test_reader.py`` documents) or more lenient (trailing bytes, record data it never
reads). ``check`` compares a server's reply with it.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from typing import Literal

import dns.message
import dns.rcode

from kubedns_py.dnswire.query import read_query
from kubedns_py.dnswire.reader import BadVersion, Question, read

HEADER_SIZE = 12
MAX_UDP_QUERY = 1232
# The reader refuses these although dnspython parses them (see tests/unit/test_reader.py).
STRICTER_THAN_DNSPYTHON = {"response", "opcode", "qdcount", "compressed-question", "bad-pointer", "opt-owner"}
FORMERR, NOTIMP, SERVFAIL = dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.SERVFAIL

Verdict = Literal["none", "formerr", "notimp", "answer", "reply"]

SEED_QUERIES = [
    ("myservice.default.svc.cluster.local.", "A"),
    ("MyService.Default.svc.cluster.local.", "AAAA"),
    ("_http._tcp.myservice.default.svc.cluster.local.", "SRV"),
    ("db-0.db.shop.svc.cluster.local.", "A"),
    ("search.default.svc.cluster.local.", "A"),
    ("nope.default.svc.cluster.local.", "A"),
    ("10.100.96.10.in-addr.arpa.", "PTR"),
    ("cluster.local.", "SOA"),
    ("www.example.com.", "A"),
    ("hits.bind.", "TXT"),
]


def seeds() -> list[bytes]:
    made = []
    for name, rdtype in SEED_QUERIES:
        made.append(dns.message.make_query(name, rdtype, use_edns=False).to_wire())
        made.append(dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232).to_wire())
    made.append(dns.message.make_query("hits.bind.", "TXT", rdclass="CH").to_wire())
    return made


def header(flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 0, flags, qd, an, ns, ar)


def pointer(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset & 0x3FFF)


def wire_name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def record(owner: bytes, rtype: int = 1, rclass: int = 1, ttl: int = 30, rdata: bytes = b"\1\2\3\4") -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def opt(
    payload: int = 1232, version: int = 0, do: bool = False, rdata: bytes = b"", owner: bytes = b"\0"
) -> bytes:
    ttl = version << 16 | (0x8000 if do else 0)
    return record(owner, 41, payload, ttl, rdata)


EXAMPLE = wire_name(b"www", b"example", b"com")


class Junk:
    """One generator of malformed queries, deterministic for its seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seeds = seeds()
        self.kinds = [
            (self.flipped, 6),
            (self.with_header, 2),
            (self.with_pointers, 2),
            (self.with_labels, 2),
            (self.with_opt, 2),
            (self.cut, 2),
            (self.short, 1),
            (self.random_bytes, 1),
            (self.valid, 1),
            (self.oversized, 1),
        ]
        self._choices = [kind for kind, weight in self.kinds for _ in range(weight)]

    def packet(self) -> bytes:
        return self.rng.choice(self._choices)()

    def name(self) -> bytes:
        rng = self.rng
        roll = rng.randrange(8)
        if roll == 0:
            return b"\0"
        if roll == 1:
            return pointer(rng.choice([HEADER_SIZE, 2, 0, 0x3FFF, rng.randrange(0x4000)]))
        labels = [
            bytes(rng.randrange(0x21, 0x7F) for _ in range(rng.randrange(1, 12)))
            for _ in range(rng.randrange(1, 5))
        ]
        return wire_name(*labels)

    def question(self) -> bytes:
        rng = self.rng
        qtype = rng.choice([1, 28, 33, 12, 6, 255, 252, 251, 16, rng.randrange(0x10000)])
        qclass = rng.choice([1, 1, 1, 3, 255, rng.randrange(0x10000)])
        return self.name() + struct.pack("!HH", qtype, qclass)

    def valid(self) -> bytes:
        return self.rng.choice(self.seeds)

    def flipped(self) -> bytes:
        data = bytearray(self.valid())
        for _ in range(self.rng.randrange(1, 5)):
            bit = self.rng.randrange(16, len(data) * 8)  # not the ID: it names the packet
            data[bit // 8] ^= 1 << bit % 8
        return bytes(data)

    def with_header(self) -> bytes:
        rng = self.rng
        flags = rng.choice([rng.randrange(0x10000), rng.randrange(16) << 11 | 0x0100, 0x8100, 0x0100])
        counts = [rng.choice([0, 1, 1, 2, rng.randrange(0x10000)]) for _ in range(4)]
        return header(flags, *counts) + self.question() + (opt() if rng.randrange(2) else b"")

    def with_pointers(self) -> bytes:
        rng = self.rng
        question = EXAMPLE + b"\0\1\0\1"
        end = HEADER_SIZE + len(question)
        target = rng.choice([HEADER_SIZE, end, end + 2, 2, 0, rng.randrange(end + 40), 0x3FFF])
        owner = rng.choice([pointer(target), b"\1a" + pointer(target), pointer(HEADER_SIZE + 4)])
        rdata = rng.choice([b"\1\2\3\4", pointer(target), b"\1c" + pointer(end)])
        records = record(owner, rng.choice([1, 5, 2, 65280]), rdata=rdata)
        if rng.randrange(2):
            return header(an=1) + question + records
        if rng.randrange(2):
            return header(ar=1) + question + opt(owner=pointer(target))
        return header() + self.name_with_pointer(target) + b"\0\1\0\1"

    def name_with_pointer(self, target: int) -> bytes:
        return self.rng.choice([b"", b"\3www"]) + pointer(target)

    def with_labels(self) -> bytes:
        rng = self.rng
        roll = rng.randrange(5)
        if roll == 0:  # a label type that does not exist (0x40-0xBF)
            length = rng.randrange(0x40, 0xC0)
            name = (
                b"\1a" + bytes([length]) + bytes(rng.randrange(256) for _ in range(min(length, 80))) + b"\0"
            )
        elif roll == 1:  # a name over 255 bytes
            name = wire_name(*[b"x" * rng.randrange(40, 64)] * rng.randrange(4, 8))
        elif roll == 2:  # any bytes in labels
            name = wire_name(
                *[bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))] * rng.randrange(1, 4)
            )
        elif roll == 3:  # a label running past the end
            return header() + bytes([rng.randrange(1, 64)]) + b"abc"
        else:  # no root label
            return header() + wire_name(b"www", b"example")[:-1]
        return header() + name + b"\0\1\0\1"

    def with_opt(self) -> bytes:
        rng = self.rng
        question = self.question() if rng.randrange(4) == 0 else EXAMPLE + b"\0\1\0\1"
        payload = rng.choice([0, 511, 512, 1232, 4096, 65535])
        version = rng.choice([0, 0, 1, 255])
        rdata = rng.choice(
            [b"", b"\0\x0a\0\x08clientck", b"\0\x0a\0\x09short", bytes(rng.randrange(256) for _ in range(6))]
        )
        one = opt(
            payload,
            version,
            bool(rng.randrange(2)),
            rdata,
            rng.choice([b"\0", b"\0", b"\1a\0", pointer(HEADER_SIZE)]),
        )
        roll = rng.randrange(5)
        if roll == 0:
            return header(an=1) + question + one  # OPT in the answer section
        if roll == 1:
            return header(ar=2) + question + one + opt()  # two of them
        if roll == 2:  # an rdlength that runs past the end, or falls short of it
            data = bytearray(header(ar=1) + question + one)
            struct.pack_into("!H", data, len(data) - len(rdata) - 2, rng.randrange(0x10000))
            return bytes(data)
        return header(ar=1) + question + one

    def cut(self) -> bytes:
        data = self.valid()
        return data[: self.rng.randrange(2, len(data))]

    def short(self) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(HEADER_SIZE)))

    def random_bytes(self) -> bytes:
        rng = self.rng
        return bytes(rng.randrange(256) for _ in range(rng.randrange(HEADER_SIZE, 80)))

    def oversized(self) -> bytes:
        return self.valid() + bytes(MAX_UDP_QUERY)


def named(data: bytes, ident: int) -> bytes:
    """The packet with ``ident`` as its ID (packets too short to hold one stay as they are)."""
    if len(data) < 2:
        return data
    return struct.pack("!H", ident & 0xFFFF) + data[2:]


def packets(seed: int, count: int) -> Iterator[bytes]:
    junk = Junk(seed)
    for _ in range(count):
        yield junk.packet()


def expected(data: bytes, datagram: bool = True) -> Verdict:
    """The verdict for ``data``; ``datagram``: as a UDP datagram (queries over 1,232 bytes dropped)."""
    if len(data) < HEADER_SIZE or data[2] & 0x80:
        return "none"  # too short to answer, or a response: answering invites reflection loops
    if datagram and len(data) > MAX_UDP_QUERY:
        return "none"
    if data[2] & 0x78:
        return "notimp"  # dnspython parses other opcodes; the server implements QUERY only
    outcome = read(data)
    try:
        dns.message.from_wire(data)
    except Exception:  # dnspython raises many types on malformed input; any is a rejection
        # The reader ignores trailing bytes and record data it never reads, where dnspython refuses.
        return "reply" if isinstance(outcome, Question | BadVersion) else "formerr"
    if not isinstance(outcome, Question | BadVersion) and outcome.reason in STRICTER_THAN_DNSPYTHON:
        return "formerr"
    return "answer"


def check(data: bytes, reply: bytes | None, verdict: Verdict, servfail_ok: bool) -> str | None:
    """What is wrong with ``reply`` to ``data`` given its verdict, or None when it is right."""
    if verdict == "none":
        return None if reply is None else "a reply to a packet that deserves none"
    if reply is None:
        return f"no reply, expected {verdict}"
    if len(reply) < HEADER_SIZE or reply[:2] != data[:2] or not reply[2] & 0x80:
        return "a reply without the query's ID or QR"
    rcode = reply[3] & 0x0F
    if verdict in ("formerr", "notimp"):
        want = FORMERR if verdict == "formerr" else NOTIMP
        return None if rcode == want else f"rcode {rcode}, expected {verdict}"
    if verdict == "reply":
        return None
    try:
        message = dns.message.from_wire(bytes(reply))  # dnspython reads bytes only, not a bytearray
    except Exception as err:
        return f"an unreadable reply: {err}"
    if rcode == FORMERR:  # only where dnslib, which the rare questions are answered with, cannot read it
        return None if isinstance(read_query(data), bytes) else "FORMERR for a query every parser reads"
    if rcode == NOTIMP or (rcode == SERVFAIL and not servfail_ok):
        return f"rcode {rcode} for a readable query"
    asked = dns.message.from_wire(data)
    if message.question[:1] != asked.question[:1]:
        return f"question {message.question} for {asked.question}"
    return None
