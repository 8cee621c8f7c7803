"""Replies made by splicing bytes around what ``reader.read`` found, for answers with no records.

The query's ID, opcode and RD bit are echoed, as is its question exactly as asked (case included). A
client that used EDNS gets our OPT record back, which also carries the upper bits of an extended rcode
such as BADVERS.
"""

from __future__ import annotations

import struct

from kubedns_py.dnswire.header import (
    DO_BIT,
    HEADER_SIZE,
    OPCODE_MASK,
    OPT_TYPE,
    QR_BIT,
    RCODE_MASK,
    RD_BIT,
    REFUSED,
)
from kubedns_py.dnswire.reader import BadVersion, Question, Rejected, read

_HEADER_TAIL = struct.Struct("!HHHHH")  # flags and the four counts: everything after the ID
_RAW_OPT = struct.Struct("!BHHIH")  # root name, type 41, class = payload, ttl = ext rcode/version/DO, rdlen
UNREADABLE = -1  # the query type ``refusal`` gives when the question could not be read


def raw_opt(payload: int, dnssec_ok: bool = False, extended_rcode: int = 0) -> bytes:
    """An OPT record (version 0, no options) with the upper eight bits of ``extended_rcode``."""
    ttl = (extended_rcode >> 4) << 24 | (DO_BIT if dnssec_ok else 0)
    return _RAW_OPT.pack(0, OPT_TYPE, payload, ttl, 0)


def header_only(data: bytes, rcode: int) -> bytes:
    """A reply to a packet whose question cannot be trusted: header only, ID, opcode and RD echoed."""
    flags = QR_BIT | ((data[2] << 8 | data[3]) & (OPCODE_MASK | RD_BIT)) | (rcode & RCODE_MASK)
    return data[:2] + _HEADER_TAIL.pack(flags, 0, 0, 0, 0)


def empty_reply(data: bytes, question: Question, rcode: int, flags: int, opt_payload: int) -> bytes:
    """A reply echoing the question with no records; ``flags`` adds AA/RA/TC as the server means them."""
    reply_flags = QR_BIT | (question.flags & RD_BIT) | flags | (rcode & RCODE_MASK)
    opt = raw_opt(opt_payload, question.dnssec_ok, rcode) if question.edns else b""
    header = _HEADER_TAIL.pack(reply_flags, 1, 0, 0, 1 if opt else 0)
    return data[:2] + header + data[HEADER_SIZE : question.end] + opt


def refusal(data: bytes, flags: int, opt_payload: int) -> tuple[bytes, int] | None:
    """REFUSED for anything a client sent, with the question echoed when it can be read, and the query
    type; None for what is never answered (runts, responses)."""
    outcome = read(data)
    if isinstance(outcome, BadVersion):
        outcome = outcome.question
    if isinstance(outcome, Question):
        return empty_reply(data, outcome, REFUSED, flags, opt_payload), outcome.qtype
    if isinstance(outcome, Rejected):
        return header_only(data, REFUSED), UNREADABLE
    return None
