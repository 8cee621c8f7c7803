"""The DNS header's flag bits and response codes (RFC 1035 §4.1.1, RFC 6891 for BADVERS and DO): the
one place the code reads them from, and the one table of rcode names every metric uses."""

from __future__ import annotations

QR_BIT = 0x8000
OPCODE_MASK = 0x7800
AA_BIT = 0x0400
TC_BIT = 0x0200
RD_BIT = 0x0100
RA_BIT = 0x0080
CD_BIT = 0x0010
RCODE_MASK = 0x000F
DO_BIT = 0x8000  # in the OPT record's TTL field, not the header

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16  # extended: needs the OPT record's upper bits

RCODE_NAMES = {
    NOERROR: "NOERROR",
    FORMERR: "FORMERR",
    SERVFAIL: "SERVFAIL",
    NXDOMAIN: "NXDOMAIN",
    NOTIMP: "NOTIMP",
    REFUSED: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
    BADVERS: "BADVERS",
}


def rcode_name(rcode: int) -> str:
    """The code's name as DNS tools print it; ``RCODE<n>`` for the few unassigned ones, as CoreDNS
    labels them (4 header bits keep them bounded)."""
    return RCODE_NAMES.get(rcode) or f"RCODE{rcode}"


def reply_rcode(wire: bytes) -> int:
    """The header's rcode of a message at least 4 bytes long."""
    return wire[3] & RCODE_MASK
