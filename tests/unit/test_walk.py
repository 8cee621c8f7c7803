"""Walking messages without decoding them: names, TTL offsets, OPT, and question keys."""

from __future__ import annotations

import struct

import pytest
from dnslib import EDNS0, RR, DNSRecord

from kubedns_py.dnswire.walk import WireError, question_key, skip_name, walk


def reply_with(*records: str, edns: bool = False) -> bytes:
    record = DNSRecord.question("www.example.com", "A").reply()
    for text in records:
        record.add_answer(*RR.fromZone(text))
    if edns:
        record.add_ar(EDNS0(udp_len=1232))
    packed: bytes = record.pack()
    return packed


def test_ttl_offsets_point_at_each_records_ttl() -> None:
    wire = reply_with("www.example.com. 300 IN A 192.0.2.1", "www.example.com. 60 IN A 192.0.2.2", edns=True)
    walked = walk(wire)
    assert [r.ttl for r in walked.records if r.rtype != 41] == [300, 60]
    for record in walked.records:
        assert struct.unpack_from("!I", wire, record.ttl_offset)[0] == record.ttl
    opt = walked.opt()
    assert opt is not None and opt.end == len(wire) and opt.section == 2


def test_compressed_names_are_skipped() -> None:
    wire = reply_with("www.example.com. 300 IN A 192.0.2.1")
    answer = walk(wire).records[0]
    assert wire[answer.start] & 0xC0 == 0xC0  # the owner is a pointer to the question
    assert skip_name(wire, answer.start) == answer.start + 2


@pytest.mark.parametrize(
    "wire",
    [
        b"\x00" * 11,
        struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\x03www",  # name runs past the end
        struct.pack("!HHHHHH", 1, 0x8000, 1, 1, 0, 0) + b"\x00\x00\x01\x00\x01" + b"\xc0",  # half a pointer
        struct.pack("!HHHHHH", 1, 0x8000, 0, 1, 0, 0) + b"\x00" + struct.pack("!HHIH", 1, 1, 5, 4) + b"\x01",
        struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\x80abc\x00\x00\x01\x00\x01",  # reserved label type
        struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\x01a" * 130 + b"\x00\x00\x01\x00\x01",
    ],
)
def test_malformed_messages_raise(wire: bytes) -> None:
    with pytest.raises(WireError):
        walk(wire)


def test_question_key_lowers_the_name_and_nothing_else() -> None:
    query = DNSRecord.question("WWW.Example.COM", "A")
    query.q.qtype = 65  # HTTPS is 0x0041: an ASCII 'A' that must not become 'a' (97)
    key = question_key(query.pack())
    assert key[:-4] == b"\x03www\x07example\x03com\x00"
    assert struct.unpack("!HH", key[-4:]) == (65, 1)
