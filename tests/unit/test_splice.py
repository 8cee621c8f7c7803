"""Replies spliced around what the reader found, parsed back by dnspython and compared with the replies
dnslib builds (``kubedns_py.dnswire.reply``) for the same queries."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest
from dnslib import EDNS0, DNSHeader, DNSRecord

from kubedns_py.dnswire.header import AA_BIT, BADVERS, FORMERR, HEADER_SIZE, NOTIMP, RA_BIT, RD_BIT, TC_BIT
from kubedns_py.dnswire.query import Query, read_query
from kubedns_py.dnswire.reader import BadVersion, Question, read
from kubedns_py.dnswire.reply import OUR_PAYLOAD, build_reply
from kubedns_py.dnswire.splice import empty_reply, header_only, raw_opt

NXDOMAIN = 3
SERVFAIL = 2
OPT_SIZE = 11  # root name, type, class, ttl, rdlength
NAME = "Kube-DNS.Kube-System.SVC.cluster.local."  # mixed case, to see it echoed as asked
CD_BIT = 0x0010
AD_Z = 0x0020 | 0x0040  # AD: we vouch for no data (RFC 4035 3.2.3); Z: must be zero
# Whether CD comes back is left open: RFC 4035 3.2.2 asks a security-aware server to copy it; this one is
# not security-aware, and the dnslib replies do not copy it either.
FLAGS_BUT_CD = 0x87E0  # QR, AA, TC, RD, RA, Z, AD


def query(
    *,
    use_edns: int | None = None,
    want_dnssec: bool = False,
    payload: int | None = None,  # dnspython turns EDNS on for any payload given
    options: list[dns.edns.Option] | None = None,
    rd: bool = True,
) -> bytes:
    message = dns.message.make_query(
        NAME, "HTTPS", use_edns=use_edns, want_dnssec=want_dnssec, payload=payload, options=options
    )
    if not rd:
        message.flags &= ~dns.flags.RD
    return message.to_wire()


def question_in(data: bytes) -> Question:
    outcome = read(data)
    asked = outcome.question if isinstance(outcome, BadVersion) else outcome
    assert isinstance(asked, Question), outcome
    return asked


def dnslib_query(data: bytes) -> Query:
    legacy = read_query(data)
    assert isinstance(legacy, Query)
    return legacy


def with_flags(data: bytes, flags: int) -> bytes:
    return data[:2] + struct.pack("!H", flags) + data[4:]


def counts(reply: bytes) -> tuple[int, int, int, int]:
    qd, an, ns, ar = struct.unpack_from("!HHHH", reply, 4)
    return qd, an, ns, ar


# --- header_only --------------------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [0, 1, 2, 4, 5, 15])
@pytest.mark.parametrize("rd", [0, RD_BIT])
@pytest.mark.parametrize("rcode", [FORMERR, NOTIMP, SERVFAIL])
def test_header_only_echoes_id_opcode_and_rd_sets_qr_and_clears_the_rest(
    opcode: int, rd: int, rcode: int
) -> None:
    # Every other header bit set in the query, rcode bits included: none of them may come back.
    data = with_flags(query(), opcode << 11 | rd | AA_BIT | TC_BIT | RA_BIT | CD_BIT | AD_Z | 0xF)
    reply = header_only(data, rcode)
    assert len(reply) == HEADER_SIZE
    assert reply[:2] == data[:2]
    assert counts(reply) == (0, 0, 0, 0)
    parsed = dns.message.from_wire(reply)
    assert parsed.id == struct.unpack("!H", data[:2])[0]
    assert parsed.opcode() == opcode
    assert parsed.rcode() == rcode
    assert parsed.flags & FLAGS_BUT_CD == dns.flags.QR | rd


@pytest.mark.parametrize(
    ("data", "flags"),
    [(b"\xab\xcd" + bytes(10), 0x8001), (b"\xab\xcd\x01\x00" + b"\xff" * 60, 0x8101)],
    ids=["bare-header", "junk-after-the-flags"],
)
def test_header_only_reads_nothing_past_the_flags(data: bytes, flags: int) -> None:
    assert header_only(data, FORMERR) == b"\xab\xcd" + struct.pack("!HHHHH", flags, 0, 0, 0, 0)


# --- empty_reply --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rd", [True, False])
def test_empty_reply_echoes_id_rd_and_the_question_as_asked(rd: bool) -> None:
    data = query(rd=rd)
    asked = question_in(data)
    reply = empty_reply(data, asked, NXDOMAIN, AA_BIT, 1232)
    assert reply[:2] == data[:2]
    assert counts(reply) == (1, 0, 0, 0)
    assert reply[HEADER_SIZE:] == data[HEADER_SIZE : asked.end]  # mixed case and HTTPS (65 = "A") as sent
    parsed = dns.message.from_wire(reply)
    assert parsed.id == struct.unpack("!H", data[:2])[0]
    assert bool(parsed.flags & dns.flags.RD) == rd
    assert parsed.flags & dns.flags.QR
    assert [(str(q.name), q.rdtype, q.rdclass) for q in parsed.question] == [(NAME, 65, 1)]
    assert parsed.edns == -1


def test_empty_reply_takes_neither_ad_nor_z_from_the_query() -> None:
    data = with_flags(query(), RD_BIT | CD_BIT | AD_Z)
    reply = empty_reply(data, question_in(data), 0, 0, 1232)
    assert struct.unpack_from("!H", reply, 2)[0] & FLAGS_BUT_CD == 0x8000 | RD_BIT


@pytest.mark.parametrize("flags", [0, AA_BIT, AA_BIT | RA_BIT, TC_BIT, RA_BIT | TC_BIT])
def test_empty_reply_sets_the_flags_it_is_given(flags: int) -> None:
    data = query()
    parsed = dns.message.from_wire(empty_reply(data, question_in(data), 0, flags, 1232))
    assert parsed.flags & (AA_BIT | TC_BIT | RA_BIT) == flags


@pytest.mark.parametrize("want_dnssec", [False, True])
@pytest.mark.parametrize("opt_payload", [512, 1232, 4096])
@pytest.mark.parametrize(
    "options", [None, [dns.edns.CookieOption(b"clientck", b"")]], ids=["no-options", "cookie"]
)
def test_empty_reply_to_edns_carries_our_opt_alone(
    want_dnssec: bool, opt_payload: int, options: list[dns.edns.Option] | None
) -> None:
    data = query(use_edns=0, want_dnssec=want_dnssec, payload=4000, options=options)
    asked = question_in(data)
    reply = empty_reply(data, asked, NXDOMAIN, AA_BIT, opt_payload)
    assert counts(reply) == (1, 0, 0, 1)
    assert reply[HEADER_SIZE : asked.end] == data[HEADER_SIZE : asked.end]
    assert reply[asked.end :] == raw_opt(opt_payload, want_dnssec)  # the query's options are not echoed
    parsed = dns.message.from_wire(reply)
    assert (parsed.edns, parsed.payload, parsed.options) == (0, opt_payload, ())
    assert bool(parsed.ednsflags & dns.flags.DO) == want_dnssec  # RFC 3225 3: DO copied into the reply
    assert parsed.rcode() == NXDOMAIN


def test_empty_reply_leaves_out_the_query_records_after_the_question() -> None:
    # An answer record pointing at the question, then the client's OPT with a cookie.
    records = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\n\0\0\1"
    records += b"\0" + struct.pack("!HHIH", 41, 1232, 0, 12) + b"\x00\x0a\x00\x08clientck"
    data = struct.pack("!HHHHHH", 7, RD_BIT, 1, 1, 0, 1) + b"\x01x\x00\x00\x01\x00\x01" + records
    asked = question_in(data)
    assert asked.edns
    reply = empty_reply(data, asked, 0, 0, 1232)
    assert reply == struct.pack(
        "!HHHHHH", 7, 0x8000 | RD_BIT, 1, 0, 0, 1
    ) + b"\x01x\x00\x00\x01\x00\x01" + raw_opt(1232)


@pytest.mark.parametrize("rcode", [0, SERVFAIL, NXDOMAIN, 5, 15])
def test_empty_reply_rcode_below_16_is_all_in_the_header(rcode: int) -> None:
    data = query(use_edns=0)
    reply = empty_reply(data, question_in(data), rcode, 0, 1232)
    assert reply[3] & 0xF == rcode
    assert reply[-OPT_SIZE + 5] == 0  # the OPT's extended-rcode byte
    assert dns.message.from_wire(reply).rcode() == rcode


@pytest.mark.parametrize("want_dnssec", [False, True])
def test_badvers_puts_one_in_the_opt_extended_rcode_and_zero_in_the_header(want_dnssec: bool) -> None:
    data = query(use_edns=1, want_dnssec=want_dnssec)
    outcome = read(data)
    assert isinstance(outcome, BadVersion)
    reply = empty_reply(data, outcome.question, BADVERS, 0, 1232)
    assert reply[3] & 0xF == 0
    opt = reply[-OPT_SIZE:]
    assert opt[:5] == b"\x00\x00\x29\x04\xd0"  # root owner, type 41, our payload 1232
    assert opt[5:7] == b"\x01\x00"  # extended rcode 1 (16 >> 4), version 0: the one we speak
    parsed = dns.message.from_wire(reply)
    assert parsed.rcode() == dns.rcode.BADVERS
    assert parsed.edns == 0
    assert bool(parsed.ednsflags & dns.flags.DO) == want_dnssec


@pytest.mark.parametrize(
    ("payload", "dnssec_ok", "extended_rcode", "wire"),
    [
        # owner, type, payload, extended rcode, version, DO and Z, rdlength
        (1232, False, 0, "00 0029 04d0 00 00 0000 0000"),
        (4096, True, 0, "00 0029 1000 00 00 8000 0000"),
        (512, True, BADVERS, "00 0029 0200 01 00 8000 0000"),
        (1232, False, 0xFFF, "00 0029 04d0 ff 00 0000 0000"),
    ],
)
def test_raw_opt_lays_out_payload_extended_rcode_and_do(
    payload: int, dnssec_ok: bool, extended_rcode: int, wire: str
) -> None:
    assert raw_opt(payload, dnssec_ok, extended_rcode) == bytes.fromhex(wire)


# --- the same bytes dnslib builds, where the two are meant to agree -----------------------------------


@pytest.mark.parametrize("use_edns", [None, 0])
@pytest.mark.parametrize("rcode", [0, NXDOMAIN, SERVFAIL])
def test_empty_reply_is_byte_for_byte_the_dnslib_reply(use_edns: int | None, rcode: int) -> None:
    data = query(use_edns=use_edns)
    spliced = empty_reply(data, question_in(data), rcode, AA_BIT, OUR_PAYLOAD)
    assert spliced == build_reply(dnslib_query(data), rcode, [], [], [], True, 512)


def test_empty_reply_to_a_do_query_differs_from_the_dnslib_reply_only_in_do() -> None:
    # The dnslib reply drops DO; RFC 3225 3 has the server copy it into the reply, which the splice does.
    data = query(use_edns=0, want_dnssec=True)
    spliced = empty_reply(data, question_in(data), NXDOMAIN, AA_BIT, OUR_PAYLOAD)
    built = build_reply(dnslib_query(data), NXDOMAIN, [], [], [], True, 512)
    assert spliced != built
    assert spliced[: -OPT_SIZE + 7] + bytes(2) + spliced[-OPT_SIZE + 9 :] == built


def dnslib_badvers(query: Query) -> bytes:
    """RFC 6891 6.1.3's BADVERS reply as dnslib builds it: extended rcode 16 in our OPT, 0 in the header."""
    asked = query.record.header
    reply = DNSRecord(DNSHeader(id=asked.id, qr=1, rd=asked.rd), q=query.record.q)
    reply.add_ar(EDNS0(udp_len=OUR_PAYLOAD, ext_rcode=BADVERS >> 4))
    return bytes(reply.pack())


def test_badvers_reply_is_byte_for_byte_the_dnslib_reply() -> None:
    data = query(use_edns=1)
    outcome = read(data)
    assert isinstance(outcome, BadVersion)
    assert empty_reply(data, outcome.question, BADVERS, 0, OUR_PAYLOAD) == dnslib_badvers(dnslib_query(data))
