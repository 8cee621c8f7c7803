"""The DNS vocabulary (RFC 1035 §4.1, RFC 6891 for OPT, BADVERS and DO): response codes, record types,
classes and header flags as IntEnums, and the header's and OPT record's constants, each defined here
once; and the one table of rcode names every metric uses.

The members are ints, so they compare with what a reader found and pack as they are. The module-level
names below them (``REFUSED``, ``RD_BIT``, ``HEADER_SIZE``, ...) are plain ints for the per-query paths.
dnslib still builds the rare answers, but its ``RCODE``/``QTYPE``/``CLASS`` constants are not ours.
"""

from __future__ import annotations

from enum import IntEnum


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    YXDOMAIN = 6
    YXRRSET = 7
    NXRRSET = 8
    NOTAUTH = 9
    NOTZONE = 10
    BADVERS = 16  # extended: needs the OPT record's upper bits


class Type(IntEnum):
    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33
    OPT = 41
    DS = 43
    RRSIG = 46
    NSEC = 47
    DNSKEY = 48
    NSEC3 = 50
    SVCB = 64
    HTTPS = 65
    IXFR = 251
    AXFR = 252
    ANY = 255


class Class(IntEnum):
    IN = 1
    CH = 3
    ANY = 255


class Flag(IntEnum):
    """The header's flag bits, in the 16-bit word after the ID."""

    QR = 0x8000
    AA = 0x0400
    TC = 0x0200
    RD = 0x0100
    RA = 0x0080
    CD = 0x0010


class Opcode(IntEnum):
    QUERY = 0


# Plain ints for the per-query paths (a member is an attribute of its class, looked up each time).
QR_BIT, AA_BIT, TC_BIT, RD_BIT, RA_BIT, CD_BIT = (int(flag) for flag in Flag)  # in the order above
OPCODE_MASK = 0x7800
RCODE_MASK = 0x000F
HEADER_SIZE = 12  # ID, flags and the four counts

# The OPT record (RFC 6891): its type, the DO bit in its TTL field, and the UDP sizes we accept.
OPT_TYPE = int(Type.OPT)
DO_BIT = 0x8000
MIN_UDP_PAYLOAD = 512
MAX_UDP_PAYLOAD = 4096

A, NS, CNAME, SOA, PTR = (int(t) for t in (Type.A, Type.NS, Type.CNAME, Type.SOA, Type.PTR))
TXT, AAAA, SRV, IXFR, AXFR, ANY = (
    int(t) for t in (Type.TXT, Type.AAAA, Type.SRV, Type.IXFR, Type.AXFR, Type.ANY)
)
IN, CH = int(Class.IN), int(Class.CH)
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = (int(rcode) for rcode in tuple(Rcode)[:6])
BADVERS = int(Rcode.BADVERS)

RCODE_NAMES = {rcode.value: rcode.name for rcode in Rcode}


def rcode_name(rcode: int) -> str:
    """The code's name as DNS tools print it; ``RCODE<n>`` for the few unassigned ones, as CoreDNS
    labels them (4 header bits keep them bounded)."""
    return RCODE_NAMES.get(rcode) or f"RCODE{rcode}"


def reply_rcode(wire: bytes) -> int:
    """The header's rcode of a message at least 4 bytes long."""
    return wire[3] & RCODE_MASK
